"""RunComfyRequestTrigger over real HTTP against the local server."""

from __future__ import annotations

import asyncio
import json
import re
import time
from types import SimpleNamespace

import pytest

from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook
from airflow_provider_runcomfy.schemas.api import RequestEvent
from airflow_provider_runcomfy.schemas.pixverse import TEXT_TO_VIDEO
from airflow_provider_runcomfy.triggers.runcomfy import RunComfyRequestTrigger


def submit(prompt: str = "a lighthouse") -> str:
    return RunComfyHook().submit(TEXT_TO_VIDEO, {"prompt": prompt}).request_id


def trigger_for(request_id: str, *, deadline: float = 30, **kwargs) -> RunComfyRequestTrigger:
    return RunComfyRequestTrigger(
        request_id=request_id,
        runcomfy_conn_id="runcomfy_default",
        end_time=time.time() + deadline,
        poll_interval=0.05,
        **kwargs,
    )


async def first_event(trigger: RunComfyRequestTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


def test_serialize_round_trips_as_plain_json():
    trigger = trigger_for(
        "abc", include_cost=True, cancel_on_timeout=False, cancel_on_kill=False, hook_params={"max_retries": 2}
    )
    classpath, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


async def test_run_fires_once_with_the_result_when_the_job_succeeds(runcomfy_connection, capfd):
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=0.3)  # queued until released
    request_id = submit()
    trigger = trigger_for(request_id, include_cost=True)
    waiting = asyncio.ensure_future(first_event(trigger))
    while not any(e["call"] == "status" for e in runcomfy_connection.log):
        await asyncio.sleep(0.01)
    runcomfy_connection.release()

    event = await asyncio.wait_for(waiting, timeout=30)

    assert json.loads(json.dumps(event)) == event
    result = RequestEvent.model_validate(event).outcome()
    assert (result.status, result.request_id) == ("succeeded", request_id)
    assert result.output["video"].endswith(".mp4")
    assert result.cost > 0
    logged = re.findall(rf"RunComfy request {request_id} is (\w+)", "".join(capfd.readouterr()))
    assert logged[0] == "in_queue" and logged[-1] == "completed"
    assert logged == sorted(
        set(logged), key=["in_queue", "in_progress", "completed"].index
    )  # each state once, in order
    assert runcomfy_connection.submits == 1


async def test_a_result_that_lags_the_status_is_waited_for(runcomfy_connection):
    runcomfy_connection.add_outcomes([{"outcome": "succeeded", "result_lag": 2}])
    event = await first_event(trigger_for(submit()))
    assert event["status"] == "succeeded"
    assert sum(e["fault"] == "result_lag" for e in runcomfy_connection.log) == 2


async def test_a_failed_job_is_reported_failed_even_when_the_status_says_completed(runcomfy_connection):
    runcomfy_connection.add_outcomes([{"outcome": "failed"}])
    event = await first_event(trigger_for(submit()))
    assert event["status"] == "failed"
    assert event["result"]["error"]


async def test_polling_survives_faults(runcomfy_connection):
    request_id = submit()
    runcomfy_connection.add_faults(
        [{"call": "status", "fault": "503", "times": 2}, {"call": "result", "fault": "429", "retry_after": 0}]
    )
    event = await first_event(trigger_for(request_id))
    assert event["status"] == "succeeded"
    assert runcomfy_connection.submits == 1


async def test_past_its_deadline_a_queued_job_is_cancelled(runcomfy_connection):
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    request_id = submit()
    event = RequestEvent.model_validate(await first_event(trigger_for(request_id, deadline=0.3)))
    assert (event.status, event.request_id, event.cancelled) == ("timeout", request_id, True)
    assert runcomfy_connection.cancels == 1


async def test_past_its_deadline_a_trigger_told_not_to_cancel_leaves_the_job(runcomfy_connection):
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    event = await first_event(trigger_for(submit(), deadline=0.3, cancel_on_timeout=False))
    assert (event["status"], event["cancelled"]) == ("timeout", False)
    assert runcomfy_connection.cancels == 0
    assert not [e for e in runcomfy_connection.log if e["call"] == "cancel"]


async def test_an_api_error_becomes_an_error_event(runcomfy_connection):
    event = await first_event(trigger_for("no-such-request"))
    assert event["status"] == "error"
    assert (event["error"]["type"], event["error"]["code"]) == ("RunComfyNotFoundError", 404001)


async def test_on_kill_cancels_the_queued_job(runcomfy_connection):
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    trigger = trigger_for(submit())
    waiting = asyncio.ensure_future(first_event(trigger))
    await asyncio.sleep(0.2)
    await trigger.on_kill()
    event = await asyncio.wait_for(waiting, timeout=10)
    assert runcomfy_connection.cancels == 1
    assert event["status"] == "cancelled"


async def test_on_kill_leaves_the_job_alone_when_told_to(runcomfy_connection):
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    await trigger_for(submit(), cancel_on_kill=False).on_kill()
    assert runcomfy_connection.cancels == 0


@pytest.mark.unit
def test_airflow_runs_a_triggers_on_kill_from_3_3_and_its_cleanup_before():
    # Which of the two cancels a marked or cleared deferred task's job: on_kill from 3.3; before, the triggerer has
    # no on_kill to call, and cleanup (which it calls for every trigger it stops) does it.
    from airflow.triggers.base import BaseTrigger

    from airflow_provider_runcomfy.version_compat import AIRFLOW_V_3_3_PLUS

    assert hasattr(BaseTrigger, "on_kill") is AIRFLOW_V_3_3_PLUS
    assert hasattr(BaseTrigger, "cleanup")


