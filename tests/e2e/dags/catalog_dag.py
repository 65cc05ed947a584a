"""Catalog checks in a real Airflow run: a job over its budget, inputs the catalog schema refuses, a priced job
(deferred, so its estimate crosses the deferral), and, in ``catalog_down_dag``, a run while the catalog is down."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyModelOperator, RunComfyTextToVideoOperator
from airflow_provider_runcomfy.testing.server import LOCAL_TEXT_TO_IMAGE

with DAG(dag_id="catalog_dag", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    # 8 s at the local catalog's $0.06/second: $0.48, over the $0.10 limit.
    RunComfyTextToVideoOperator(task_id="over_budget", prompt="a lighthouse at dusk", duration=8, max_cost_usd=0.10)
    RunComfyModelOperator(
        task_id="bad_inputs",
        model_id=LOCAL_TEXT_TO_IMAGE,
        inputs={"prompt": "a shoe", "num_images": "two", "colour": 1},
    )
    RunComfyModelOperator(
        task_id="priced",
        model_id=LOCAL_TEXT_TO_IMAGE,
        inputs={"prompt": "a red shoe", "num_images": 2},
        include_cost=True,
        max_cost_usd=1.0,
        check_balance=True,
        deferrable=True,
        poll_interval=0.5,
    )

with DAG(dag_id="catalog_down_dag", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    RunComfyModelOperator(
        task_id="unchecked",
        model_id=LOCAL_TEXT_TO_IMAGE,
        inputs={"prompt": "a red shoe"},
        poll_interval=0.5,
        hook_params={"max_retries": 1, "retry_min_wait": 0.1},
    )
