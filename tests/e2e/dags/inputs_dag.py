"""Image-to-video tasks whose ``image_url`` comes from the run's conf, keyed by task id: one to sign and send,
the others to be refused before any submit. ``signed_path`` passes an ``ObjectStoragePath`` itself."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, ObjectStoragePath

from airflow_provider_runcomfy.operators.runcomfy import RunComfyImageToVideoOperator

TASKS = ("signed", "missing", "private", "not_an_image", "too_large", "unsignable")
FRAMES_BUCKET = "runcomfy-e2e-frames"  # the test puts frame.png there

with DAG(dag_id="inputs_dag", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    for task_id in TASKS:
        RunComfyImageToVideoOperator(
            task_id=task_id,
            prompt="the frame comes alive",
            image_url="{{ dag_run.conf[ti.task_id] }}",
            poll_interval=0.5,
            retries=1,  # a refused input must not use it
            retry_delay=timedelta(seconds=1),
        )
    RunComfyImageToVideoOperator(
        task_id="signed_path",
        prompt="the frame comes alive",
        image_url=ObjectStoragePath(f"s3://aws_moto@{FRAMES_BUCKET}/frame.png"),
        poll_interval=0.5,
    )
