"""Text-to-video with PixVerse v5.5: a templated prompt, waiting in the triggerer (no worker slot held).

The clip is copied to ``output_dir``: the Airflow Variable ``runcomfy_output_dir`` (any object storage URL, such
as ``s3://aws_default@my-bucket/clips``), by default ``file:///tmp/runcomfy-outputs``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator

with DAG(
    dag_id="example_runcomfy_text_to_video",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"product": Param("a red running shoe", type="string")},
    tags=["example", "runcomfy"],
):
    RunComfyTextToVideoOperator(
        task_id="generate_clip",
        prompt="A slow 360-degree turn around {{ params.product }} on a white studio table, soft light",
        aspect_ratio="9:16",
        resolution="720p",
        duration=5,
        style="3d_animation",
        seed=42,
        deferrable=True,
        # run_after, not ds: runs triggered without a logical date (manual, REST, Asset-triggered) have no ds.
        output_dir="{{ var.value.get('runcomfy_output_dir', 'file:///tmp/runcomfy-outputs') }}/"
        "{{ dag_run.run_after.strftime('%Y-%m-%d') }}",
        poll_interval=1,
        retries=2,
    )
