"""DAGs of the Celery deployment (two workers of two slots, two triggerers); it also runs ``user_kills`` and
``crash_sigkill``. Every task defers: its trigger may move between the triggerers."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator

#: dag_id: (mapped tasks, poll interval, the operator's timeout in seconds)
CELERY_DAGS = {
    "celery_scale_200": (200, 3.0, 3600),
    "celery_triggerer_kill": (40, 1.0, 3600),
    "celery_triggerer_freeze": (40, 1.0, 3600),
    "celery_timeouts": (20, 1.0, 90),  # each job waits in the queue past its task's timeout
}

for dag_id, (count, poll_interval, timeout) in CELERY_DAGS.items():
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
        RunComfyTextToVideoOperator.partial(
            task_id="clip", deferrable=True, poll_interval=poll_interval, timeout=timeout
        ).expand(prompt=[f"{dag_id}: a paper boat on a river, take {n}" for n in range(count)])
