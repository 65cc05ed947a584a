"""Submit without waiting, wait with a deferrable sensor, copy the outputs to storage, use them in a Python task."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_runcomfy.operators.runcomfy import RunComfyDownloadOperator, RunComfyTextToVideoOperator
from airflow_provider_runcomfy.sensors.runcomfy import RunComfyRequestSensor

with DAG(
    dag_id="example_runcomfy_split_pipeline",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "runcomfy"],
):
    submit = RunComfyTextToVideoOperator(
        task_id="submit",
        prompt="Waves rolling onto a quiet beach at sunset, camera fixed",
        wait_for_completion=False,
    )
    wait = RunComfyRequestSensor(
        task_id="wait",
        request_id="{{ ti.xcom_pull(task_ids='submit', key='request_id') }}",
        model_id="{{ ti.xcom_pull(task_ids='submit')['model_id'] }}",
        deferrable=True,
        poke_interval=1,
        timeout=3600,
    )

    download = RunComfyDownloadOperator(
        task_id="download",
        request_id="{{ ti.xcom_pull(task_ids='wait')['request_id'] }}",
        output_dir="{{ var.value.get('runcomfy_output_dir', 'file:///tmp/runcomfy-outputs') }}/split",
    )

    @task
    def use_outputs(result: dict) -> str:
        print(f"Request {result['request_id']} made {result['output_urls']}, stored as {result['files']}")
        return result["files"][0]["uri"]

    submit >> wait >> download
    use_outputs(download.output)
