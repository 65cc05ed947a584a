"""Tasks that fail the same way on every try: each must fail once, without using its retries."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import (
    RunComfyDownloadOperator,
    RunComfyModelOperator,
    RunComfyTextToVideoOperator,
)
from airflow_provider_runcomfy.sensors.runcomfy import RunComfyRequestSensor

NOTHING = "{{ ti.xcom_pull(task_ids='no_such_task', key='request_id') }}"  # a typo: renders to None

with DAG(
    dag_id="deterministic_failures_dag",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"duration": 7, "empty": "", "escape": "../../escape.mp4", "scheme": "nosuchscheme://bucket"},
    default_args={"retries": 2, "retry_delay": timedelta(seconds=0), "poll_interval": 0.2},
):
    RunComfyTextToVideoOperator(task_id="bad_duration", prompt="a fox", duration="{{ params.duration }}")
    RunComfyTextToVideoOperator(task_id="empty_prompt", prompt="{{ params.empty }}")
    for task_id in ("unknown_model", "rejected_inputs"):  # the test makes the server refuse these submits
        RunComfyModelOperator(task_id=task_id, model_id=f"acme/{task_id}/v1", inputs={"prompt": "a fox"})
    RunComfyTextToVideoOperator(
        task_id="escaping_name", prompt="a fox", output_dir="file:///tmp/clips", output_name="{{ params.escape }}"
    )
    RunComfyTextToVideoOperator(task_id="unknown_scheme", prompt="a fox", output_dir="{{ params.scheme }}/clips")
    RunComfyRequestSensor(task_id="sensor_on_nothing", request_id=NOTHING, poke_interval=0.2)
    RunComfyDownloadOperator(task_id="download_of_nothing", request_id=NOTHING, output_dir="file:///tmp/clips")
