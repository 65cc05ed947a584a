"""The provider on the Celery deployment: 200 tasks over two workers and two triggerers, triggers moving when a
triggerer dies or freezes, kills by a user, a worker killed under a task, timeouts across a triggerer restart.

Where a case needs every trigger on one triggerer, the other is stopped while the tasks defer and started again
before the fault: a triggerer takes unassigned triggers up to its capacity, so which one gets them is otherwise
a race.
"""

from __future__ import annotations

import collections
import re
import signal
import time

import pytest

from ..harness import StateSampler, wait_until
from ..test_kills import mark_and_clear_waiting_tasks
from .conftest import CONCURRENCY, TASKS, WORKERS

pytestmark = pytest.mark.timeout(900)

MOVED = "its trigger moved to another triggerer: not cancelled"


def cancel_calls(server) -> list[str]:
    return [e["request_id"] for e in server.control.log() if e["call"] == "cancel"]


def all_polling(deployment, dag_id: str, run_id: str, on: set[int] | None = None) -> bool:
    """Every mapped task is deferred and its trigger polled (on one of the triggerer jobs ``on``, if given)."""
    states = [ti["state"] for ti in deployment.api.task_instances(dag_id, run_id)]
    owners = deployment.trigger_owners(dag_id, run_id, "clip", TASKS[dag_id])
    return states == ["deferred"] * TASKS[dag_id] and all(o and (on is None or o & on) for o in owners)


def defer_all_on_one_triggerer(deployment, dag_id: str) -> tuple[str, int]:
    """Run ``dag_id`` with ``triggerer-2`` stopped, so that ``triggerer-1`` holds every trigger; start
    ``triggerer-2`` again. Returns the run id and ``triggerer-1``'s job id."""
    deployment.services["triggerer-2"].stop()
    wait_until(lambda: len(deployment.triggerer_jobs()) == 1, timeout=60, what="one triggerer left")
    [first] = deployment.triggerer_jobs()
    run_id = deployment.api.trigger(dag_id)
    wait_until(lambda: all_polling(deployment, dag_id, run_id, {first}), timeout=300, interval=1, what="triggers")
    deployment.start_component("triggerer-2")
    wait_until(lambda: len(deployment.triggerer_jobs()) == 2, timeout=120, what="the second triggerer")
    return run_id, first


def finish(deployment, server, dag_id: str, run_id: str) -> list[dict]:
    """Start every queued job, wait for the run; assert each task succeeded on its first try with one job."""
    released = server.control.release()
    state = deployment.api.wait_run(dag_id, run_id, timeout=600)
    tis = deployment.api.task_instances(dag_id, run_id)
    assert state == "success"
    assert [(ti["state"], ti["try_number"]) for ti in tis] == [("success", 1)] * TASKS[dag_id]
    assert server.control.stats()["submits"] == TASKS[dag_id] == released  # no duplicate: one job per task
    return tis


def test_200_mapped_deferrable_tasks_on_two_workers_and_two_triggerers(celery_deployment, celery_server, report):
    deployment, server, dag_id = celery_deployment, celery_server, "celery_scale_200"
    server.reset(queue_seconds=3600, run_seconds=3.0)  # held in the queue until all are submitted
    started = time.monotonic()
    run_id = deployment.api.trigger(dag_id)
    with StateSampler(deployment, dag_id, run_id) as sampler:
        wait_until(lambda: all_polling(deployment, dag_id, run_id), timeout=600, interval=2, what="200 triggers")
        tis = finish(deployment, server, dag_id, run_id)
    seconds = time.monotonic() - started

    per_triggerer = collections.Counter(
        job for owners in deployment.trigger_owners(dag_id, run_id, "clip", TASKS[dag_id]) for job in owners
    )
    slots = WORKERS * CONCURRENCY
    assert 1 <= sampler.most("running") <= slots  # the workers' slots were used, never more than they have
    assert sampler.most("deferred") == TASKS[dag_id]  # all 200 waited at once, holding no slot
    assert sum(per_triggerer.values()) >= TASKS[dag_id]
    assert cancel_calls(server) == []
    report.record(
        "celery_scale",
        tasks=len(tis),
        succeeded=sum(ti["state"] == "success" for ti in tis),
        submits=server.control.stats()["submits"],
        per_triggerer=sorted(per_triggerer.values(), reverse=True),
        slots=slots,
        max_running=sampler.most("running"),
        max_deferred=sampler.most("deferred"),
        seconds=round(seconds, 1),
        checked=len(tis),
        duplicates=0,
    )


