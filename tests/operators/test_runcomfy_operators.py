"""Operator and sensor behaviour that needs no scheduler: validation, waiting, timeouts, kills, outcomes."""

from __future__ import annotations

import pytest

from airflow_provider_runcomfy.exceptions import RunComfyInvalidInputError, RunComfyJobError
from airflow_provider_runcomfy.operators.runcomfy import (
    RunComfyImageToVideoOperator,
    RunComfyModelOperator,
    RunComfyTextToVideoOperator,
    finish,
    wait_for_request,
)
from airflow_provider_runcomfy.schemas.api import RequestResult
from airflow_provider_runcomfy.schemas.pixverse import TEXT_TO_VIDEO, PixVerseTextToVideoInput
from airflow_provider_runcomfy.sensors.runcomfy import RunComfyRequestSensor


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prompt": "x", "duration": 7}, "duration"),
        ({"prompt": "x", "resolution": "1080p", "duration": 10}, "duration"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "{{ params.p }}", "style": "oil"}, "style"),
    ],
)
def test_literal_inputs_are_checked_when_the_dag_is_parsed(kwargs, field):
    with pytest.raises(RunComfyInvalidInputError, match=field):
        RunComfyTextToVideoOperator(task_id="t", **kwargs)


def test_templated_inputs_wait_for_rendering():
    op = RunComfyTextToVideoOperator(task_id="t", prompt="{{ params.p }}", duration="{{ params.d }}")
    assert "prompt" in op.template_fields and "duration" in op.template_fields
    op.prompt, op.duration = "rendered", "7"  # what rendering would do
    with pytest.raises(RunComfyInvalidInputError, match="duration"):
        op.execute({})  # validated before any submit, so no connection is even read


def test_image_to_video_needs_an_http_url():
    with pytest.raises(RunComfyInvalidInputError, match="image_url"):
        RunComfyImageToVideoOperator(task_id="t", prompt="smile", image_url="/tmp/face.png")


def test_generic_operator_takes_a_pydantic_model_or_any_models_dict():
    op = RunComfyModelOperator(task_id="t", model_id=TEXT_TO_VIDEO, inputs=PixVerseTextToVideoInput(prompt="hi"))
    assert op.inputs == {"prompt": "hi"}
    other = RunComfyModelOperator(task_id="u", model_id="acme/any-model/v1", inputs={"img_url": "whatever"})
    assert other.request_inputs() == {"img_url": "whatever"}


def test_typed_operator_sends_only_what_was_set():
    op = RunComfyTextToVideoOperator(task_id="t", prompt="hi", seed=7, generate_audio_switch=False)
    assert op.request_inputs() == {"prompt": "hi", "seed": 7, "generate_audio_switch": False}


def _op(**kwargs) -> RunComfyTextToVideoOperator:
    return RunComfyTextToVideoOperator(task_id="t", prompt="hi", poll_interval=0.05, **kwargs)


def test_sync_wait_past_timeout_cancels_the_queued_job(runcomfy_connection):
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    op = _op(timeout=0.3)
    request_id = op.hook.submit(op.model_id, op.request_inputs()).request_id
    with pytest.raises(RunComfyJobError, match="still queued and has been cancelled") as raised:
        wait_for_request(op, request_id)
    assert raised.value.request_id == request_id
    assert runcomfy_connection.cancels == 1


def test_on_kill_cancels_the_queued_job(runcomfy_connection):
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    op = _op()
    op.request_id = op.hook.submit(op.model_id, op.request_inputs()).request_id
    op.on_kill()
    assert runcomfy_connection.cancels == 1
    assert op.hook.get_result(op.request_id).cancelled


def test_on_kill_without_cancel_on_kill_leaves_the_job(runcomfy_connection):
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    op = _op(cancel_on_kill=False)
    op.request_id = op.hook.submit(op.model_id, op.request_inputs()).request_id
    op.on_kill()
    assert runcomfy_connection.cancels == 0


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("failed", "failed: boom"),
        ("cancelled", "was cancelled"),
        ("in_progress", "unexpected state"),
        ("weird", "unexpected state"),
    ],
)
def test_only_succeeded_is_success(status, message):
    with pytest.raises(RunComfyJobError, match=message):
        finish(_op(), RequestResult(request_id="r", status=status, error="boom"))


def test_sensor_poke_returns_the_operator_result(runcomfy_connection):
    op = _op()
    request_id = op.hook.submit(op.model_id, op.request_inputs()).request_id
    sensor = RunComfyRequestSensor(task_id="s", request_id=request_id, model_id=TEXT_TO_VIDEO, poke_interval=0.05)
    wait_for_request(op, request_id)
    done = sensor.poke({})
    assert done.is_done
    assert done.xcom_value["request_id"] == request_id
    assert done.xcom_value["model_id"] == TEXT_TO_VIDEO
    assert done.xcom_value["output_urls"][0].endswith(".mp4")


def test_sensor_fails_when_the_job_fails(runcomfy_connection):
    runcomfy_connection.add_outcomes([{"outcome": "failed"}])
    op = _op()
    request_id = op.hook.submit(op.model_id, op.request_inputs()).request_id
    wait_for_request(op, request_id)
    with pytest.raises(RunComfyJobError, match="failed"):
        RunComfyRequestSensor(task_id="s", request_id=request_id).poke({})


