"""One text-to-video task, for outcome tests: the test tells the server how the job ends."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator

with DAG(dag_id="single_clip_dag", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    for mode in ("sync", "deferrable"):
        RunComfyTextToVideoOperator(
            task_id=f"clip_{mode}", prompt="a clock tower at noon", deferrable=mode == "deferrable", poll_interval=0.5
        )