def test_a_sigkilled_triggerers_triggers_move_to_the_other_with_no_cancel(celery_deployment, celery_server, report):
    deployment, server, dag_id = celery_deployment, celery_server, "celery_triggerer_kill"
    server.reset(queue_seconds=3600, run_seconds=1.0)
    run_id, first = defer_all_on_one_triggerer(deployment, dag_id)
    [second] = set(deployment.triggerer_jobs()) - {first}
    started = time.monotonic()

    deployment.services["triggerer-1"].kill(signal.SIGKILL)
    wait_until(lambda: all_polling(deployment, dag_id, run_id, {second}), timeout=180, interval=1, what="the takeover")
    took_over = time.monotonic() - started
    finish(deployment, server, dag_id, run_id)
    deployment.start_component("triggerer-1")
    wait_until(lambda: len(deployment.triggerer_jobs()) == 2, timeout=120, what="triggerer-1 back")

    assert cancel_calls(server) == [] and server.control.stats()["cancels"] == 0
    report.record(
        "celery_triggerer_kill",
        triggers=TASKS[dag_id],
        adopted=sum(second in owners for owners in deployment.trigger_owners(dag_id, run_id, "clip", TASKS[dag_id])),
        took_over_s=round(took_over, 1),
        succeeded=TASKS[dag_id],
        cancels=0,
        checked=TASKS[dag_id],
        duplicates=0,
    )


def test_a_frozen_triggerer_resumed_after_its_triggers_moved_cancels_nothing(celery_deployment, celery_server, report):
    deployment, server, dag_id = celery_deployment, celery_server, "celery_triggerer_freeze"
    server.reset(queue_seconds=3600, run_seconds=1.0)
    run_id, frozen = defer_all_on_one_triggerer(deployment, dag_id)
    [other] = set(deployment.triggerer_jobs()) - {frozen}

    deployment.services["triggerer-1"].kill(signal.SIGSTOP)  # alive, but silent past the 10 s threshold
    try:
        wait_until(
            lambda: all_polling(deployment, dag_id, run_id, {other}), timeout=180, interval=1, what="the takeover"
        )
    finally:
        deployment.services["triggerer-1"].kill(signal.SIGCONT)

    def moved_logged() -> int:
        """Jobs whose trigger's on_kill, on the resumed triggerer, found its task still deferred: in the trigger's
        log, or in the triggerer's own once Airflow had closed that (the decision can outlast the trigger)."""
        folders = (deployment.log_dir(dag_id, run_id, "clip", i) for i in range(TASKS[dag_id]))
        logs = [folder / f"attempt=1.log.trigger.{frozen}.log" for folder in folders]
        text = deployment.tail("triggerer-1", 10_000_000) + "".join(p.read_text(errors="replace") for p in logs)
        return len(set(re.findall(r"RunComfy request ([\w-]+): [^\n]*" + re.escape(MOVED), text)))

    wait_until(lambda: moved_logged() == TASKS[dag_id], timeout=180, interval=1, what="40 on_kill decisions")
    finish(deployment, server, dag_id, run_id)

    wrongful = cancel_calls(server)  # every job was still watched by the other triggerer
    assert wrongful == [] and server.control.stats()["cancels"] == 0
    report.record(
        "celery_triggerer_freeze",
        triggers=TASKS[dag_id],
        moved=sum(other in owners for owners in deployment.trigger_owners(dag_id, run_id, "clip", TASKS[dag_id])),
        on_kill_left_alone=moved_logged(),
        wrongful_cancels=len(wrongful),
        succeeded=TASKS[dag_id],
        checked=TASKS[dag_id],
        duplicates=0,
    )


