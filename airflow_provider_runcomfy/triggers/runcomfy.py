"""RunComfyRequestTrigger: waits for a RunComfy request in the triggerer, without holding a worker slot.

It only reads (status, result) and cancels; it never submits. Its kwargs and events are plain JSON and its
deadline is absolute epoch seconds, so it survives being moved to another triggerer process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_runcomfy.exceptions import RunComfyError


class RunComfyRequestTrigger(BaseTrigger):
    """Fire one event when the request finishes, fails, or its deadline passes.

    :param request_id: The RunComfy request to watch.
    :param runcomfy_conn_id: Connection holding the API token.
    :param end_time: Epoch seconds after which the request is cancelled (if still queued) and a ``timeout``
        event fires.
    :param poll_interval: Seconds between two status reads.
    :param include_cost: Ask the result call for the job's cost.
    :param cancel_on_kill: Cancel the request when a user marks or clears the deferred task.
    """

    def __init__(
        self,
        request_id: str,
        runcomfy_conn_id: str,
        end_time: float,
        poll_interval: float = 10.0,
        include_cost: bool = False,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()
        self.request_id = request_id
        self.runcomfy_conn_id = runcomfy_conn_id
        self.end_time = end_time
        self.poll_interval = poll_interval
        self.include_cost = include_cost
        self.cancel_on_kill = cancel_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "request_id": self.request_id,
                "runcomfy_conn_id": self.runcomfy_conn_id,
                "end_time": self.end_time,
                "poll_interval": self.poll_interval,
                "include_cost": self.include_cost,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _hook(self):
        from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook

        return RunComfyHook(self.runcomfy_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        progress = Progress(self.request_id, self.log)
        try:
            while True:
                status = await hook.aget_status(self.request_id)
                progress.update(status.status, status.queue_position)
                if status.is_finished:
                    result = await hook.aget_result(self.request_id, include_cost=self.include_cost)
                    # The result call is the judge; if it still says "running", it has not caught up yet.
                    if result.is_finished:
                        yield TriggerEvent({"status": result.status, "result": result.model_dump(mode="json")})
                        return
                remaining = self.end_time - time.time()
                if remaining <= 0:
                    cancel = await hook.acancel(self.request_id)
                    yield TriggerEvent(
                        {"status": "timeout", "request_id": self.request_id, "cancelled": cancel.cancelled}
                    )
                    return
                await asyncio.sleep(min(self.poll_interval, remaining))
        except RunComfyError as error:
            yield TriggerEvent({"status": "error", "request_id": self.request_id, "message": str(error)})

    async def on_kill(self) -> None:
        """A user marked or cleared the deferred task: cancel the queued job so it is not run and paid for."""
        if not self.cancel_on_kill:
            return
        answer = await self._hook().acancel(self.request_id)
        self.log.info("Cancel of RunComfy request %s on kill: %s", self.request_id, answer.outcome or answer.status)


class Progress:
    """Logs each change of a request's state once, with its queue position and the time spent so far."""

    def __init__(self, request_id: str, log: Any) -> None:
        self.request_id = request_id
        self.log = log
        self.started = time.monotonic()
        self.last: tuple[str, int | None] | None = None

    def update(self, status: str, queue_position: int | None = None) -> None:
        if (status, queue_position) == self.last:
            return
        self.last = (status, queue_position)
        where = f" (queue position {queue_position})" if queue_position is not None else ""
        elapsed = time.monotonic() - self.started
        self.log.info("RunComfy request %s is %s%s after %.1fs", self.request_id, status, where, elapsed)
