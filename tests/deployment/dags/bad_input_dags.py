"""Invalid inputs, each as a user would write it: one DAG run per row of the bad-input table.

``bad_input`` takes ``model_id`` and ``inputs`` from the run's conf (rendered as native objects, so a list
stays a list); ``bad_connection`` has one task per broken connection. ``bad_literal_dag.py`` fails at parse time.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyModelOperator

with DAG(
    dag_id="bad_input",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=64,
    render_template_as_native_obj=True,
):
    RunComfyModelOperator(
        task_id="generate",
        model_id="{{ dag_run.conf['model_id'] }}",
        inputs="{{ dag_run.conf['inputs'] }}",
        poll_interval=0.5,
    )

with DAG(dag_id="bad_connection", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    for conn_id in ("runcomfy_empty_token", "runcomfy_blank_token", "runcomfy_missing", "runcomfy_bad_url"):
        RunComfyModelOperator(
            task_id=conn_id,
            model_id="pixverse/pixverse/v5.5/text-to-video",
            inputs={"prompt": "a quiet harbour at dawn"},
            runcomfy_conn_id=conn_id,
        )
