"""Image-to-video with PixVerse v5.5: the image is the first frame; waiting on the worker (sync).

The image is the Variable ``runcomfy_first_frame`` (default: RunComfy's own sample frame): a public https URL, or
an object in a private bucket (``s3://aws_default@bucket/frame.png``), which is signed for the job. Either is
fetched once as RunComfy will, before the submit: a URL RunComfy cannot fetch fails the task unpaid.
"""

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
        image_url="{{ var.value.get('runcomfy_first_frame', '"
        "https://playgrounds-storage-public.runcomfy.net/tools/7252/media-files/input-1-1.webp') }}",
        duration=5,
        deferrable=False,
        poll_interval=1,
    )
