"""RunComfyRequestTrigger: waits for a RunComfy request in the triggerer, without holding a worker slot.

It only reads (status, result) and cancels; it never submits. Its kwargs and its event
(:class:`~airflow_provider_runcomfy.schemas.api.RequestEvent`) are plain JSON and its deadline is absolute epoch
seconds, so it survives being moved to another triggerer process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_runcomfy.exceptions import RunComfyError
from airflow_provider_runcomfy.schemas.api import RequestEvent
from airflow_provider_runcomfy.version_compat import AIRFLOW_V_3_3_PLUS, deferral_is_current

#: The XCom a deferring try pushes its trigger's ``deferral_id`` to: ``on_kill`` tells a moved trigger by it.
DEFERRAL_XCOM_KEY = "runcomfy_deferral"


class RunComfyRequestTrigger(BaseTrigger):
    """Fire one :class:`RequestEvent` when the request finishes, its deadline passes, or an error stops the wait.

    :param request_id: The RunComfy request to watch.
    :param runcomfy_conn_id: Connection holding the API token.
    :param end_time: Epoch seconds after which a ``timeout`` event fires.
    :param poll_interval: Seconds per status read: one per interval, on a fixed cadence from the first.
    :param include_cost: Ask the result call for the job's cost.
    :param cancel_on_timeout: Cancel a still-queued job at ``end_time`` (an operator's own job); a sensor, which
        did not submit the job, leaves it alone.
    :param cancel_on_kill: Cancel the request when a user marks or clears the deferred task.
    :param deferral_id: Names the deferral (the try pushed it to XCom ``runcomfy_deferral``): ``on_kill`` leaves the
        request alone while the task is still deferred by it, as when the trigger only moved to another triggerer.
    :param hook_params: Keyword arguments of :class:`RunComfyHook` (HTTP timeout, retries, backoff).
    """

    def __init__(
        self,
        request_id: str,
        runcomfy_conn_id: str,
        end_time: float,
        poll_interval: float = 10.0,
        include_cost: bool = False,
        cancel_on_timeout: bool = True,
        cancel_on_kill: bool = True,
        hook_params: dict[str, Any] | None = None,
        deferral_id: str | None = None,
    ) -> None:
        super().__init__()
        self.request_id = request_id
        self.runcomfy_conn_id = runcomfy_conn_id
        self.end_time = end_time
        self.poll_interval = poll_interval
        self.include_cost = include_cost
        self.cancel_on_timeout = cancel_on_timeout
        self.cancel_on_kill = cancel_on_kill
        self.hook_params = hook_params or {}
        self.deferral_id = deferral_id
        self._fired = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "request_id": self.request_id,
                "runcomfy_conn_id": self.runcomfy_conn_id,
                "end_time": self.end_time,
                "poll_interval": self.poll_interval,
                "include_cost": self.include_cost,
                "cancel_on_timeout": self.cancel_on_timeout,
                "cancel_on_kill": self.cancel_on_kill,
                "hook_params": self.hook_params,
                "deferral_id": self.deferral_id,
            },
        )

    def _hook(self):
        from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook

        return RunComfyHook(self.runcomfy_conn_id, **self.hook_params)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            result = await self._hook().await_request(
                self.request_id,
                timeout=self.end_time - time.time(),
                poll_interval=self.poll_interval,
                include_cost=self.include_cost,
                cancel_on_timeout=self.cancel_on_timeout,
            )
            event = RequestEvent.finished(result)
        except RunComfyError as error:
            event = RequestEvent.from_error(self.request_id, error)
        self._fired = True
        yield TriggerEvent(event.to_payload())

    async def on_kill(self) -> None:
        """A user marked or cleared the deferred task: cancel the queued job so it is not run and paid for.

        Airflow 3.3 calls this too when the trigger was only reassigned to another triggerer (apache/airflow
        #73454): then the task is still deferred by this trigger's try, the other triggerer watches the request,
        and it is left alone. When Airflow cannot be asked, it cancels (an orphaned job would be paid for).
        """
        if self.cancel_on_kill:
            # Shielded: the triggerer sends the cancel again on each of its loops until the trigger has ended, and
            # its first answer to a query can take seconds; the check and the cancel finish all the same (their log
            # line then goes to the triggerer's own log if Airflow has closed the trigger's).
            await asyncio.shield(asyncio.ensure_future(self._cancel_unless_moved()))

    async def cleanup(self) -> None:
        """Before Airflow 3.3, which calls no trigger ``on_kill``: the triggerer stops the trigger of a task that a
        user marked or cleared and calls this, as it does when the trigger moves or the triggerer itself stops.

        So the job is cancelled only when Airflow says the task no longer waits on this deferral; when Airflow
        cannot be asked (a triggerer shutting down), it is left alone.
        """
        if not AIRFLOW_V_3_3_PLUS and self.cancel_on_kill and self.deferral_id and not self._fired:
            await asyncio.shield(asyncio.ensure_future(self._cancel_unless_moved(when_unknown=False)))

    async def _cancel_unless_moved(self, *, when_unknown: bool = True) -> None:
        """Cancel unless the task is still deferred by this trigger's try; ``when_unknown``: if Airflow cannot say."""
        if self.deferral_id:
            current = await deferral_is_current(self.task_instance, DEFERRAL_XCOM_KEY, self.deferral_id)
            if current:
                self.log.info(
                    "RunComfy request %s: the task is still deferred, its trigger moved to another triggerer: "
                    "not cancelled",
                    self.request_id,
                )
                return
            if current is None:
                self.log.warning(
                    "Could not ask Airflow whether the task is still deferred: %s",
                    "cancelling" if when_unknown else f"RunComfy request {self.request_id} not cancelled",
                )
                if not when_unknown:
                    return
        answer = await self._hook().acancel(self.request_id)
        self.log.info("Cancel of RunComfy request %s on kill: %s", self.request_id, answer.outcome or answer.status)