def deferred_trigger(monkeypatch, current: bool | None, asked: list) -> RunComfyRequestTrigger:
    """A trigger of a queued job, deferred with ``deferral_id`` ``d-1``; Airflow answers ``current`` when asked
    whether that try is still deferred (``None``: it cannot be asked)."""
    import airflow_provider_runcomfy.triggers.runcomfy as module

    async def deferral_is_current(ti, key, deferral_id):
        asked.append((ti, key, deferral_id))
        return current

    monkeypatch.setattr(module, "deferral_is_current", deferral_is_current)
    trigger = trigger_for(submit(), deferral_id="d-1")
    trigger.task_instance = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1)
    return trigger


@pytest.mark.parametrize(("current", "cancels"), [(True, 0), (False, 1), (None, 1)])
async def test_on_kill_leaves_the_job_alone_only_while_its_try_is_still_deferred(
    runcomfy_connection, monkeypatch, current, cancels
):
    # Airflow 3.3 calls on_kill for a trigger that merely moved to another triggerer too: its try is then still
    # deferred by it and the other triggerer watches the job. Marked, cleared or unknown: cancel.
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    asked = []
    trigger = deferred_trigger(monkeypatch, current, asked)

    await trigger.on_kill()

    assert asked == [(trigger.task_instance, "runcomfy_deferral", "d-1")]
    assert runcomfy_connection.cancels == cancels


@pytest.mark.parametrize(("current", "cancels_before_3_3"), [(True, 0), (False, 1), (None, 0)])
async def test_cleanup_cancels_before_3_3_only_when_the_task_no_longer_waits(
    runcomfy_connection, monkeypatch, current, cancels_before_3_3
):
    # Before 3.3 the triggerer stops the trigger of a marked or cleared task and calls cleanup, as it does for a
    # trigger that moved and for every trigger when it stops itself (when Airflow cannot be asked): only "no longer
    # deferred" cancels. From 3.3 on_kill does it, and cleanup cancels nothing.
    from airflow_provider_runcomfy.version_compat import AIRFLOW_V_3_3_PLUS

    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    asked = []
    trigger = deferred_trigger(monkeypatch, current, asked)

    await trigger.cleanup()

    assert runcomfy_connection.cancels == (0 if AIRFLOW_V_3_3_PLUS else cancels_before_3_3)
    assert len(asked) == (0 if AIRFLOW_V_3_3_PLUS else 1)


async def test_cleanup_after_the_event_cancels_nothing(runcomfy_connection, monkeypatch):
    # A trigger that fired is cleaned up too, while its task, resumed, is no longer deferred: its job has ended.
    runcomfy_connection.set_clock(queue_seconds=0, run_seconds=0.1)
    asked = []
    trigger = deferred_trigger(monkeypatch, False, asked)
    assert (await asyncio.wait_for(first_event(trigger), timeout=30))["status"] == "succeeded"

    await trigger.cleanup()

    assert (runcomfy_connection.cancels, asked) == (0, [])


@pytest.mark.unit
@pytest.mark.parametrize(
    ("map_index", "states", "stored", "expected"),
    [
        (-1, {"r": {"t": "deferred"}}, "d-1", True),  # moved: the same try is still deferred
        (3, {"r": {"t_3": "deferred", "t": "failed"}}, "d-1", True),  # a mapped task is keyed task_id_mapindex
        (-1, {"r": {"t": "deferred"}}, "d-2", False),  # cleared, and deferred again by the new try
        (-1, {"r": {"t": "failed"}}, "d-1", False),  # marked failed
        (-1, {"r": {"t": "scheduled"}}, None, False),  # cleared: the new try has not started yet
        (3, {"r": {"t": "deferred"}}, "d-1", False),  # another map index's state does not count
    ],
)
async def test_a_deferral_is_current_while_its_try_is_deferred_with_its_id(
    monkeypatch, map_index, states, stored, expected
):
    from airflow.sdk.execution_time import comms, task_runner

    sent = []

    class Supervisor:  # answers as the triggerer does; before 3.3 the XCom is read with the sync call
        async def asend(self, msg):
            return self.send(msg)

        def send(self, msg):
            sent.append(msg)
            if isinstance(msg, comms.GetTaskStates):
                return comms.TaskStatesResult(task_states=states)
            return comms.XComResult(key=msg.key, value=stored)

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Supervisor(), raising=False)
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=map_index)

    from airflow_provider_runcomfy.version_compat import deferral_is_current

    assert await deferral_is_current(ti, "runcomfy_deferral", "d-1") is expected
    deferred = states["r"].get("t" if map_index < 0 else f"t_{map_index}") == "deferred"
    assert [type(m).__name__ for m in sent] == ["GetTaskStates", *(["GetXCom"] if deferred else [])]
    assert (sent[0].run_ids, sent[0].task_ids, sent[0].map_index) == (["r"], ["t"], map_index)
    if deferred:  # the XCom is read only when the state leaves the question open
        assert (sent[1].key, sent[1].task_id, sent[1].map_index) == ("runcomfy_deferral", "t", map_index)


@pytest.mark.unit
async def test_a_deferral_cannot_be_told_without_a_triggerer_to_ask():
    from airflow_provider_runcomfy.version_compat import deferral_is_current

    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1)
    assert await deferral_is_current(ti, "runcomfy_deferral", "d-1") is None
