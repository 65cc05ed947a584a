"""A chain of generations: a text-to-image model makes a frame, PixVerse v5.5 image-to-video animates it.

Both outputs are copied to ``runcomfy_output_dir`` (an Airflow Variable: an object store that signs URLs, such as
``s3://aws_default@bucket/media``). The image step's return value is the video step's ``image_url``: its stored
copy, which is private, is signed for the job just before the submit (the rendered field and XCom keep the
``s3://`` URI), and fetched once as RunComfy will before anything is paid for.

The image model is the Variable ``runcomfy_image_model``: any text-to-image model of RunComfy's catalog. Its
default is the local RunComfy server's own test model, which answers with a PNG.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyImageToVideoOperator, RunComfyModelOperator

OUTPUT_DIR = "{{ var.value.get('runcomfy_output_dir', 'file:///tmp/runcomfy-outputs') }}/chain"

with DAG(
    dag_id="example_runcomfy_image_chain",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "runcomfy"],
):
    frame = RunComfyModelOperator(
        task_id="make_frame",
        model_id="{{ var.value.get('runcomfy_image_model', 'runcomfy-local/test/text-to-image') }}",
        inputs={"prompt": "a lighthouse on a cliff at dusk, warm light in its window, film still"},
        output_dir=OUTPUT_DIR,
        deferrable=True,
        poll_interval=1,
    )
    RunComfyImageToVideoOperator(
        task_id="animate_frame",
        image_url=frame.output,  # the stored frame (s3://...), signed for this job
        prompt="waves crash below as the lighthouse beam sweeps across the sea",
        duration=5,
        output_dir=OUTPUT_DIR,
        deferrable=True,
        poll_interval=1,
    )
