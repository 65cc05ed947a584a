"""A clip copied to storage by a task that may retry: the test breaks the first download half-way."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator

with DAG(dag_id="storage_retry_dag", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    RunComfyTextToVideoOperator(
        task_id="clip",
        prompt="rain on a window at night",
        output_dir="{{ var.value.runcomfy_output_dir }}",
        poll_interval=0.2,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
