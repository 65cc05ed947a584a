"""The one terminal rule (``_watch``), driven with scripted answers: no server, no sleeping."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_runcomfy.exceptions import RunComfyTimeoutError
from airflow_provider_runcomfy.hooks.runcomfy import _watch
from airflow_provider_runcomfy.schemas.api import CancelResponse, RequestResult, RequestStatus

pytestmark = pytest.mark.unit
LOG = logging.getLogger("test_waiting")


def status(value: str, position: int | None = None) -> RequestStatus:
    return RequestStatus(request_id="r", status=value, queue_position=position)


def result(value: str) -> RequestResult:
    return RequestResult(request_id="r", status=value)


def drive(answers: dict[str, list], *, timeout: float = 3600, cancel_on_timeout: bool = True):
    """Run the watch to its end, answering each call from ``answers``; return (outcome or error, calls made)."""
    watch = _watch("r", LOG, timeout, 1.0, True, cancel_on_timeout)
    calls: list[str] = []
    answer = None
    try:
        while True:
            call = watch.send(answer)
            name = {None: "sleep", "get_status": "status", "get_result": "result", "cancel": "cancel"}[call.method]
            calls.append(name)
            if name == "result":
                assert call.kwargs == {"include_cost": True}
            answer = None if name == "sleep" else answers[name].pop(0)
    except StopIteration as done:
        return done.value, calls
    except RunComfyTimeoutError as error:
        return error, calls


def test_a_job_that_succeeds_returns_its_result_after_sleeping_between_reads():
    final, calls = drive(
        {"status": [status("in_queue", 0), status("in_progress"), status("completed")], "result": [result("succeeded")]}
    )
    assert final.status == "succeeded"
    assert calls == ["status", "sleep", "status", "sleep", "status", "result"]


@pytest.mark.parametrize("outcome", ["failed", "cancelled", "canceled"])
def test_a_final_failure_is_returned_for_the_caller_to_judge(outcome):
    final, calls = drive({"status": [status("completed")], "result": [result(outcome)]})
    assert final.status == outcome
    assert calls == ["status", "result"]


def test_a_result_lagging_behind_the_status_is_waited_for():
    answers = {
        "status": [status("completed")] * 3,
        "result": [result("in_progress"), result("in_progress"), result("succeeded")],
    }
    final, calls = drive(answers)
    assert final.status == "succeeded"
    assert calls == ["status", "result", "sleep", "status", "result", "sleep", "status", "result"]


@pytest.mark.parametrize("unknown", ["processing", "pending", "starting"])
def test_an_unknown_status_is_still_running(unknown):
    final, calls = drive({"status": [status(unknown), status("completed")], "result": [result("succeeded")]})
    assert final.status == "succeeded"
    assert calls == ["status", "sleep", "status", "result"]


def test_an_unknown_result_status_is_never_taken_for_an_end():
    error, calls = drive(
        {
            "status": [status("completed")] * 50,
            "result": [result("weird")] * 50,
            "cancel": [CancelResponse(request_id="r", outcome="not_cancellable")],
        },
        timeout=0,
    )
    assert isinstance(error, RunComfyTimeoutError)
    assert calls == ["status", "result", "cancel"]


@pytest.mark.parametrize(
    ("outcome", "cancelled", "says"),
    [("cancelled", True, "still queued and has been cancelled"), ("not_cancellable", False, "could not be cancelled")],
)
def test_past_the_deadline_a_queued_job_is_cancelled(outcome, cancelled, says):
    error, calls = drive(
        {"status": [status("in_queue", 4)], "cancel": [CancelResponse(request_id="r", outcome=outcome)]}, timeout=0
    )
    assert isinstance(error, RunComfyTimeoutError)
    assert error.cancelled is cancelled and error.request_id == "r"
    assert says in str(error)
    assert calls == ["status", "cancel"]


def test_past_the_deadline_a_watcher_that_did_not_submit_cancels_nothing():
    error, calls = drive({"status": [status("in_queue", 4)]}, timeout=0, cancel_on_timeout=False)
    assert isinstance(error, RunComfyTimeoutError)
    assert not error.cancelled
    assert "left running" in str(error)
    assert calls == ["status"]


def test_a_finished_job_is_returned_even_when_the_deadline_has_passed():
    final, calls = drive({"status": [status("completed")], "result": [result("succeeded")]}, timeout=0)
    assert final.status == "succeeded"
    assert calls == ["status", "result"]


def test_each_change_of_state_is_logged_once(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    drive(
        {
            "status": [status("in_queue", 1), status("in_queue", 1), status("in_queue", 0), status("completed")],
            "result": [result("succeeded")],
        }
    )
    lines = [record.getMessage() for record in caplog.records]
    assert [line.split(" after ")[0] for line in lines] == [
        "RunComfy request r is in_queue (queue position 1)",
        "RunComfy request r is in_queue (queue position 0)",
        "RunComfy request r is completed",
    ]


def test_reads_keep_a_fixed_cadence_whatever_their_round_trip(monkeypatch):
    """Reads taking 0.3 s still start 1 s apart (sleeping 1 s after each answer, they would drift 0.3 s an interval,
    and a finish could wait 1.3 s to be seen); a read slower than the interval (1.4 s) is followed at once, and the
    next one is back on the cadence."""
    import airflow_provider_runcomfy.hooks.runcomfy as hook_module

    clock = [100.0]
    monkeypatch.setattr(hook_module.time, "monotonic", lambda: clock[0])
    watch = _watch("r", LOG, 3600, 1.0, False, True)
    call, starts = watch.send(None), []
    for took in (0.3, 0.3, 1.4, 0.3, 0.3, 0.3):
        assert call.method == "get_status"
        starts.append(clock[0])
        clock[0] += took
        call = watch.send(status("in_progress"))
        assert call.method is None
        clock[0] += call.seconds
        call = watch.send(None)
    assert [round(start - starts[0], 6) for start in starts] == [0.0, 1.0, 2.0, 3.4, 4.0, 5.0]


def test_the_cadence_starts_at_the_first_reads_turn(monkeypatch):
    """The async side says when each read left its loop's queue (``read_started``). The cadence starts at the first
    read's turn, 0.5 s after it asked (so triggers whose first reads queued together read apart from then on); a
    later wait for a turn (0.2 s) and the round trips (0.3 s) do not move the reads after it."""
    import airflow_provider_runcomfy.hooks.runcomfy as hook_module

    clock, turn = [100.0], [0.0]
    monkeypatch.setattr(hook_module.time, "monotonic", lambda: clock[0])
    watch = _watch("r", LOG, 3600, 1.0, False, True, read_started=lambda: turn[0])
    call, asked = watch.send(None), []
    for waited in (0.5, 0.0, 0.2, 0.0):
        assert call.method == "get_status"
        asked.append(clock[0])
        clock[0] += waited
        turn[0] = clock[0]
        clock[0] += 0.3
        call = watch.send(status("in_progress"))
        clock[0] += call.seconds
        call = watch.send(None)
    assert [round(ask - asked[0], 6) for ask in asked] == [0.0, 1.5, 2.5, 3.5]
