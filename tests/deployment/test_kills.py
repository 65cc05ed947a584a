"""Kills by a user, through the REST API as the UI does them: a deferred task marked failed, a deferred task
cleared, a sync task marked failed. Each one's queued job must be cancelled (seen by the server), so nothing is
left queued to be run and paid for: a deferred task's by its trigger's ``on_kill`` (Airflow 3.3+), or before 3.3,
which calls no trigger ``on_kill``, by its ``cleanup``.
"""

from __future__ import annotations

import re
import time

import pytest

from airflow_provider_runcomfy.version_compat import AIRFLOW_V_3_3_PLUS

from .harness import wait_until

pytestmark = pytest.mark.timeout(600)

DAG = "user_kills"
DEFERRED_FAILED, DEFERRED_CLEARED, SYNC_FAILED = "deferred_marked_failed", "deferred_cleared", "sync_marked_failed"
ON_KILL = "Trigger cancelled by user action, invoking on_kill"  # Airflow 3.3's triggerer
BY_TRIGGER = "trigger `on_kill`" if AIRFLOW_V_3_3_PLUS else "trigger `cleanup`"


def test_marking_or_clearing_a_waiting_task_cancels_its_queued_job(deployment, server, report):
    how, seconds = mark_and_clear_waiting_tasks(deployment, server)
    report.record(
        "kills",
        rows=[
            [
                DEFERRED_FAILED,
                "marked failed (PATCH taskInstances)",
                "yes",
                f"{BY_TRIGGER} -> cancel (triggerer log)",
                "failed",
            ],
            [
                SYNC_FAILED,
                "marked failed (PATCH taskInstances)",
                "yes",
                "operator `on_kill` -> cancel (task log)",
                "failed",
            ],
            [
                DEFERRED_CLEARED,
                "cleared (POST clearTaskInstances)",
                "yes",
                f"{BY_TRIGGER} -> cancel (triggerer log)",
                f"re-ran ({how}): success",
            ],
        ],
        notes=[
            "Server: 3 queued jobs, 3 cancelled, 0 left queued; 1 fresh job for the cleared task's re-run. "
            f"{seconds} s.",
        ],
        checked=3,
        duplicates=0,
    )


def mark_and_clear_waiting_tasks(deployment, server) -> tuple[str, float]:
    """Mark two of ``user_kills``'s tasks failed and clear the third while their jobs wait in the queue; assert
    each job was cancelled once, by the right ``on_kill``. Returns how the cleared task's re-run went, and the
    seconds it all took."""
    server.reset(queue_seconds=120, run_seconds=1)  # queued far longer than the test
    started = time.monotonic()
    run_id = deployment.api.trigger(DAG)

    def waiting() -> bool:
        states = {ti["task_id"]: ti["state"] for ti in deployment.api.task_instances(DAG, run_id)}
        triggers_polling = all(
            "in_queue" in deployment.trigger_logs(DAG, run_id, task) for task in (DEFERRED_FAILED, DEFERRED_CLEARED)
        )
        return states == {DEFERRED_FAILED: "deferred", DEFERRED_CLEARED: "deferred", SYNC_FAILED: "running"} and (
            triggers_polling and "in_queue" in deployment.task_log(DAG, run_id, SYNC_FAILED)
        )

    wait_until(waiting, timeout=120, what="two triggers and one worker polling queued jobs")
    requests = {
        task: _request_id(deployment.task_log(DAG, run_id, task))
        for task in (DEFERRED_FAILED, DEFERRED_CLEARED, SYNC_FAILED)
    }
    server.control.clock(0.5, 0.5)  # a re-run after the clear gets a quick job

    deployment.api.set_state(DAG, run_id, DEFERRED_FAILED, "failed")
    deployment.api.set_state(DAG, run_id, SYNC_FAILED, "failed")
    deployment.api.clear(DAG, run_id, [DEFERRED_CLEARED])
    wait_until(lambda: server.control.stats()["cancels"] >= 3, timeout=60, what="three cancels")
    state = deployment.api.wait_run(DAG, run_id, timeout=180)

    tis = {ti["task_id"]: ti for ti in deployment.api.task_instances(DAG, run_id)}
    log = server.control.log()
    cancelled = {e["request_id"] for e in log if e["call"] == "cancel" and e["status"] == 202}
    assert cancelled == set(requests.values())
    assert all(server.control.status(request_id) == "cancelled" for request_id in requests.values())
    for task in (DEFERRED_FAILED, DEFERRED_CLEARED):  # the trigger did it, in the triggerer
        trigger_log = deployment.trigger_logs(DAG, run_id, task, 1)
        assert (ON_KILL in trigger_log) is AIRFLOW_V_3_3_PLUS
        assert f"Cancel of RunComfy request {requests[task]} on kill: cancelled" in trigger_log
    assert f"Cancel of RunComfy request {requests[SYNC_FAILED]} on kill: cancelled" in deployment.task_log(
        DAG, run_id, SYNC_FAILED
    )  # the operator's on_kill, on the worker
    assert (tis[DEFERRED_FAILED]["state"], tis[DEFERRED_FAILED]["try_number"]) == ("failed", 1)
    assert (tis[SYNC_FAILED]["state"], tis[SYNC_FAILED]["try_number"]) == ("failed", 1)
    assert tis[DEFERRED_CLEARED]["try_number"] == 2  # the clear made it run again
    assert state == "failed"  # the two tasks marked failed

    # The re-run of the cleared task submits afresh (once) and succeeds, whether it started before the old
    # trigger's on_kill cancelled the queued job (it reattached, then met the cancel) or after (it saw it at once).
    assert tis[DEFERRED_CLEARED]["state"] == "success"
    fresh = [request_id for request_id in server.submitted(log) if request_id not in requests.values()]
    assert len(fresh) == 1
    assert server.queued_jobs(log) == []
    second_try = deployment.task_log(DAG, run_id, DEFERRED_CLEARED, 2)
    raced = "of an earlier try was cancelled" in second_try
    assert raced or "Prior job in terminal state, resubmitting fresh" in second_try
    how = "reattached, met the cancel, submitted afresh" if raced else "saw the cancel, submitted afresh"
    assert sorted(e["request_id"] for e in log if e["call"] == "cancel") == sorted(cancelled)  # one call each
    return how, round(time.monotonic() - started, 1)


def _request_id(task_log: str) -> str:
    match = re.search(r"Submitted RunComfy request ([\w-]+)", task_log)
    assert match, "the task did not log its submit"
    return match.group(1)
