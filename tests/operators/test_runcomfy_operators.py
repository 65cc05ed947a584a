"""The model and download operators without a scheduler: validation, waiting, timeouts, kills, reattachment."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from airflow_provider_runcomfy.exceptions import RunComfyInvalidInputError, RunComfyJobError, RunComfyTimeoutError
from airflow_provider_runcomfy.operators.runcomfy import (
    RunComfyDownloadOperator,
    RunComfyImageToVideoOperator,
    RunComfyModelOperator,
    RunComfyTextToVideoOperator,
)
from airflow_provider_runcomfy.schemas.pixverse import TEXT_TO_VIDEO, PixVerseTextToVideoInput


@pytest.mark.unit
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


@pytest.mark.unit
def test_templated_inputs_are_checked_after_rendering_before_any_request():
    op = RunComfyTextToVideoOperator(task_id="t", prompt="{{ params.p }}", duration="{{ params.d }}")
    op.render_template_fields({"params": {"p": "rendered", "d": "7"}})
    assert op.prompt == "rendered"
    with pytest.raises(RunComfyInvalidInputError, match="duration"):
        op.execute({})  # no connection is even read: the hook would fail on this empty context's lookups


@pytest.mark.unit
def test_image_to_video_needs_an_http_url():
    with pytest.raises(RunComfyInvalidInputError, match="image_url"):
        RunComfyImageToVideoOperator(task_id="t", prompt="smile", image_url="/tmp/face.png")


@pytest.mark.unit
def test_generic_operator_takes_a_pydantic_model_or_any_models_dict():
    op = RunComfyModelOperator(task_id="t", model_id=TEXT_TO_VIDEO, inputs=PixVerseTextToVideoInput(prompt="hi"))
    assert op.inputs == {"prompt": "hi"}
    other = RunComfyModelOperator(task_id="u", model_id="acme/any-model/v1", inputs={"img_url": "whatever"})
    assert other.request_inputs() == {"img_url": "whatever"}


@pytest.mark.unit
def test_typed_operator_sends_only_what_was_set():
    op = RunComfyTextToVideoOperator(task_id="t", prompt="hi", seed=7, generate_audio_switch=False)
    assert op.request_inputs() == {"prompt": "hi", "seed": 7, "generate_audio_switch": False}


@pytest.mark.unit
def test_hook_params_reach_the_hook_and_the_trigger():
    params = {"timeout": 5.0, "max_retries": 9, "retry_min_wait": 0.5, "retry_max_wait": 4.0}
    op = RunComfyTextToVideoOperator(task_id="t", prompt="hi", hook_params=params)
    assert (op.hook.timeout, op.hook.max_retries, op.hook.retry_min_wait, op.hook.retry_max_wait) == (5.0, 9, 0.5, 4.0)
    pushed = {}
    ti = SimpleNamespace(xcom_push=lambda key, value: pushed.update({key: value}))
    trigger = op.request_trigger(
        {"ti": ti}, "r", timeout=60, poll_interval=1, cancel_on_timeout=True, cancel_on_kill=True
    )
    assert trigger.serialize()[1]["hook_params"] == params
    assert trigger._hook().max_retries == 9
    # The deferral's id reaches XCom too: the trigger's on_kill tells a moved trigger from a killed task by it.
    assert pushed == {"runcomfy_deferral": trigger.deferral_id} and len(trigger.deferral_id) == 32
    pushed.clear()  # a trigger that will not cancel on kill needs no id (the sensor's default)
    quiet = op.request_trigger(
        {"ti": ti}, "r", timeout=60, poll_interval=1, cancel_on_timeout=True, cancel_on_kill=False
    )
    assert (pushed, quiet.deferral_id) == ({}, None)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("hook_params", "says"),
    [({"retries": 3}, "unknown parameter 'retries'"), ({"timeout": "10"}, "timeout must be a number")],
)
def test_a_bad_hook_parameter_fails_when_the_dag_is_parsed(hook_params, says):
    with pytest.raises(RunComfyInvalidInputError, match=says):
        RunComfyTextToVideoOperator(task_id="t", prompt="hi", hook_params=hook_params)


def _op(**kwargs) -> RunComfyTextToVideoOperator:
    return RunComfyTextToVideoOperator(task_id="t", prompt="hi", poll_interval=0.05, **kwargs)


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_the_sync_operator_waits_out_a_result_that_lags_the_status(runcomfy_connection, outcome):
    runcomfy_connection.add_outcomes([{"outcome": outcome, "result_lag": 2}])
    op = _op(deferrable=False)
    if outcome == "succeeded":
        result = op.execute(_context())
        assert result["status"] == "succeeded" and result["output_urls"]
    else:
        with pytest.raises(RunComfyJobError, match="RunComfy request failed"):
            op.execute(_context())
    assert runcomfy_connection.submits == 1
    assert sum(e["fault"] == "result_lag" for e in runcomfy_connection.log) == 2


def test_the_sync_operator_past_its_timeout_cancels_the_queued_job(runcomfy_connection):
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    op = _op(timeout=0.3)
    with pytest.raises(RunComfyTimeoutError, match="still queued and has been cancelled") as raised:
        op.execute(_context())
    assert raised.value.request_id == op.request_id
    assert runcomfy_connection.cancels == 1


def test_a_deferrable_operator_whose_result_lags_defers_and_the_trigger_finishes_it(runcomfy_connection):
    import asyncio

    from airflow.providers.common.compat.sdk import TaskDeferred

    runcomfy_connection.set_clock(queue_seconds=0, run_seconds=0)  # finished at the first look
    runcomfy_connection.add_outcomes([{"outcome": "succeeded", "result_lag": 2}])
    op = _op(deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:  # the status says completed, the result does not yet
        op.execute(_context())

    async def first_event():
        async for event in deferred.value.trigger.run():
            return event.payload

    result = op.execute_complete(_context(), asyncio.run(first_event()))
    assert result["status"] == "succeeded"
    assert runcomfy_connection.submits == 1
    assert sum(e["fault"] == "result_lag" for e in runcomfy_connection.log) == 2


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


def test_a_retry_reattaches_only_to_a_request_made_from_the_same_inputs(runcomfy_connection, capfd):
    store = _Store()
    first = _op().execute(_context(store))
    assert _op().execute(_context(store))["request_id"] == first["request_id"]  # same inputs: the same video
    assert runcomfy_connection.submits == 1

    edited = RunComfyTextToVideoOperator(task_id="t", prompt="an edited prompt", poll_interval=0.05)
    again = edited.execute(_context(store))  # the DAG changed, then the task was cleared
    assert again["request_id"] != first["request_id"]
    assert runcomfy_connection.submits == 2
    logged = "".join(capfd.readouterr())
    assert f"The stored RunComfy request {first['request_id']} was made from other inputs" in logged


def test_an_id_stored_by_another_version_is_not_reattached_to(runcomfy_connection):
    store = _Store()
    store.set("request_id", "a-bare-request-id")
    assert _op().execute(_context(store))["request_id"] != "a-bare-request-id"
    assert runcomfy_connection.submits == 1
    assert not [e for e in runcomfy_connection.log if e["request_id"] == "a-bare-request-id"]  # not even asked


def test_an_expired_request_is_submitted_afresh(runcomfy_connection, capfd):
    store = _Store()
    _earlier_try(store)
    store["request_id"]["request_id"] = "long-gone"  # RunComfy: 404, request missing, deleted or expired

    result = _op().execute(_context(store))

    assert result["status"] == "succeeded"
    assert result["request_id"] != "long-gone"
    assert runcomfy_connection.submits == 2
    assert store["request_id"]["request_id"] == result["request_id"]
    assert "RunComfy no longer knows the stored request long-gone" in "".join(capfd.readouterr())


@pytest.mark.unit
@pytest.mark.parametrize("name", ["../{request_id}{ext}", "/abs/{request_id}", "{unknown}"])
def test_a_bad_output_name_fails_when_the_dag_is_parsed(name):
    with pytest.raises(RunComfyInvalidInputError):
        _op(output_dir="file:///tmp/x", output_name=name)


def test_a_submit_whose_answer_was_lost_fails_without_retry(runcomfy_connection):
    from airflow.providers.common.compat.sdk import AirflowFailException

    runcomfy_connection.add_faults([{"call": "submit", "fault": "drop"}])
    with pytest.raises(AirflowFailException, match="not retried"):
        _op().execute(_context())
    assert runcomfy_connection.submits == 1  # the job exists; a task retry must not pay for another


def test_the_download_operator_says_to_wait_for_a_request_that_has_not_finished(runcomfy_connection, tmp_path):
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    request_id = _op().hook.submit(TEXT_TO_VIDEO, {"prompt": "hi"}).request_id
    download = RunComfyDownloadOperator(task_id="d", request_id=request_id, output_dir=tmp_path.as_uri())
    message = f"RunComfy request {request_id} is still in_queue: wait for it with RunComfyRequestSensor first"
    with pytest.raises(RunComfyJobError, match=message):
        download.execute(_context())
    assert list(tmp_path.iterdir()) == []


def _synthetic_sha256(size: int, seed: int) -> str:
    from airflow_provider_runcomfy.testing.server import synthetic_chunks

    digest = hashlib.sha256()
    for chunk in synthetic_chunks(size, seed):
        digest.update(chunk)
    return digest.hexdigest()


def test_a_cleared_task_with_new_inputs_replaces_the_file_of_the_old_request(runcomfy_connection, tmp_path):
    # A fixed output_name: the second request writes where the first one's file is, and must replace it.
    runcomfy_connection.add_outcomes([{"outcome": "succeeded", "synthetic_size": 4096, "seed": s} for s in (1, 2)])
    store, output_dir = _Store(), tmp_path.as_uri()
    first = _op(output_dir=output_dir, output_name="latest{ext}").execute(_context(store))
    edited = RunComfyTextToVideoOperator(
        task_id="t", prompt="an edited prompt", poll_interval=0.05, output_dir=output_dir, output_name="latest{ext}"
    )
    second = edited.execute(_context(store))

    assert second["request_id"] != first["request_id"]
    [file] = second["files"]
    assert file["sha256"] == _synthetic_sha256(4096, 2) != first["files"][0]["sha256"]
    assert hashlib.sha256((tmp_path / "latest.bin").read_bytes()).hexdigest() == file["sha256"]
    assert [p.name for p in tmp_path.iterdir()] == ["latest.bin"]


def test_a_download_of_another_request_to_the_same_name_replaces_the_file(runcomfy_connection, tmp_path):
    runcomfy_connection.add_outcomes([{"outcome": "succeeded", "synthetic_size": 2048, "seed": s} for s in (3, 4)])
    store, hook = _Store(), _op().hook
    sha256s = []
    for _ in range(2):
        request_id = hook.submit(TEXT_TO_VIDEO, {"prompt": "hi"}).request_id
        hook.wait_for_request(request_id, timeout=30, poll_interval=0.05)
        download = RunComfyDownloadOperator(
            task_id="d", request_id=request_id, output_dir=tmp_path.as_uri(), output_name="latest{ext}"
        )
        sha256s.append(download.execute(_context(store))["files"][0]["sha256"])
    assert sha256s == [_synthetic_sha256(2048, 3), _synthetic_sha256(2048, 4)]
    assert hashlib.sha256((tmp_path / "latest.bin").read_bytes()).hexdigest() == sha256s[1]


def test_a_rerun_of_the_same_request_skips_the_copy(runcomfy_connection, tmp_path):
    store = _Store()
    first = _op(output_dir=tmp_path.as_uri()).execute(_context(store))
    again = _op(output_dir=tmp_path.as_uri()).execute(_context(store))  # a retry reattaches to the same request
    assert again["files"] == first["files"]
    assert sum(e["call"] == "file" for e in runcomfy_connection.log) == 1


@pytest.mark.parametrize(
    ("output_dir", "output_name", "says"),
    [
        ("{{ params.dir }}", "{request_id}{ext}", "output_dir 'nosuchscheme://bucket/clips' cannot be written to"),
        ("file:///tmp/clips", "{{ params.name }}", "would leave output_dir"),
        ("file:///tmp/clips", "{{ params.bad }}", "not a valid template"),
    ],
)
def test_a_rendered_destination_is_checked_before_the_submit(runcomfy_connection, output_dir, output_name, says):
    from airflow.providers.common.compat.sdk import AirflowFailException

    op = _op(output_dir=output_dir, output_name=output_name)
    params = {"dir": "nosuchscheme://bucket/clips", "name": "../../escape.mp4", "bad": "{prompt}{ext}"}
    op.render_template_fields({"params": params})
    with pytest.raises(RunComfyInvalidInputError, match=says) as raised:
        op.execute(_context())
    assert isinstance(raised.value, AirflowFailException)  # the same value fails the same way: no retry
    assert runcomfy_connection.log == []


def test_a_deferred_wait_ends_at_the_execution_timeout_and_cancels_the_queued_job(runcomfy_connection):
    from airflow.providers.common.compat.sdk import TaskDeferred

    runcomfy_connection.set_clock(queue_seconds=3600, run_seconds=60)
    op = _op(deferrable=True, execution_timeout=timedelta(seconds=1))  # timeout stays at the 1 h default
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(_context())
    trigger = deferred.value.trigger
    assert trigger.end_time - datetime.now(UTC).timestamp() <= 1.0

    async def first_event():
        async for event in trigger.run():
            return event.payload

    with pytest.raises(RunComfyTimeoutError, match="still queued and has been cancelled"):
        op.execute_complete(_context(), asyncio.run(first_event()))
    assert runcomfy_connection.cancels == 1


def _context(store=None) -> dict:
    return {"ti": _TaskInstance(), "task_state_store": store if store is not None else _Store()}


class _Store(dict):
    """The task state store's get/set, in memory: what an earlier try left for this one."""

    def set(self, key, value):
        self[key] = value


