"""Twenty deferred tasks, for a triggerer restart: their triggers must be picked up again, nothing resubmitted."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator

with DAG(dag_id="triggerer_restart", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    RunComfyTextToVideoOperator.partial(
        task_id="clip", deferrable=True, poll_interval=1.0, retries=1, retry_delay=timedelta(seconds=1)
    ).expand(prompt=[f"a red kite over the sea, take {n}" for n in range(20)])
