"""What the RunComfy page and task tab are tested with: mapped generations (one prompt is markup), a job
submitted by one task and watched by a sensor, and a job that fails (no retries: its failure stays on the page)."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator
from airflow_provider_runcomfy.sensors.runcomfy import RunComfyRequestSensor

PROMPTS = ["a paper boat on a pond", "<script>alert(1)</script> & a lighthouse", "a kite over the dunes"]
OUTPUTS = f"file://{os.environ.get('RUNCOMFY_DEPLOYMENT_STATE', '/tmp')}/ui-outputs"

with DAG(dag_id="ui_generations", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    RunComfyTextToVideoOperator.partial(
        task_id="generate", deferrable=True, poll_interval=0.5, include_cost=True, output_dir=OUTPUTS
    ).expand(prompt=PROMPTS)
    submit = RunComfyTextToVideoOperator(
        task_id="submit", prompt="a lantern festival, watched by a sensor", wait_for_completion=False
    )
    watch = RunComfyRequestSensor(
        task_id="watch",
        request_id="{{ ti.xcom_pull(task_ids='submit', key='request_id') }}",
        model_id="pixverse/pixverse/v5.5/text-to-video",
        deferrable=True,
        poke_interval=0.5,
    )
    submit >> watch

with DAG(dag_id="ui_failure", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    RunComfyTextToVideoOperator(task_id="generate", prompt="a storm at sea", deferrable=True, poll_interval=0.5)
