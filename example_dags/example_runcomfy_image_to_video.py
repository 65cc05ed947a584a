"""Image-to-video with PixVerse v5.5: the image is the first frame; waiting on the worker (sync)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyImageToVideoOperator

with DAG(
    dag_id="example_runcomfy_image_to_video",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "runcomfy"],
):
    RunComfyImageToVideoOperator(
        task_id="animate_image",
        prompt="the girl is smiling",
        image_url="https://playgrounds-storage-public.runcomfy.net/tools/7252/media-files/input-1-1.webp",
        duration=5,
        deferrable=False,
        poll_interval=1,
    )
