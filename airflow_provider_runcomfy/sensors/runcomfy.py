"""RunComfyRequestSensor: wait for a request submitted elsewhere (e.g. ``wait_for_completion=False``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf

from airflow_provider_runcomfy.links.runcomfy import RunComfyOutputLink
from airflow_provider_runcomfy.operators.runcomfy import UsesRunComfyHook, finish, finish_event

if TYPE_CHECKING:
    from airflow.sdk import Context


class RunComfyRequestSensor(UsesRunComfyHook, BaseSensorOperator):
    """Succeed when a RunComfy request succeeds, returning the same dict as the operators; fail if it fails.

    :param request_id: The request to wait for, e.g. ``{{ ti.xcom_pull(task_ids='submit', key='request_id') }}``.
        (templated)
    :param model_id: The model the request ran, for the return value (the API does not say it). (templated)
    :param runcomfy_conn_id: Connection of type ``runcomfy``.
    :param deferrable: Wait in the triggerer instead of holding a worker slot.
    :param include_cost: Ask RunComfy for the job's cost (USD).
    :param cancel_on_kill: Cancel the queued job when the deferred sensor is marked or cleared.
    """

    template_fields: Sequence[str] = ("request_id", "model_id")
    operator_extra_links = (RunComfyOutputLink(),)
    ui_color = "#f3e8ff"

    def __init__(
        self,
        *,
        request_id: str,
        model_id: str | None = None,
        runcomfy_conn_id: str = "runcomfy_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        include_cost: bool = False,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.request_id = request_id
        self.model_id = model_id
        self.runcomfy_conn_id = runcomfy_conn_id
        self.deferrable = deferrable
        self.include_cost = include_cost
        self.cancel_on_kill = cancel_on_kill

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        done = self.poke(context)
        if done:
            return done.xcom_value
        from airflow_provider_runcomfy.triggers.runcomfy import RunComfyRequestTrigger

        self.defer(
            trigger=RunComfyRequestTrigger(
                request_id=self.request_id,
                runcomfy_conn_id=self.runcomfy_conn_id,
                end_time=time.time() + self.timeout,
                poll_interval=self.poke_interval,
                include_cost=self.include_cost,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> PokeReturnValue | bool:
        status = self.hook.get_status(self.request_id)
        self.log.info("RunComfy request %s is %s", self.request_id, status.status)
        if not status.is_finished:
            return False
        result = self.hook.get_result(self.request_id, include_cost=self.include_cost)
        if not result.is_finished:  # the result call has not caught up with the status call yet
            return False
        return PokeReturnValue(is_done=True, xcom_value=finish(self, result))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        return finish_event(self, event)
