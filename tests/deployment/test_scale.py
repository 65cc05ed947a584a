"""Scale: 100 mapped deferrable text-to-video tasks on 4 worker slots. All 100 jobs wait at once, in the
triggerer; the worker slots are only busy submitting and finishing, never more than 4 at a time.
"""

from __future__ import annotations

import threading
import time

import pytest

from .conftest import PARALLELISM
from .harness import wait_until

pytestmark = pytest.mark.timeout(900)

DAG, TASKS, RUN_SECONDS = "scale_100", 100, 3.0


def test_100_mapped_deferrable_tasks_never_use_more_than_4_worker_slots(deployment, server, report):
    server.reset(queue_seconds=3600, run_seconds=RUN_SECONDS)  # held in the queue until all are submitted
    samples: list[dict[str, int]] = []
    stop = threading.Event()
    started = time.monotonic()
    run_id = deployment.api.trigger(DAG)

    def sample() -> None:  # the metadata database's view, every 0.5 s, while the run lasts
        query = "SELECT state, count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s GROUP BY state"
        while not stop.is_set():
            samples.append({str(state): count for state, count in deployment.sql(query, DAG, run_id)})
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, name="slot-sampler", daemon=True)
    sampler.start()
    try:
        wait_until(
            lambda: samples and samples[-1].get("deferred") == TASKS,
            timeout=600,
            interval=0.5,
            what=f"{TASKS} tasks deferred",
        )
        in_flight_all = len(server.submitted())  # every job submitted, none finished: all in flight now
        released = server.control.release()
        state = deployment.api.wait_run(DAG, run_id, timeout=600)
    finally:
        stop.set()
        sampler.join(timeout=10)
    seconds = time.monotonic() - started

    tis = deployment.api.task_instances(DAG, run_id)
    stats = server.control.stats()
    max_running = max(s.get("running", 0) for s in samples)
    assert state == "success"
    assert len(tis) == TASKS and all(ti["state"] == "success" and ti["try_number"] == 1 for ti in tis)
    assert stats["submits"] == TASKS == in_flight_all == released
    assert 1 <= max_running <= PARALLELISM  # the sampler saw the slots in use, and never more than 4
    assert len(samples) >= 20
    report.record(
        "scale",
        tasks=TASKS,
        succeeded=sum(ti["state"] == "success" for ti in tis),
        submits=stats["submits"],
        parallelism=PARALLELISM,
        max_running=max_running,
        max_running_queued=max(s.get("running", 0) + s.get("queued", 0) for s in samples),
        max_deferred=max(s.get("deferred", 0) for s in samples),
        max_in_flight=in_flight_all,
        samples=len(samples),
        seconds=round(seconds, 1),
        checked=len(tis),
        duplicates=stats["submits"] - TASKS,
    )
