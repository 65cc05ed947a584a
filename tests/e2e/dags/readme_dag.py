"""Written only from the README's quick start: what a new user would write on day one."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_runcomfy.operators.runcomfy import RunComfyImageToVideoOperator, RunComfyTextToVideoOperator
from airflow_provider_runcomfy.sensors.runcomfy import RunComfyRequestSensor

with DAG(dag_id="readme_dag", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    clip = RunComfyTextToVideoOperator(
        task_id="clip",
        prompt="A product shot of {{ params.get('product', 'a red shoe') }}, slow turn, studio light",
        aspect_ratio="9:16",
        resolution="1080p",
        duration=8,
        deferrable=True,
        poll_interval=0.5,
    )
    animated = RunComfyImageToVideoOperator(
        task_id="animate",
        prompt="the girl is smiling",
        image_url="https://example.com/first-frame.webp",
        deferrable=False,
        poll_interval=0.5,
    )
    submit = RunComfyTextToVideoOperator(task_id="submit", prompt="a paper boat", wait_for_completion=False)
    wait = RunComfyRequestSensor(
        task_id="wait",
        request_id="{{ ti.xcom_pull(task_ids='submit', key='request_id') }}",
        deferrable=True,
        poke_interval=0.5,
    )
    submit >> wait

    @task
    def publish(result: dict) -> str:
        return result["output_urls"][0]

    publish(wait.output)
