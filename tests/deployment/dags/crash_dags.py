"""A sync task that records the PID of its task process once its job is submitted, so a test can SIGKILL it.

The PID file is written after the request_id is persisted (the mixin does that before polling), i.e. exactly
where a real worker crash would hurt: a job paid for, a task process gone.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator


class PidRecordingOperator(RunComfyTextToVideoOperator):
    """Writes ``<state>/<dag_id>.<try_number>.pid`` when it starts to wait for its job."""

    def poll_until_complete(self, external_id, context):
        ti = context["ti"]
        state = Path(os.environ["RUNCOMFY_DEPLOYMENT_STATE"])
        (state / f"{ti.dag_id}.{ti.run_id}.{ti.try_number}.pid").write_text(str(os.getpid()))
        return super().poll_until_complete(external_id, context)


with DAG(dag_id="crash_sigkill", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    PidRecordingOperator(
        task_id="clip",
        prompt="a lighthouse in a storm",
        deferrable=False,
        poll_interval=0.5,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
