"""What the operators and the sensor share, checked without a server."""

from __future__ import annotations

import inspect

import pytest

from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook
from airflow_provider_runcomfy.utils.mixins import HOOK_PARAMS

pytestmark = pytest.mark.unit


def test_the_hook_params_a_task_accepts_are_the_hooks_keyword_arguments():
    keyword_only = [name for name, p in inspect.signature(RunComfyHook).parameters.items() if p.kind is p.KEYWORD_ONLY]
    assert tuple(keyword_only) == HOOK_PARAMS


class _TaskInstance:
    """What ``record_job`` and ``recording_outcome`` use of a task instance: ``xcom_push``."""

    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def _task():
    from airflow_provider_runcomfy.utils.mixins import RunComfyTaskMixin

    task = RunComfyTaskMixin()
    task.model_id, task.runcomfy_conn_id = "pixverse/pixverse/v5.5/image-to-video", "runcomfy_prod"
    return task, {"ti": _TaskInstance()}


def test_the_job_record_keeps_no_signature():
    task, context = _task()
    inputs = {"image_url": "https://bucket.s3.amazonaws.com/f.png?X-Amz-Signature=abc", "prompt": "a? b"}
    task.record_job(context, "r1", inputs, how="submitted")
    job = context["ti"].pushed["runcomfy_job"]
    assert job["inputs"] == {"image_url": "https://bucket.s3.amazonaws.com/f.png", "prompt": "a? b"}
    assert (job["request_id"], job["conn_id"], job["how"]) == ("r1", "runcomfy_prod", "submitted")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ("failed", "failed"),
        ("cancelled", "cancelled"),
        ("timeout", "timed_out"),
        ("not_found", "error"),
    ],
)
def test_how_a_job_ended_is_recorded_and_the_error_goes_on(error, status):
    from airflow_provider_runcomfy.exceptions import RunComfyNotFoundError, RunComfyTimeoutError
    from airflow_provider_runcomfy.schemas.api import RequestResult

    raised = {
        "failed": lambda: RequestResult(request_id="r", status="failed", error={"code": "X", "message": "m"}),
        "cancelled": lambda: RequestResult(request_id="r", status="cancelled"),
    }
    task, context = _task()
    with pytest.raises(Exception) as caught, task.recording_outcome(context):
        if error in raised:
            raised[error]().raise_for_outcome()
        elif error == "timeout":
            raise RunComfyTimeoutError("RunComfy request r did not finish within 60s")
        else:
            raise RunComfyNotFoundError("no such request")
    assert context["ti"].pushed["runcomfy_outcome"] == {"status": status, "error": caught.value.message}
