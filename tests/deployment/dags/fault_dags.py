"""One task per DAG, so each fault case is one DAG run and the server's rules meet exactly one task.

``fault_<mode>`` retries once (a refused submit is retried by Airflow); ``fault_<mode>_noretry`` does not (a
case that must end failed shows its one try); ``fault_<mode>_timeout`` gives up on its job after 4 s.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator

VARIANTS = {"": {"retries": 1}, "_noretry": {"retries": 0}, "_timeout": {"retries": 0, "timeout": 4}}

for mode in ("sync", "deferrable"):
    for suffix, options in VARIANTS.items():
        with DAG(dag_id=f"fault_{mode}{suffix}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
            RunComfyTextToVideoOperator(
                task_id="clip",
                prompt="a clock tower at noon",
                deferrable=mode == "deferrable",
                poll_interval=0.5,
                retry_delay=timedelta(seconds=1),
                **options,
            )
