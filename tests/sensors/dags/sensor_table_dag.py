"""One RunComfyRequestSensor per mode x situation x soft_fail, each watching a request of its own.

The test submits the requests and passes their ids in the run's conf, keyed by task id.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_runcomfy.sensors.runcomfy import RunComfyRequestSensor

MODES = ("poke", "reschedule", "deferrable")
SITUATIONS = ("succeeds", "timeout", "fails_while_watched", "failed_before_start", "missing")

with DAG(dag_id="sensor_table", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, max_active_tasks=64):
    for mode in MODES:
        for situation in SITUATIONS:
            for soft_fail in (False, True):
                RunComfyRequestSensor(
                    task_id=f"{mode}__{situation}__{'soft' if soft_fail else 'hard'}",
                    request_id="{{ dag_run.conf[ti.task_id] }}",
                    model_id="pixverse/pixverse/v5.5/text-to-video",
                    mode="poke" if mode == "deferrable" else mode,
                    deferrable=mode == "deferrable",
                    poke_interval=1,
                    timeout=4,
                    soft_fail=soft_fail,
                    retries=1,  # a final failure must not use it
                    retry_delay=timedelta(seconds=1),
                    hook_params={"retry_min_wait": 0.1, "max_retries": 1},
                )
