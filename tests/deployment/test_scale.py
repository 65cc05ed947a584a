"""Scale: 100 mapped deferrable text-to-video tasks on 4 worker slots. All 100 jobs wait at once, in the
triggerer; the worker slots are only busy submitting and finishing, never more than 4 at a time.
"""

from __future__ import annotations

import time

import pytest

from .conftest import PARALLELISM
from .harness import StateSampler, wait_until

pytestmark = pytest.mark.timeout(900)

DAG, TASKS, RUN_SECONDS = "scale_100", 100, 3.0


def test_100_mapped_deferrable_tasks_never_use_more_than_4_worker_slots(deployment, server, report):
    server.reset(queue_seconds=3600, run_seconds=RUN_SECONDS)  # held in the queue until all are submitted
    started = time.monotonic()
    run_id = deployment.api.trigger(DAG)
    with StateSampler(deployment, DAG, run_id) as sampler:  # the metadata database's view, while the run lasts
        wait_until(
            lambda: sampler.samples and sampler.samples[-1].get("deferred") == TASKS,
            timeout=600,
            interval=0.5,
            what=f"{TASKS} tasks deferred",
        )
        in_flight_all = len(server.submitted())  # every job submitted, none finished: all in flight now
        released = server.control.release()
        state = deployment.api.wait_run(DAG, run_id, timeout=600)
    seconds = time.monotonic() - started

    tis = deployment.api.task_instances(DAG, run_id)
    stats = server.control.stats()
    max_running = sampler.most("running")
    assert state == "success"
    assert len(tis) == TASKS and all(ti["state"] == "success" and ti["try_number"] == 1 for ti in tis)
    assert stats["submits"] == TASKS == in_flight_all == released
    assert 1 <= max_running <= PARALLELISM  # the sampler saw the slots in use, and never more than 4
    assert len(sampler.samples) >= 20
    report.record(
        "scale",
        tasks=TASKS,
        succeeded=sum(ti["state"] == "success" for ti in tis),
        submits=stats["submits"],
        parallelism=PARALLELISM,
        max_running=max_running,
        max_running_queued=sampler.most("running", "queued"),
        max_deferred=sampler.most("deferred"),
        max_in_flight=in_flight_all,
        samples=len(sampler.samples),
        seconds=round(seconds, 1),
        checked=len(tis),
        duplicates=stats["submits"] - TASKS,
    )
