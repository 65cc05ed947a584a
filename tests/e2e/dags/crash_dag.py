"""First tries that die after their submit: the retries must reattach, never resubmit.

In ``crash_while_running_dag`` the tasks die while their job is still queued (the retry reattaches to a running
job); in ``crash_when_done_dag`` the task dies after its job succeeded (the retry picks up the finished result).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, chain

from airflow_provider_runcomfy.operators.runcomfy import RunComfyTextToVideoOperator


class CrashAfterSubmit(RunComfyTextToVideoOperator):
    """Dies on its first try once the job is submitted and its id persisted, as a worker crash would."""

    def __init__(self, *, crash_when_done: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.crash_when_done = crash_when_done

    def poll_until_complete(self, external_id, context):
        if context["ti"].try_number == 1:
            if self.crash_when_done:
                super().poll_until_complete(external_id, context)
            raise RuntimeError(f"simulated crash after submitting {external_id['request_id']}")
        return super().poll_until_complete(external_id, context)


def crashing_tasks(*specs: tuple[str, bool, bool]) -> None:
    """One after the other, so each retry comes 1 s after its own crash."""
    tasks = [
        CrashAfterSubmit(
            task_id=task_id,
            prompt=f"a lighthouse in a storm ({task_id})",
            deferrable=deferrable,
            crash_when_done=when_done,
            poll_interval=0.2,
            retries=1,
            retry_delay=timedelta(seconds=1),
        )
        for task_id, deferrable, when_done in specs
    ]
    chain(*tasks)


with DAG(dag_id="crash_while_running_dag", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    crashing_tasks(("generate_sync", False, False), ("generate_deferrable", True, False))

with DAG(dag_id="crash_when_done_dag", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    crashing_tasks(("generate_after_done", False, True))
