"""File inputs: from object storage (signed for the job), from an earlier generation, checked before paying.

RunComfy fetches every file input itself, from a URL, without credentials. So an input in a private bucket is
sent as a signed URL, made on the worker just before the submit; the task's rendered fields, its XCom and the
fingerprint a retry reattaches by keep the object's URI, never the signature. Every URL input is then fetched
once as a stranger would (``RunComfyHook.check_input_url``), so a URL RunComfy cannot fetch fails the task
before it is paid for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_runcomfy.exceptions import RunComfyError, RunComfyInvalidInputError

if TYPE_CHECKING:
    from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook

#: RunComfy's recommended limits for file inputs (its model pages); ``max_input_bytes`` on the operators changes
#: them. Inputs of another kind are only checked to answer.
DEFAULT_INPUT_LIMITS = {"image": 50_000_000, "video": 100_000_000}
# S3 (SigV4) and GCS (V4) signed URLs live at most 7 days.
MAX_SIGNED_SECONDS = 7 * 24 * 3600
# Beyond the job's timeout: RunComfy may fetch an input when the job starts, after its time in the queue.
SIGNED_MARGIN_SECONDS = 15 * 60
# Schemes whose filesystems can never sign a URL that RunComfy could fetch.
UNSIGNABLE_SCHEMES = frozenset({"file", "local", "memory", "ftp", "sftp", "ssh", "smb", "data"})
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# Words in an input's name that say what kind of file it takes, checked in this order ("video_frame_url": video).
_KINDS = (
    ("video", ("video",)),
    ("audio", ("audio", "voice", "sound", "music")),
    ("image", ("image", "img", "frame", "mask", "photo")),
)


def is_url_input(name: str) -> bool:
    """An input that RunComfy fetches from a URL: its name ends in ``_url`` (one) or ``_urls`` (a list)."""
    return name.endswith(("_url", "_urls"))


def input_kind(name: str) -> str | None:
    """``image``, ``video`` or ``audio``, as the input's name says (``first_frame_image_url``: image), or None."""
    lowered = name.lower()
    return next((kind for kind, words in _KINDS if any(word in lowered for word in words)), None)


def object_store_scheme(value: Any) -> str | None:
    """The scheme of an object-store URI (``s3``, ``gs``, ...); None for an http(s) URL or anything else."""
    match = _SCHEME.match(value) if isinstance(value, str) else None
    scheme = match.group(1).lower() if match else None
    return None if scheme in (None, "http", "https") else scheme


def without_query(url: str) -> str:
    """The URL as it may be shown: a signed URL's query string is its signature."""
    parts = urlsplit(url)
    return parts._replace(query="", fragment="").geturl()


def shown_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs as they may be shown (the RunComfy page): every URL input without its query string."""

    def shown(value: Any) -> Any:
        if isinstance(value, list):
            return [shown(item) for item in value]
        return without_query(value) if isinstance(value, str) and "?" in value else value

    return {name: shown(value) if is_url_input(name) else value for name, value in inputs.items()}


def as_references(inputs: Any) -> Any:
    """The inputs with each URL input as text: an ``ObjectStoragePath`` as its URI (with its connection), the
    return value of an earlier RunComfy task as its one output (the stored copy if it has one, else RunComfy's URL).

    A ``*_urls`` list takes every output of such a result. Anything but a dict is returned as it is, for the
    validation to refuse.
    """
    if not isinstance(inputs, dict):
        return inputs
    return {name: _references(name, value) if is_url_input(name) else value for name, value in inputs.items()}


def _references(name: str, value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [ref for item in value for ref in _outputs(name, item, many=True)]
    [reference] = _outputs(name, value, many=False)
    return reference


def _outputs(name: str, value: Any, *, many: bool) -> list[Any]:
    from airflow.sdk import ObjectStoragePath

    if isinstance(value, ObjectStoragePath):
        return [str(value)]
    if not (isinstance(value, dict) and "output_urls" in value):
        return [value]
    outputs = [file["uri"] for file in value.get("files") or []] or list(value["output_urls"])
    if not many and len(outputs) != 1:
        raise RunComfyInvalidInputError(
            f"{name}: the result of RunComfy request {value.get('request_id')} has {len(outputs)} outputs, and "
            f"{name} takes one: pass one of them, e.g. {{{{ ti.xcom_pull(task_ids='...')['files'][0]['uri'] }}}}"
        )
    return outputs


def prepare_inputs(
    hook: RunComfyHook,
    inputs: dict[str, Any],
    *,
    expires_in: float,
    check: bool = True,
    limits: dict[str, int] | None = None,
    allow_loopback_http: bool = False,
) -> dict[str, Any]:
    """The body to submit: every object-store URI signed (valid ``expires_in`` seconds, at most 7 days) and masked,
    and, with ``check``, every URL input fetched as RunComfy will (see ``RunComfyHook.check_input_url``)."""
    limits = {**DEFAULT_INPUT_LIMITS, **(limits or {})}
    seconds = int(min(max(expires_in, 0) + SIGNED_MARGIN_SECONDS, MAX_SIGNED_SECONDS))
    body = dict(inputs)
    for name, value in inputs.items():
        if not is_url_input(name):
            continue
        urls = [_signed(name, item, seconds, hook.mask) for item in (value if isinstance(value, list) else [value])]
        body[name] = urls if isinstance(value, list) else urls[0]
        if check:
            kind = input_kind(name)
            for url in urls:
                hook.check_input_url(
                    url, field=name, kind=kind, max_bytes=limits.get(kind), allow_loopback_http=allow_loopback_http
                )
    return body


def _signed(name: str, value: Any, seconds: int, mask: Callable[[str], None]) -> Any:
    """``value`` itself unless it is an object-store URI; then a signed http(s) URL for it, masked at once."""
    scheme = object_store_scheme(value)
    if scheme is None:
        return value
    where = f"{name}: {value}"
    if scheme in UNSIGNABLE_SCHEMES:
        raise RunComfyInvalidInputError(f"{where}: {_cannot_sign(scheme)}")
    from airflow.sdk import ObjectStoragePath

    try:
        path = ObjectStoragePath(value)
        path.fs  # noqa: B018 - resolves the filesystem and its connection, as signing will
    except (ValueError, ImportError, KeyError) as error:
        raise RunComfyInvalidInputError(f"{where}: no object store serves {scheme}:// here ({error})") from None
    try:
        url = path.sign(expiration=seconds)
    except NotImplementedError:
        raise RunComfyInvalidInputError(f"{where}: {_cannot_sign(scheme)}") from None
    except Exception as error:
        if "credential" in type(error).__name__.lower() or "signature" in type(error).__name__.lower():
            raise RunComfyInvalidInputError(
                f"{where}: it could not be signed ({type(error).__name__}: {error}); give its connection "
                "credentials that can sign URLs"
            ) from None
        raise RunComfyError(f"{where}: signing it failed ({type(error).__name__}: {error})") from None
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.query:
        raise RunComfyInvalidInputError(
            f"{where}: signing it gave no signed URL (its connection has no credentials that can sign); "
            "give the connection credentials, or pass a public https URL"
        )
    mask(url)
    return url


def _cannot_sign(scheme: str) -> str:
    return (
        f"files on {scheme}:// cannot be signed, and RunComfy fetches inputs from the internet: put it in an object "
        "store that signs URLs (s3://, gs://, ...) or pass a public https URL"
    )
