"""Jobs submitted and not waited for (``wait_for_completion=False``): the RunComfy page asks how each stands."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator

with DAG(dag_id="ui_submits", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    RunComfyTextToVideoOperator.partial(task_id="submit", wait_for_completion=False).expand(
        prompt=[f"clip {n}" for n in range(30)]
    )
