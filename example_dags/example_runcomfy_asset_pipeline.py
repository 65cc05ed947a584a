"""Generate a clip into object storage and announce it as an Asset; a second DAG runs on each new clip.

``runcomfy_generate_clip`` copies the video to ``runcomfy_output_dir`` (an Airflow Variable: any object storage
URL such as ``s3://aws_default@my-bucket/clips``; default ``file:///tmp/runcomfy-outputs``) and emits an event of
the ``runcomfy_clips`` Asset whose extra holds model_id, request_id, prompt, seed, uri and sha256.
``runcomfy_check_clip`` is scheduled on that Asset: it reads the event and checks the stored file's sha256.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Asset, ObjectStoragePath, task

from airflow_provider_runcomfy.io.storage import sha256_of
from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator

CLIPS = Asset("runcomfy_clips")

with DAG(
    dag_id="runcomfy_generate_clip",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "runcomfy"],
):
    RunComfyTextToVideoOperator(
        task_id="generate",
        prompt="A hot-air balloon rising over misty hills at dawn",
        seed=7,
        output_dir="{{ var.value.get('runcomfy_output_dir', 'file:///tmp/runcomfy-outputs') }}/assets",
        outlets=[CLIPS],
        deferrable=True,
        poll_interval=1,
    )

with DAG(
    dag_id="runcomfy_check_clip",
    schedule=[CLIPS],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "runcomfy"],
):

    @task(inlets=[CLIPS])
    def check_clip(triggering_asset_events=None, inlet_events=None) -> dict:
        # Scheduled runs get the event that triggered them; a manual run checks the latest clip.
        events = triggering_asset_events[CLIPS] if triggering_asset_events else [inlet_events[CLIPS][-1]]
        clip = events[-1].extra
        if sha256_of(ObjectStoragePath(clip["uri"])) != clip["sha256"]:  # read in chunks, not into memory
            raise ValueError(f"{clip['uri']} changed since it was generated")
        print(f"Clip {clip['uri']} of request {clip['request_id']} ({clip['prompt']!r}, seed {clip['seed']}) is intact")
        return clip

    check_clip()