class _TaskInstance:
    map_index = -1
    stats_tags: dict = {}

    def __init__(self):
        self.pushed = []
        self.start_date = datetime.now(UTC)

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


def _earlier_try(store) -> str:
    """An earlier try (an operator of its own, as each try is) that submitted, stored its request and ended
    before waiting, as a crash would."""
    return _op(wait_for_completion=False).execute(_context(store))["request_id"]


def test_a_retry_whose_reattached_request_is_cancelled_under_it_submits_afresh(runcomfy_connection):
    # Clearing a deferred task starts the re-run while the old trigger's on_kill is still cancelling its job.
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    op, ti, store = _op(), _TaskInstance(), _Store()
    cancelled = _earlier_try(store)
    canceller = _cancel_once_polled(runcomfy_connection)

    result = op.execute({"ti": ti, "task_state_store": store})

    canceller.join(5)
    assert runcomfy_connection.cancels == 1
    assert result["status"] == "succeeded"
    assert result["request_id"] != cancelled
    assert runcomfy_connection.submits == 2  # the earlier try's, and one fresh
    assert store["request_id"]["request_id"] == result["request_id"]  # a later retry reattaches to the new one
    pushed = [(key, value["request_id"] if key == "runcomfy_job" else value) for key, value in ti.pushed]
    assert pushed == [
        ("estimated_cost", 0.3),  # the catalog's price of the job, before anything is paid
        *(("request_id", cancelled), ("runcomfy_job", cancelled)),
        *(("request_id", result["request_id"]), ("runcomfy_job", result["request_id"])),
    ]
    assert [value["how"] for key, value in ti.pushed if key == "runcomfy_job"] == ["reattached", "submitted"]


