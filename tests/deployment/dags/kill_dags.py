"""Tasks a user kills while their jobs are queued: marked failed (deferred and sync) or cleared (deferred)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator

with DAG(dag_id="user_kills", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    for task_id, deferrable in (
        ("deferred_marked_failed", True),
        ("deferred_cleared", True),
        ("sync_marked_failed", False),
    ):
        RunComfyTextToVideoOperator(
            task_id=task_id, prompt=f"a night train ({task_id})", deferrable=deferrable, poll_interval=0.5
        )
