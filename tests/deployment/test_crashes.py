"""Crashes: the worker's task process SIGKILLed while it polls, and the triggerer killed with 20 tasks deferred.
Neither may cost a second job: the retry reattaches to the stored request, the new triggerer resumes the triggers.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from .harness import wait_until

pytestmark = pytest.mark.timeout(600)


def test_sigkill_of_the_task_process_while_it_waits_reattaches_on_retry(deployment, server, report):
    server.reset(queue_seconds=3600, run_seconds=1)  # held in the queue until the retry has reattached
    started = time.monotonic()
    run_id = deployment.api.trigger("crash_sigkill")
    pid_file = deployment.state_dir / f"crash_sigkill.{run_id}.1.pid"
    wait_until(pid_file.exists, timeout=120, what="the task process to start polling")
    time.sleep(1)  # let it poll at least once more

    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    after_kill = wait_until(
        lambda: (ti := deployment.api.task_instances("crash_sigkill", run_id)[0])["state"] != "running" and ti,
        timeout=60,
        interval=0.2,
        what="Airflow to notice the kill",
    )
    [request_id] = server.submitted()
    wait_until(
        lambda: "Reconnecting to existing job" in deployment.task_log("crash_sigkill", run_id, "clip", 2),
        timeout=120,
        what="the retry to reattach",
    )
    released = server.control.release()
    state = deployment.api.wait_run("crash_sigkill", run_id, timeout=180)

    [ti] = deployment.api.task_instances("crash_sigkill", run_id)
    assert after_kill["state"] in ("up_for_retry", "scheduled", "queued")
    assert "SIGKILL" in deployment.task_log("crash_sigkill", run_id, "clip", 1)
    assert (state, ti["state"], ti["try_number"]) == ("success", "success", 2)
    second_try = deployment.task_log("crash_sigkill", run_id, "clip", 2)
    assert "Reconnecting to existing job" in second_try and request_id in second_try
    assert server.control.stats()["submits"] == 1 == released  # the one job, still queued when retried
    report.record(
        "crash_sigkill",
        state_after_kill=after_kill["state"],
        tries=ti["try_number"],
        final_state=ti["state"],
        submits=1,
        seconds=round(time.monotonic() - started, 1),
        checked=1,
        duplicates=0,
    )


def test_triggerer_restart_with_20_deferred_tasks_resubmits_nothing(deployment, server, report):
    server.reset(queue_seconds=3600, run_seconds=1)  # held in the queue until the new triggerer polls them
    started = time.monotonic()
    run_id = deployment.api.trigger("triggerer_restart")

    def polling_in(triggerers: set[str] | None) -> int:
        """How many of the 20 tries have a trigger log that says "in_queue", written by one of ``triggerers``
        (any, when None). Each triggerer writes ``attempt=1.log.trigger.<its job id>.log``."""
        count = 0
        for index in range(20):
            folder = deployment.log_dir("triggerer_restart", run_id, "clip", index)
            logs = [p for p in folder.glob("attempt=1.log.trigger.*.log") if "in_queue" in p.read_text()]
            count += any(triggerers is None or p.name.split(".")[-2] in triggerers for p in logs)
        return count

    def all_polling() -> bool:
        states = [ti["state"] for ti in deployment.api.task_instances("triggerer_restart", run_id)]
        return states == ["deferred"] * 20 and polling_in(None) == 20

    wait_until(all_polling, timeout=180, interval=1, what="20 triggers polling in the triggerer")
    old = triggerer_jobs(deployment)
    deployment.restart("triggerer", signal.SIGKILL)
    wait_until(
        lambda: polling_in(triggerer_jobs(deployment) - old) == 20, timeout=180, interval=1, what="the new triggerer"
    )
    released = server.control.release()
    state = deployment.api.wait_run("triggerer_restart", run_id, timeout=300)

    tis = deployment.api.task_instances("triggerer_restart", run_id)
    stats = server.control.stats()
    trigger_text = "".join(deployment.trigger_logs("triggerer_restart", run_id, "clip", 1, i) for i in range(20))
    assert released == 20  # every job was still queued when the old triggerer died
    assert state == "success"
    assert [ti["state"] for ti in tis] == ["success"] * 20
    assert all(ti["try_number"] == 1 for ti in tis)  # resumed by the new triggerer, not retried
    assert (stats["submits"], stats["cancels"]) == (20, 0)
    assert "on_kill" not in trigger_text  # a restart is not a user's kill: nothing was cancelled
    report.record(
        "triggerer_restart",
        tasks=len(tis),
        succeeded=sum(ti["state"] == "success" for ti in tis),
        submits=stats["submits"],
        cancels=stats["cancels"],
        adopted=polling_in(triggerer_jobs(deployment) - old),
        seconds=round(time.monotonic() - started, 1),
        checked=len(tis),
        duplicates=stats["submits"] - len(tis),
    )


def triggerer_jobs(deployment) -> set[str]:
    return {str(job_id) for (job_id,) in deployment.sql("SELECT id FROM job WHERE job_type = 'TriggererJob'")}
