"""One hundred mapped deferrable text-to-video tasks: with four worker slots, all hundred jobs wait at once."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator

with DAG(dag_id="scale_100", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    RunComfyTextToVideoOperator.partial(task_id="clip", deferrable=True, poll_interval=3.0).expand(
        prompt=[f"product shot number {n}, slow turn, studio light" for n in range(100)]
    )
