"""The four ways of waiting for a request: sync and deferrable operator, poke and deferrable sensor."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator
from airflow_provider_runcomfy.sensors.runcomfy import RunComfyRequestSensor

with DAG(dag_id="four_paths_dag", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    RunComfyTextToVideoOperator(task_id="sync_operator", prompt="a lantern", deferrable=False, poll_interval=0.2)
    RunComfyTextToVideoOperator(task_id="deferrable_operator", prompt="a kite", deferrable=True, poll_interval=0.2)
    submit = RunComfyTextToVideoOperator(task_id="submit", prompt="a paper boat", wait_for_completion=False)
    for mode in ("poke", "deferrable"):
        submit >> RunComfyRequestSensor(
            task_id=f"{mode}_sensor",
            request_id="{{ ti.xcom_pull(task_ids='submit', key='request_id') }}",
            deferrable=mode == "deferrable",
            poke_interval=0.2,
            timeout=60,
        )
