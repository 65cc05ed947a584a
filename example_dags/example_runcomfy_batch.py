"""One clip per prompt: dynamic task mapping, at most as many jobs at once as the ``runcomfy`` pool has slots.

Create the pool first: ``airflow pools set runcomfy 4 "RunComfy jobs"``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator

with DAG(
    dag_id="example_runcomfy_batch",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "runcomfy"],
):

    @task
    def prompts() -> list[str]:
        products = ["a ceramic mug", "a leather backpack", "a pair of headphones"]
        return [f"{product} rotating slowly on a turntable, studio light" for product in products]

    RunComfyTextToVideoOperator.partial(
        task_id="generate",
        pool="runcomfy",
        aspect_ratio="1:1",
        deferrable=True,
        poll_interval=1,
    ).expand(prompt=prompts())
