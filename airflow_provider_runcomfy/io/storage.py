"""Copy generated outputs to any object store (``file://``, ``s3://``, ``gs://``, ``memory://``, ...).

A copy streams from the output URL straight into the destination in 4 MiB chunks, sent to object stores in 8 MiB
parts (memory does not grow with the file), and computes the sha256 on the way. A destination path only ever holds
a complete file: on S3 the copy is a multipart upload completed only once the whole body arrived and matched
``Content-Length``; elsewhere it writes under a temporary name renamed only then.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_runcomfy.exceptions import RunComfyError, RunComfyInvalidInputError
from airflow_provider_runcomfy.io.s3 import S3PartsWriter

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow.sdk import ObjectStoragePath

    from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook

#: Default file name of an output: unique per request, ordered per output, with the URL's extension.
DEFAULT_NAME = "{request_id}_{index}{ext}"
DEFAULT_MAX_BYTES = 2 << 30  # 2 GiB: far above a PixVerse clip, low enough to stop a runaway download
# What an object store's writer buffers before sending a part (boto3's default part size), and how far the writer
# may fall behind the download: a copy holds a few parts whatever the file's size, and S3's 10,000 parts allow
# 80 GB. Local files ignore the part size.
UPLOAD_PART_BYTES = 8 << 20
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}")
_STAND_IN_ID = "00000000-0000-0000-0000-000000000000"  # names are checked before the submit gives the real id


@dataclass(frozen=True)
class StoredFile:
    """A copied output, as it goes to XCom and Asset events: where it is, how big, and its sha256."""

    uri: str
    size: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def output_name(template: str, *, request_id: str, index: int, url: str, map_index: int = -1) -> str:
    """The relative path of one output under ``output_dir``.

    ``template`` may use ``{request_id}``, ``{map_index}``, ``{index}`` and ``{ext}`` (the URL's extension, such as
    ``.mp4``, or nothing). What comes from the URL or the API is constrained so that no name can leave
    ``output_dir``: no ``..``, no absolute path.
    """
    suffix = PurePosixPath(urlsplit(url).path).suffix
    ext = suffix.lower() if _EXTENSION.fullmatch(suffix) else ""
    try:
        name = template.format(request_id=request_id, map_index=map_index, index=index, ext=ext)
    except (KeyError, IndexError, ValueError) as error:
        raise RunComfyInvalidInputError(
            f"output_name {template!r} is not a valid template ({error}); "
            "it may use {request_id}, {map_index}, {index} and {ext}"
        ) from None
    parts = PurePosixPath(name).parts
    if not parts or name.startswith(("/", "\\")) or "\\" in name or any(p in ("..", ".") for p in parts):
        raise RunComfyInvalidInputError(f"output name {name!r} (from {template!r}) would leave output_dir")
    return name


def check_destination(output_dir: str | ObjectStoragePath, name_template: str, *, map_index: int = -1) -> None:
    """Refuse, before anything is paid, a rendered ``output_name`` that cannot be made (see :func:`check_name`)
    and an ``output_dir`` that no filesystem serves."""
    check_name(name_template, map_index=map_index)
    try:
        as_path(output_dir).fs  # noqa: B018 - resolves the filesystem, as the copy will
    except (ValueError, ImportError, KeyError) as error:
        raise RunComfyInvalidInputError(f"output_dir {str(output_dir)!r} cannot be written to: {error}") from None


def check_name(name_template: str, *, map_index: int = -1) -> None:
    """Refuse an ``output_name`` that cannot be made or would leave ``output_dir``, with a stand-in request id."""
    output_name(name_template, request_id=_STAND_IN_ID, index=0, url="https://host/output.mp4", map_index=map_index)


def as_path(output_dir: str | ObjectStoragePath) -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    return output_dir if isinstance(output_dir, ObjectStoragePath) else ObjectStoragePath(output_dir)


def store_outputs(
    hook: RunComfyHook,
    urls: list[str],
    *,
    request_id: str,
    output_dir: str | ObjectStoragePath,
    name_template: str,
    map_index: int,
    max_bytes: int,
    allow_loopback_http: bool,
    state_store: Any = None,
) -> list[StoredFile]:
    """Copy every output URL under ``output_dir``; a re-run that finds its own files intact skips them.

    What was stored is recorded in the task state store (Airflow 3.3+, ``state_store``) under ``files``, with the
    request and URL it came from: a file is skipped only when it came from this request's same output. A cleared
    task whose new request writes to the same name (``latest{ext}``) replaces the old file.
    """
    base = as_path(output_dir)
    previous = (state_store.get("files") if state_store is not None else None) or {}
    stored, records = [], {}
    for index, url in enumerate(urls):
        name = output_name(name_template, request_id=request_id, index=index, url=url, map_index=map_index)
        destination = base / name
        recorded = previous.get(str(destination)) or {}
        same_source = recorded.get("request_id") == request_id and recorded.get("url") == url
        file = copy_output(
            hook,
            url,
            destination,
            max_bytes=max_bytes,
            allow_loopback_http=allow_loopback_http,
            previous=recorded if same_source else None,
        )
        stored.append(file)
        records[file.uri] = {**file.as_dict(), "request_id": request_id, "url": url}
    if state_store is not None and records:
        state_store.set("files", records)
    return stored


def copy_output(
    hook: RunComfyHook,
    url: str,
    destination: ObjectStoragePath,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_loopback_http: bool = False,
    previous: dict[str, Any] | None = None,
) -> StoredFile:
    """Stream ``url`` to ``destination`` atomically and return what was stored.

    ``previous`` is what an earlier run stored there (``{uri, size, sha256}``): when the destination still
    holds exactly that file, nothing is downloaded again.
    """
    if previous and _holds(destination, previous):
        return StoredFile(str(destination), previous["size"], previous["sha256"])
    with hook.open_output(url, allow_loopback_http=allow_loopback_http) as stream:
        if stream.length is not None and stream.length > max_bytes:
            raise RunComfyError(f"Output {url} is {stream.length} bytes, over the limit of {max_bytes}")
        if destination.protocol in ("", "file", "local"):
            destination.parent.mkdir(parents=True, exist_ok=True)
        direct = _writes_parts(destination)
        if direct:
            target, out = destination, S3PartsWriter(destination.fs, destination.path, UPLOAD_PART_BYTES)
        else:
            target = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:12]}.part")
            out = target.open("wb", block_size=UPLOAD_PART_BYTES)
        try:
            size, sha256 = _write_hashed(stream.chunks, out, url=url, max_bytes=max_bytes)
            out.close()  # sends what is buffered; on a committing store, nothing is visible yet
            if stream.length is not None and size != stream.length:
                raise RunComfyError(f"Output {url} ended after {size} of {stream.length} bytes: not stored")
            if direct:
                out.commit()
            else:
                target.replace(destination)
        except BaseException:
            # Best effort: abort the multipart upload (parts and all), or close and delete the temporary file. The
            # destination itself was never touched.
            with contextlib.suppress(Exception):
                if direct:
                    out.discard()
                else:
                    out.close()
                    target.unlink(missing_ok=True)
            raise
    return StoredFile(str(destination), size, sha256)


def _write_hashed(chunks: Iterable[bytes], out: Any, *, url: str, max_bytes: int) -> tuple[int, str]:
    """Write ``chunks`` to ``out``; return their size and sha256.

    The sha256 costs more CPU than receiving and writing together. It runs here, on each chunk just received (still
    in the CPU's cache), while a thread writes earlier ones (file writes and uploads release the GIL). The writer
    may fall up to a part behind: while it sends one part, the next is received and hashed.
    """
    digest, size, held = hashlib.sha256(), 0, 0
    queued: deque[tuple[Future[int], int]] = deque()  # (write, its size), oldest first
    with ThreadPoolExecutor(1) as writer:
        for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise RunComfyError(f"Output {url} is over the limit of {max_bytes} bytes")
            while held > UPLOAD_PART_BYTES:
                written, length = queued.popleft()
                written.result()
                held -= length
            queued.append((writer.submit(out.write, chunk), len(chunk)))
            held += len(chunk)
            digest.update(chunk)
        for written, _ in queued:
            written.result()
    return size, digest.hexdigest()


def _writes_parts(destination: ObjectStoragePath) -> bool:
    """Whether the copy writes straight to ``destination``: on S3 (s3fs), as a multipart upload that shows nothing
    until completed (:class:`S3PartsWriter`); there a rename would be a server-side copy of the whole object and a
    delete. Elsewhere the copy writes a temporary name and renames it once complete: local files and memory show a
    write as it goes, adlfs commits its blocks on close() whatever the autocommit, and gcsfs (which reads like s3fs)
    is not tested here."""
    return type(destination.fs).__module__.partition(".")[0] == "s3fs"


def sha256_of(path: ObjectStoragePath) -> str:
    """The sha256 of a stored file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stored:
        while chunk := stored.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _holds(destination: ObjectStoragePath, previous: dict[str, Any]) -> bool:
    try:
        return destination.stat().st_size == previous["size"] and sha256_of(destination) == previous["sha256"]
    except (FileNotFoundError, KeyError):
        return False
