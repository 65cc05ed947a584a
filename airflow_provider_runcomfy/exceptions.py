"""Errors raised by the provider.

Every error carries what a person needs to act on it (HTTP status, RunComfy's code, its message, the
request_id) and never the API token: the hook redacts it before an error is built.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException


class RunComfyError(AirflowException):
    """Base class of every error this provider raises."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: int | str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        details = [
            f"HTTP {status_code}" if status_code is not None else None,
            f"code {code}" if code is not None else None,
            f"request_id {request_id}" if request_id else None,
        ]
        detail = ", ".join(d for d in details if d)
        super().__init__(f"{message} ({detail})" if detail else message)


class RunComfyInvalidInputError(RunComfyError, AirflowFailException, ValueError):
    """The inputs, the model id or a task's setting were rejected: locally before any request, or by the API
    (400/422). The same input is rejected again, so a task that raises it fails without a retry."""


class RunComfyAuthError(RunComfyError):
    """The token is missing, expired or revoked, or the request belongs to another account (401/403)."""


class RunComfyInsufficientBalanceError(RunComfyError):
    """The account cannot pay for the job (402, code 400002)."""


class RunComfyNotFoundError(RunComfyError):
    """The request id is unknown, deleted or expired (404, code 404001)."""


class RunComfyRateLimitError(RunComfyError):
    """RunComfy asked us to slow down (429). ``retry_after`` is its ``Retry-After`` in seconds, if sent."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class RunComfyServerError(RunComfyError):
    """RunComfy failed to answer (5xx, or an answer that is not the documented JSON)."""


class RunComfyConnectionError(RunComfyError):
    """The API could not be reached, or the connection broke before an answer arrived.

    ``never_sent`` is true only when the request provably never reached the server (refused, unresolvable,
    connect timeout): the one case in which a submit may be sent again without paying twice.
    """

    def __init__(self, message: str, *, never_sent: bool = False, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.never_sent = never_sent


class RunComfyJobError(RunComfyError):
    """The job itself ended without success (failed, cancelled), has not finished, or ran out of time.
    ``status`` is the job's status when the error says it (``failed``, ``cancelled``...)."""

    def __init__(self, message: str, *, status: str | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.status = status


class RunComfyTimeoutError(RunComfyJobError):
    """The job did not finish in time. ``cancelled`` says whether it was still queued and has been cancelled."""

    def __init__(self, message: str, *, cancelled: bool = False, **kwargs) -> None:
        super().__init__(message, status="timed_out", **kwargs)
        self.cancelled = cancelled