def test_marking_or_clearing_a_deferred_task_still_cancels_its_job(celery_deployment, celery_server, report):
    how, seconds = mark_and_clear_waiting_tasks(celery_deployment, celery_server)
    report.record("celery_kills", cleared=how, cancels=3, seconds=seconds, checked=3, duplicates=0)


def test_a_sigkilled_celery_worker_s_task_is_retried_and_reattaches(celery_deployment, celery_server, report):
    deployment, server, dag_id = celery_deployment, celery_server, "crash_sigkill"
    server.reset(queue_seconds=3600, run_seconds=1)  # held in the queue until the retry has reattached
    started = time.monotonic()
    run_id = deployment.api.trigger(dag_id)
    pid_file = deployment.state_dir / f"{dag_id}.{run_id}.1.pid"
    wait_until(pid_file.exists, timeout=120, what="the task process to start polling")
    worker = deployment.component_of(int(pid_file.read_text()))
    assert worker in deployment.workers

    deployment.services[worker].kill_tree()  # the whole worker: Celery, the supervisor, the task process
    wait_until(
        lambda: "Reconnecting to existing job" in deployment.task_log(dag_id, run_id, "clip", 2),
        timeout=180,
        what="the retry to reattach",
    )
    retry_pid = int((deployment.state_dir / f"{dag_id}.{run_id}.2.pid").read_text())
    retried_on = deployment.component_of(retry_pid)
    released = server.control.release()
    state = deployment.api.wait_run(dag_id, run_id, timeout=180)
    deployment.start_component(worker)

    [ti] = deployment.api.task_instances(dag_id, run_id)
    assert (state, ti["state"], ti["try_number"]) == ("success", "success", 2)
    assert retried_on in deployment.workers and retried_on != worker
    assert server.control.stats()["submits"] == 1 == released
    report.record(
        "celery_worker_kill",
        killed=worker,
        retried_on=retried_on,
        tries=ti["try_number"],
        submits=1,
        seconds=round(time.monotonic() - started, 1),
        checked=1,
        duplicates=0,
    )


def test_timeouts_across_a_triggerer_restart_cancel_each_job_once(celery_deployment, celery_server, report):
    deployment, server, dag_id = celery_deployment, celery_server, "celery_timeouts"
    server.reset(queue_seconds=3600, run_seconds=1)  # queued past every task's 90 s timeout
    started = time.monotonic()
    run_id, restarted = defer_all_on_one_triggerer(deployment, dag_id)
    deployment.restart("triggerer-1", signal.SIGKILL)  # its triggers are unowned for the 10 s threshold
    state = deployment.api.wait_run(dag_id, run_id, timeout=300)

    tis = deployment.api.task_instances(dag_id, run_id)
    cancels = collections.Counter(cancel_calls(server))
    submitted = server.submitted()
    assert state == "failed"
    assert [(ti["state"], ti["try_number"]) for ti in tis] == [("failed", 1)] * TASKS[dag_id]
    assert len(submitted) == TASKS[dag_id]
    assert cancels == dict.fromkeys(submitted, 1)  # each job cancelled once, by whichever trigger ran it last
    assert all(server.control.status(request_id) == "cancelled" for request_id in submitted)
    for index in range(TASKS[dag_id]):
        assert any("RunComfyTimeoutError" in e for e in deployment.task_errors(dag_id, run_id, "clip", 1, index))
    report.record(
        "celery_timeouts",
        tasks=len(tis),
        on_restarted=sum(restarted in owners for owners in deployment.trigger_owners(dag_id, run_id, "clip", 20)),
        timed_out=len(tis),
        cancels=sum(cancels.values()),
        seconds=round(time.monotonic() - started, 1),
        checked=len(tis),
        duplicates=0,
    )
