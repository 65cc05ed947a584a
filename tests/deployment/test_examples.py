"""Every example DAG succeeds in the deployment, in runs triggered without a logical date (a plain
``airflow dags trigger``, the REST API with ``logical_date: null``, an Asset event): what a user's first runs are."""

from __future__ import annotations

import time

import pytest

from .conftest import EXAMPLE_DAG_IDS
from .harness import wait_until

pytestmark = pytest.mark.timeout(600)


def approver(deployment, dag_id: str, run_id: str, delay: float = 5.0):
    """For ``wait_until``: answer the review as a person does in the UI (the HITL REST endpoint), ``delay`` seconds
    after it was asked; True once answered.

    Not at once: Airflow 3.3.2's scheduler can fail a task that is resumed within a second of pausing, before it
    has handled the executor's report of the pause (apache/airflow #67287); no reviewer is that quick.
    """
    asked_at: float | None = None

    def approve() -> bool:
        nonlocal asked_at
        states = {ti["task_id"]: ti["state"] for ti in deployment.api.task_instances(dag_id, run_id)}
        if states.get("review") not in ("deferred", "awaiting_input"):
            return False
        asked_at = asked_at or time.monotonic()
        if time.monotonic() - asked_at < delay:
            return False
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails"
        deployment.api.request("PATCH", path, json={"chosen_options": ["Approve"]})
        return True

    return approve


def settle(deployment, runs: dict[str, str], timeout: float = 420) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Wait until every run has ended, acting as a user watching them: answer the review when it asks, and clear,
    once, a task that Airflow's executor-event race failed (``raced_tasks``), with what it failed downstream (its
    retry reattaches to its job). Returns each run's state and what was cleared.

    One loop for all of it: a race that fails the review's upstream ``generate`` must be cleared before the review
    can ever ask."""
    review = "example_runcomfy_human_review"
    approve = approver(deployment, review, runs[review]) if review in runs else None
    cleared: dict[str, list[str]] = {}

    def ended() -> dict[str, str] | None:
        nonlocal approve
        if approve is not None and approve():
            approve = None
        states = {dag_id: deployment.api.run_state(dag_id, run_id) for dag_id, run_id in runs.items()}
        for dag_id, state in states.items():
            raced = (
                deployment.raced_tasks(dag_id, runs[dag_id]) - set(cleared.get(dag_id, ()))
                if state == "failed"
                else set()
            )
            if raced:
                deployment.api.clear(dag_id, runs[dag_id], sorted(raced), only_failed=True)
                cleared.setdefault(dag_id, []).extend(sorted(raced))
                states[dag_id] = "cleared"
        return states if all(state in ("success", "failed") for state in states.values()) else None

    return wait_until(ended, timeout=timeout, interval=1, what="every example run to end"), cleared


def test_every_example_succeeds_without_a_logical_date(deployment, server, report):
    server.reset(queue_seconds=0.5, run_seconds=0.5)
    runs = {dag_id: deployment.api.trigger(dag_id) for dag_id in EXAMPLE_DAG_IDS}  # logical_date: null
    states, cleared = settle(deployment, runs)
    checker = wait_until(
        lambda: [
            r
            for r in deployment.api.request("GET", "/dags/runcomfy_check_clip/dagRuns")["dag_runs"]
            if r["state"] in ("success", "failed")
        ],
        timeout=180,
        what="the Asset-triggered run of runcomfy_check_clip",
    )
    runs["runcomfy_check_clip"], states["runcomfy_check_clip"] = checker[0]["dag_run_id"], checker[0]["state"]

    log = server.control.log()
    submitted = {e["request_id"] for e in log if e["call"] == "submit" and e["status"] == 200}
    rows, checked = [], 0
    for dag_id, run_id in runs.items():
        run = deployment.api.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        tis = deployment.api.task_instances(dag_id, run_id)
        errors = {
            (ti["task_id"], ti["map_index"]): deployment.task_errors(
                dag_id, run_id, ti["task_id"], ti["try_number"], ti["map_index"]
            )
            for ti in tis
            if ti["state"] != "success"
        }
        assert (states[dag_id], run["logical_date"]) == ("success", None), (dag_id, run_id, errors)
        assert all(ti["state"] == "success" for ti in tis), tis
        checked += len(tis)
        rows.append([dag_id, run["run_type"], run["logical_date"], states[dag_id], len(tis)])
    # one job per generating example, three for the batch, two for the chain (an image, then its video): a
    # cleared task reattached to its job
    assert len(submitted) == len(EXAMPLE_DAG_IDS) + 3
    fetched = [f for e in log if e["call"] == "submit" for f in e.get("fetched", [])]
    assert sorted(f["field"] for f in fetched if f["status"] == 200) == ["image_url", "image_url"], fetched
    variables = deployment.api.request("GET", "/variables", params={"limit": 1000})["variables"]
    # Before 3.3 each model task keeps its request in a Variable for its retries, and deletes it when it ends (a
    # task another test marked failed while it waited never ends on its own: only these runs' tasks count).
    left = [
        v["key"]
        for v in variables
        if v["key"].startswith("runcomfy_task_state_")
        and any(
            f" of {dag_id}." in v["description"] and f"run {run_id}:" in v["description"]
            for dag_id, run_id in runs.items()
        )
    ]
    assert left == []
    assert server.queued_jobs(log) == []
    report.record("examples", rows=rows, checked=checked, submits=len(submitted), cleared=cleared)