def test_a_request_this_try_submitted_and_someone_cancelled_fails_the_task(runcomfy_connection):
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    op = _op()
    canceller = _cancel_once_polled(runcomfy_connection)

    with pytest.raises(RunComfyJobError, match="was cancelled"):
        op.execute({"ti": _TaskInstance(), "task_state_store": _Store()})

    canceller.join(5)
    assert runcomfy_connection.submits == 1


def test_a_deferred_retry_resumed_on_a_cancelled_earlier_request_defers_on_a_fresh_one(runcomfy_connection):
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_runcomfy.schemas.api import RequestEvent

    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    op, store = _op(deferrable=True), _Store()
    cancelled = _earlier_try(store)
    op.hook.cancel(cancelled)
    event = RequestEvent.finished(op.hook.get_result(cancelled)).to_payload()

    with pytest.raises(TaskDeferred) as deferred:
        op.execute_complete({"ti": _TaskInstance(), "task_state_store": store}, event, reattached=True)

    fresh = store["request_id"]["request_id"]
    assert fresh != cancelled
    assert deferred.value.trigger.request_id == fresh
    assert "reattached" not in deferred.value.kwargs  # this try made the new request: its own cancel fails the task
    assert runcomfy_connection.submits == 2
    with pytest.raises(RunComfyJobError, match="was cancelled"):  # without the flag, a cancel fails the task
        op.execute_complete({"ti": _TaskInstance(), "task_state_store": store}, event)
