"""What the model operators, the download operator and the sensor share: the hook, the trigger, and the return
value of a finished request (outputs copied, Asset events filled in). The sensor imports this, never the operators.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import Asset, conf

from airflow_provider_runcomfy.exceptions import RunComfyError, RunComfyInvalidInputError, RunComfyJobError
from airflow_provider_runcomfy.io.inputs import shown_inputs

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook
    from airflow_provider_runcomfy.schemas.api import RequestResult
    from airflow_provider_runcomfy.triggers.runcomfy import RunComfyRequestTrigger

#: The keyword arguments of ``RunComfyHook`` a task may set through ``hook_params`` (named here so that a DAG
#: file does not import the HTTP clients to check them).
HOOK_PARAMS = ("timeout", "max_retries", "retry_min_wait", "retry_max_wait")
#: What the RunComfy page reads, beside ``request_id`` and the return value: the job a try submitted or reattached
#: to (model, inputs as they may be shown, when), and how it ended when it did not succeed.
JOB_XCOM_KEY = "runcomfy_job"
OUTCOME_XCOM_KEY = "runcomfy_outcome"


def check_hook_params(hook_params: dict[str, Any] | None) -> dict[str, Any]:
    """Refuse an unknown or non-numeric hook parameter when the DAG is parsed, not in the triggerer."""
    hook_params = dict(hook_params or {})
    for name, value in hook_params.items():
        if name not in HOOK_PARAMS:
            allowed = ", ".join(HOOK_PARAMS)
            raise RunComfyInvalidInputError(f"hook_params: unknown parameter {name!r}; allowed: {allowed}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise RunComfyInvalidInputError(f"hook_params: {name} must be a number >= 0 (got {value!r})")
    return hook_params


class RunComfyTaskMixin:
    """The hook (made on first use: parsing a DAG imports no HTTP client), the trigger, and a task's return value."""

    runcomfy_conn_id: str
    hook_params: dict[str, Any]
    include_cost: bool = False
    estimated_cost: float | None = None  # the catalog's estimate of the job's price, when it could be made
    model_id: str | None = None
    output_dir: Any = None  # where outputs are copied; with it: output_name, max_output_bytes, allow_loopback_http
    output_name: str
    max_output_bytes: int
    allow_loopback_http: bool | None
    output_urls: list[str]
    log: Any
    outlets: list[Any]

    @cached_property
    def hook(self) -> RunComfyHook:
        from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook

        return RunComfyHook(self.runcomfy_conn_id, **self.hook_params)

    def request_trigger(
        self,
        context: Context,
        request_id: str,
        *,
        timeout: float,
        poll_interval: float,
        cancel_on_timeout: bool,
        cancel_on_kill: bool,
    ) -> RunComfyRequestTrigger:
        """The trigger that waits for ``request_id``, with a deadline that also honours ``execution_timeout``.

        With ``cancel_on_kill``, its ``deferral_id`` goes to XCom too: the trigger's ``on_kill`` tells a move from a
        kill by it.
        """
        from airflow_provider_runcomfy.triggers.runcomfy import DEFERRAL_XCOM_KEY, RunComfyRequestTrigger

        deferral_id = uuid.uuid4().hex if cancel_on_kill else None
        if deferral_id:
            context["ti"].xcom_push(key=DEFERRAL_XCOM_KEY, value=deferral_id)
        return RunComfyRequestTrigger(
            request_id=request_id,
            runcomfy_conn_id=self.runcomfy_conn_id,
            end_time=time.time() + self.time_left(context, timeout),
            poll_interval=poll_interval,
            include_cost=self.include_cost,
            cancel_on_timeout=cancel_on_timeout,
            cancel_on_kill=cancel_on_kill,
            hook_params=self.hook_params,
            deferral_id=deferral_id,
        )

    def record_job(self, context: Context, request_id: str, inputs: dict[str, Any] | None, *, how: str) -> None:
        """Say in XCom which job this try runs, and ``how``: ``submitted``, ``reattached`` (an earlier try's) or
        ``watched`` (a sensor's)."""
        job = {
            "request_id": request_id,
            "model_id": self.model_id,
            "conn_id": self.runcomfy_conn_id,
            "inputs": shown_inputs(inputs) if inputs is not None else None,
            "how": how,
        }
        context["ti"].xcom_push(key=JOB_XCOM_KEY, value=job)

    @contextlib.contextmanager
    def recording_outcome(self, context: Context) -> Iterator[None]:
        """Record in XCom how the job ended when the task fails for it (failed, cancelled, timed out, or an error
        on the way), so that the RunComfy page can say why; the error goes on."""
        try:
            yield
        except RunComfyError as error:
            status = (error.status if isinstance(error, RunComfyJobError) else None) or "error"
            context["ti"].xcom_push(key=OUTCOME_XCOM_KEY, value={"status": status, "error": error.message})
            raise

    def time_left(self, context: Context, timeout: float) -> float:
        """``timeout``, or less when the task's ``execution_timeout`` (counted from the task's start) ends sooner.

        Airflow enforces ``execution_timeout`` on a worker but not while a task is deferred, so the trigger must.
        """
        limit = getattr(self, "execution_timeout", None)
        if not limit:
            return timeout
        started = getattr(context.get("ti"), "start_date", None)
        spent = (datetime.now(UTC) - started).total_seconds() if started else 0.0
        return max(0.0, min(timeout, limit.total_seconds() - spent))

    def task_result(self, context: Context, result: RequestResult, inputs: dict[str, Any]) -> dict[str, Any]:
        """The return value of a request that succeeded (see the XCom contract); any other end raises its error."""
        result.raise_for_outcome()
        value: dict[str, Any] = {
            "request_id": result.request_id,
            "model_id": self.model_id,
            "status": result.status,
            "output": result.output,
            "output_urls": result.output_urls,
        }
        if result.cost is not None:
            value["cost"] = result.cost
        if self.estimated_cost is not None:
            value["estimated_cost"] = self.estimated_cost
        self.output_urls = result.output_urls  # for RunComfyOutputLink
        self.log.info("RunComfy request %s succeeded: %s", result.request_id, ", ".join(result.output_urls))
        if self.output_dir:
            value["files"] = self._store_outputs(context, result)
        self._fill_asset_events(context, value, inputs)
        return value

    def loopback_http_allowed(self) -> bool:
        """``allow_loopback_http``, or ``[runcomfy] allow_loopback_http`` when the task leaves it unset."""
        if self.allow_loopback_http is not None:
            return self.allow_loopback_http
        return conf.getboolean("runcomfy", "allow_loopback_http", fallback=False)

    def _store_outputs(self, context: Context, result: RequestResult) -> list[dict[str, Any]]:
        from airflow_provider_runcomfy.io.storage import store_outputs

        stored = store_outputs(
            self.hook,
            result.output_urls,
            request_id=result.request_id,
            output_dir=self.output_dir,
            name_template=self.output_name,
            map_index=context["ti"].map_index,
            max_bytes=self.max_output_bytes,
            allow_loopback_http=self.loopback_http_allowed(),
            state_store=context.get("task_state_store"),
        )
        for file in stored:
            self.log.info("Stored %s (%d bytes, sha256 %s)", file.uri, file.size, file.sha256)
        return [file.as_dict() for file in stored]

    def _fill_asset_events(self, context: Context, value: dict[str, Any], inputs: dict[str, Any]) -> None:
        assets = [outlet for outlet in self.outlets if isinstance(outlet, Asset)]
        if not assets:
            return
        first = (value.get("files") or [{"uri": next(iter(value["output_urls"]), None), "sha256": None}])[0]
        extra = {
            "model_id": value["model_id"],
            "request_id": value["request_id"],
            "prompt": inputs.get("prompt"),
            "seed": inputs.get("seed"),
            "uri": first["uri"],
            "sha256": first["sha256"],
            "files": value.get("files", []),
        }
        for asset in assets:
            context["outlet_events"][asset].extra = extra
