"""RunComfy's answers, parsed once in the hook.

Status values are kept as text: the API and its clients have shown more values than are documented
(``pending``, ``processing``, ``canceled``...). Anything not known to be terminal is "still running".
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from airflow_provider_runcomfy import exceptions
from airflow_provider_runcomfy.exceptions import RunComfyError, RunComfyJobError, RunComfyTimeoutError

#: Documented values of the status call; others are tolerated as "still running" and logged by the hook.
KNOWN_STATUSES = frozenset({"in_queue", "in_progress", "completed", "cancelled", "canceled"})
#: Documented values of the result call's ``status``.
KNOWN_RESULT_STATUSES = frozenset({"in_queue", "in_progress", "succeeded", "failed", "cancelled", "canceled"})
_CANCELLED = frozenset({"cancelled", "canceled"})
#: Result values after which the job will not change: only ``succeeded`` is a success.
FINISHED_RESULT_STATUSES = frozenset({"succeeded", "failed", *_CANCELLED})
_OUTPUT_KEYS = ("video", "videos", "image", "images")


class _Answer(BaseModel):
    # Tolerate fields the API adds later; they are kept, not dropped.
    model_config = ConfigDict(extra="allow", frozen=True)


class SubmitResponse(_Answer):
    """Answer to ``POST /v1/models/{model_id}``."""

    request_id: str
    status_url: str | None = None
    result_url: str | None = None
    cancel_url: str | None = None


class RequestStatus(_Answer):
    """Answer to ``GET /v1/requests/{id}/status``. ``completed`` does not mean success: ask the result."""

    request_id: str
    status: str
    queue_position: int | None = None

    @property
    def is_known(self) -> bool:
        return self.status in KNOWN_STATUSES

    @property
    def is_finished(self) -> bool:
        """The job will not change any more (succeeded, failed or cancelled)."""
        return self.status == "completed" or self.status in _CANCELLED


class RequestResult(_Answer):
    """Answer to ``GET /v1/requests/{id}/result``: the only place that says whether a job succeeded."""

    request_id: str
    status: str
    output: dict[str, Any] | None = None
    error: Any = None
    created_at: str | None = None
    finished_at: str | None = None
    cost: float | None = None

    @property
    def is_known(self) -> bool:
        return self.status in KNOWN_RESULT_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def cancelled(self) -> bool:
        return self.status in _CANCELLED

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_RESULT_STATUSES

    def raise_for_outcome(self) -> RequestResult:
        """Return this result if the job succeeded; raise the error its end stands for otherwise.

        ``failed`` and ``cancelled`` are final; any other status means the job has not finished (or the result call
        has not caught up with the status call yet), which a caller that expected an end must not take for success.
        """
        if self.succeeded:
            return self
        if self.failed:
            raise RunComfyJobError(
                f"RunComfy request failed: {self.error_message}", status="failed", request_id=self.request_id
            )
        if self.cancelled:
            raise RunComfyJobError("RunComfy request was cancelled", status="cancelled", request_id=self.request_id)
        raise RunComfyJobError(
            f"RunComfy request has not finished: it is {self.status}", status=self.status, request_id=self.request_id
        )

    @property
    def error_message(self) -> str:
        """RunComfy's error as a person reads it: ``CODE: message`` from its ``{code, message}`` object."""
        error = self.error
        if isinstance(error, dict) and error.get("message"):
            return f"{error['code']}: {error['message']}" if error.get("code") else str(error["message"])
        return str(error)

    @property
    def output_urls(self) -> list[str]:
        """Every output URL, flat: ``video``/``videos``/``image``/``images`` first, then any other URL values."""
        output = self.output or {}
        keys = [*(k for k in _OUTPUT_KEYS if k in output), *(k for k in output if k not in _OUTPUT_KEYS)]
        urls: list[str] = []
        for key in keys:
            values = output[key] if isinstance(output[key], list) else [output[key]]
            urls.extend(v for v in values if isinstance(v, str) and v.startswith(("http://", "https://")))
        return urls


class CancelResponse(_Answer):
    """Answer to ``POST /v1/requests/{id}/cancel``: ``outcome`` is ``cancelled`` only for a queued job."""

    request_id: str
    status: str | None = None
    outcome: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.outcome in _CANCELLED or self.status in _CANCELLED


class EventError(BaseModel):
    """An error a trigger met, carried to the task so that it raises the same error there."""

    type: str
    message: str
    status_code: int | None = None
    code: int | str | None = None


class RequestEvent(BaseModel):
    """The one event a ``RunComfyRequestTrigger`` fires, as plain JSON in ``TriggerEvent.payload``.

    ``status`` is the finished result's status (then ``result`` holds it), ``timeout`` (``cancelled`` says whether
    the queued job was cancelled) or ``error`` (``error`` says which).
    """

    model_config = ConfigDict(frozen=True)

    request_id: str
    status: str
    result: RequestResult | None = None
    cancelled: bool = False
    error: EventError | None = None

    @classmethod
    def finished(cls, result: RequestResult) -> RequestEvent:
        return cls(request_id=result.request_id, status=result.status, result=result)

    @classmethod
    def from_error(cls, request_id: str, error: RunComfyError) -> RequestEvent:
        if isinstance(error, RunComfyTimeoutError):
            return cls(request_id=request_id, status="timeout", cancelled=error.cancelled, error=_error_info(error))
        return cls(request_id=request_id, status="error", error=_error_info(error))

    def to_payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def outcome(self) -> RequestResult:
        """The finished result (whatever its status), or the error the trigger met, raised again here."""
        if self.result is not None:
            return self.result
        info = self.error or EventError(type="RunComfyError", message=f"RunComfy trigger event {self.status!r}")
        kind = getattr(exceptions, info.type, None)
        if not (isinstance(kind, type) and issubclass(kind, RunComfyError)):
            kind = RunComfyError
        details: dict[str, Any] = {"status_code": info.status_code, "code": info.code, "request_id": self.request_id}
        if kind is RunComfyTimeoutError:
            details["cancelled"] = self.cancelled
        raise kind(info.message, **details)


def _error_info(error: RunComfyError) -> EventError:
    return EventError(type=type(error).__name__, message=error.message, status_code=error.status_code, code=error.code)
