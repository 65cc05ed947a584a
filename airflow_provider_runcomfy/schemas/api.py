"""RunComfy's answers, parsed once in the hook.

Status values are kept as text: the API and its clients have shown more values than are documented
(``pending``, ``processing``, ``canceled``...). Anything not known to be terminal is "still running".
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

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
