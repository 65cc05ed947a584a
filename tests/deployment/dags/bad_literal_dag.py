"""A DAG whose literal input breaks a PixVerse rule: it must fail to import (an error in the UI), never submit."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator

with DAG(dag_id="bad_literal", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    RunComfyTextToVideoOperator(task_id="clip", prompt="a fox in the snow", resolution="1080p", duration=10)