def test_a_retry_reattaches_only_to_a_request_made_from_the_same_inputs(runcomfy_connection):
    op = _op()
    op._body = {"prompt": "hi"}
    request_id = op.hook.submit(op.model_id, op._body).request_id
    stored = {"request_id": request_id, "inputs": op._fingerprint}
    assert op.get_job_status(stored, {}) in {"in_queue", "in_progress", "succeeded"}

    op._body = {"prompt": "an edited prompt"}  # the DAG changed, then the task was cleared
    requests_before = len(runcomfy_connection.log)
    status = op.get_job_status(stored, {})
    assert status == "inputs_changed"
    assert not op.is_job_active(status) and not op.is_job_succeeded(status)  # so the mixin submits afresh
    assert op.get_job_status(request_id, {}) == "inputs_changed"  # an id stored by another version
    assert len(runcomfy_connection.log) == requests_before


def test_an_expired_request_is_submitted_afresh(runcomfy_connection):
    op, store = _op(), _Store()
    op._body = op.request_inputs()
    store.set(op.external_id_key, {"request_id": "long-gone", "inputs": op._fingerprint})  # RunComfy: 404

    result = op.execute({"ti": _TaskInstance(), "task_state_store": store})

    assert result["status"] == "succeeded"
    assert result["request_id"] != "long-gone"
    assert runcomfy_connection.submits == 1
    assert store["request_id"]["request_id"] == result["request_id"]


@pytest.mark.parametrize("name", ["../{request_id}{ext}", "/abs/{request_id}", "{unknown}"])
def test_a_bad_output_name_fails_when_the_dag_is_parsed(name):
    with pytest.raises(RunComfyInvalidInputError):
        _op(output_dir="file:///tmp/x", output_name=name)


def test_a_submit_whose_answer_was_lost_fails_without_retry(runcomfy_connection):
    from airflow.sdk.exceptions import AirflowFailException

    runcomfy_connection.add_faults([{"call": "submit", "fault": "drop"}])
    op = _op()
    op._body = op.request_inputs()
    with pytest.raises(AirflowFailException, match="not retried"):
        op.submit_job({})
    assert runcomfy_connection.submits == 1  # the job exists; a task retry must not pay for another


class _Store(dict):
    """The task state store's get/set, in memory: what an earlier try left for this one."""

    def set(self, key, value):
        self[key] = value


class _TaskInstance:
    map_index = -1
    stats_tags: dict = {}

    def __init__(self):
        self.pushed = []

    def xcom_push(self, key, value):
        self.pushed.append((key, value))


def _cancel_once_polled(server):
    """Cancel the first request the operator polls, while it waits for it (as an old trigger's on_kill does)."""
    import threading
    import time

    from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook

    def cancel():
        while not (polled := [e["request_id"] for e in server.log if e["call"] == "status"]):
            time.sleep(0.01)
        server.set_clock(queue_seconds=0.1, run_seconds=0.1)  # a fresh submit gets a quick job
        RunComfyHook().cancel(polled[0])

    thread = threading.Thread(target=cancel, daemon=True)
    thread.start()
    return thread


def _earlier_try(op, store):
    """An earlier try's submit, stored as the mixin stores it; the job stays queued."""
    op._body = op.request_inputs()
    request_id = op.hook.submit(op.model_id, op._body).request_id
    store.set(op.external_id_key, {"request_id": request_id, "inputs": op._fingerprint})
    return request_id


def test_a_retry_whose_reattached_request_is_cancelled_under_it_submits_afresh(runcomfy_connection):
    # Clearing a deferred task starts the re-run while the old trigger's on_kill is still cancelling its job.
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    op, ti, store = _op(), _TaskInstance(), _Store()
    cancelled = _earlier_try(op, store)
    canceller = _cancel_once_polled(runcomfy_connection)

    result = op.execute({"ti": ti, "task_state_store": store})

    canceller.join(5)
    assert runcomfy_connection.cancels == 1
    assert result["status"] == "succeeded"
    assert result["request_id"] != cancelled
    assert runcomfy_connection.submits == 2  # the earlier try's, and one fresh
    assert store["request_id"]["request_id"] == result["request_id"]  # a later retry reattaches to the new one
    assert ti.pushed == [("request_id", cancelled), ("request_id", result["request_id"])]


def test_a_request_this_try_submitted_and_someone_cancelled_fails_the_task(runcomfy_connection):
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    op = _op()
    canceller = _cancel_once_polled(runcomfy_connection)

    with pytest.raises(RunComfyJobError, match="was cancelled"):
        op.execute({"ti": _TaskInstance(), "task_state_store": _Store()})

    canceller.join(5)
    assert runcomfy_connection.submits == 1


def test_a_deferred_retry_resumed_on_a_cancelled_earlier_request_defers_on_a_fresh_one(runcomfy_connection):
    from airflow.sdk.exceptions import TaskDeferred

    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    op, store = _op(deferrable=True), _Store()
    cancelled = _earlier_try(op, store)
    op.hook.cancel(cancelled)
    event = {"status": "cancelled", "result": op.hook.get_result(cancelled).model_dump(mode="json")}

    with pytest.raises(TaskDeferred) as deferred:
        op.execute_complete({"ti": _TaskInstance(), "task_state_store": store}, event, reattached=True)

    fresh = store["request_id"]["request_id"]
    assert fresh != cancelled
    assert deferred.value.trigger.request_id == fresh
    assert not deferred.value.kwargs  # this try made the new request: its own cancel would fail the task
    assert runcomfy_connection.submits == 2
    with pytest.raises(RunComfyJobError, match="was cancelled"):  # without the flag, a cancel fails the task
        op.execute_complete({"ti": _TaskInstance(), "task_state_store": store}, event)
