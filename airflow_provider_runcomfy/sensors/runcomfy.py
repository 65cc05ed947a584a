"""RunComfyRequestSensor: wait for a request submitted elsewhere (e.g. ``wait_for_completion=False``).

It behaves as an Airflow sensor does, the same in poke, reschedule and deferrable mode: its ``timeout`` raises
``AirflowSensorTimeout``; a request that failed, was cancelled or does not exist fails it without a retry
(``AirflowFailException``); ``soft_fail`` skips it in each of these cases. It did not submit the job, so it
cancels nothing unless ``cancel_on_kill`` says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_runcomfy.exceptions import RunComfyJobError, RunComfyNotFoundError, RunComfyTimeoutError
from airflow_provider_runcomfy.links.runcomfy import RunComfyOutputLink
from airflow_provider_runcomfy.schemas.api import RequestEvent
from airflow_provider_runcomfy.utils.mixins import RunComfyTaskMixin, check_hook_params

if TYPE_CHECKING:
    from airflow.sdk import Context


class RunComfyRequestSensor(RunComfyTaskMixin, BaseSensorOperator):
    """Succeed when a RunComfy request succeeds, returning the same dict as the operators.

    :param request_id: The request to wait for, e.g. ``{{ ti.xcom_pull(task_ids='submit', key='request_id') }}``.
        (templated)
    :param model_id: The model the request ran, for the return value (the API does not say it). (templated)
    :param runcomfy_conn_id: Connection of type ``runcomfy``.
    :param deferrable: Wait in the triggerer instead of holding a worker slot.
    :param include_cost: Ask RunComfy for the job's cost (USD).
    :param cancel_on_kill: Cancel the queued job when the deferred sensor is marked or cleared. Off by default: the
        sensor did not submit the job, and other tasks may be waiting for it.
    :param hook_params: Keyword arguments of :class:`RunComfyHook` (see the operators).

    ``poke_interval``, ``timeout``, ``mode`` and ``soft_fail`` are :class:`BaseSensorOperator`'s.
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
        cancel_on_kill: bool = False,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.request_id = request_id
        self.model_id = model_id
        self.runcomfy_conn_id = runcomfy_conn_id
        self.deferrable = deferrable
        self.include_cost = include_cost
        self.cancel_on_kill = cancel_on_kill
        self.hook_params = check_hook_params(hook_params)
        self._recorded = False  # the job record is pushed on the first poke of a try

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        with self._soft_fail():  # what BaseSensorOperator.execute does around a poke
            done = self.poke(context)
        if done:
            return done.xcom_value
        trigger = self.request_trigger(
            context,
            self.request_id,
            timeout=self.timeout,
            poll_interval=self.poke_interval,
            cancel_on_timeout=False,
            cancel_on_kill=self.cancel_on_kill,
        )
        self.defer(trigger=trigger, method_name="execute_complete")

    def poke(self, context: Context) -> PokeReturnValue | bool:
        started = getattr(context.get("ti"), "start_date", None)
        if not self._recorded:  # what it watches, as the operators say what they run
            context["ti"].xcom_push(key="request_id", value=self.request_id)
            self.record_job(context, self.request_id, None, how="watched")
            self._recorded = True
        with _final_errors_fail(), self.recording_outcome(context):
            result = self.hook.poll_request(
                self.request_id, include_cost=self.include_cost, waiting_since=started and started.timestamp()
            )
            if result is None:
                return False
            return PokeReturnValue(is_done=True, xcom_value=self.task_result(context, result, {}))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        # BaseSensorOperator.resume_execution turns an error raised here into a skip when soft_fail is set.
        with _final_errors_fail(), self.recording_outcome(context):
            return self.task_result(context, RequestEvent.model_validate(event).outcome(), {})

    @contextlib.contextmanager
    def _soft_fail(self) -> Iterator[None]:
        try:
            yield
        except (AirflowFailException, AirflowSensorTimeout) as error:
            if self.soft_fail or getattr(self, "never_fail", False):
                raise AirflowSkipException(f"Skipping due to soft_fail: {error}") from error
            raise


@contextlib.contextmanager
def _final_errors_fail() -> Iterator[None]:
    """A request that timed out, failed, was cancelled or does not exist will not change: fail without a retry."""
    try:
        yield
    except RunComfyTimeoutError as error:
        raise AirflowSensorTimeout(f"Sensor has timed out: {error}") from error
    except (RunComfyJobError, RunComfyNotFoundError) as error:
        raise AirflowFailException(str(error)) from error
