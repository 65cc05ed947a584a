"""Writing to S3 with several parts in flight, through the destination's own s3fs filesystem.

s3fs's writer sends one part at a time, and fsspec has no setting for more. This writer sends up to
:data:`PARTS_IN_FLIGHT` parts at once on the filesystem's event loop, with its client: the connection's
credentials, endpoint, signer, proxies and extra arguments (such as server-side encryption) all apply, as they do to
s3fs's own writes. It shows nothing at the key until :meth:`commit`; :meth:`discard` aborts the upload, parts and all.
Each part carries a CRC32, as boto3's managed transfer sends by default, so S3 checks every part on arrival.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import zlib
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import Future

#: Parts uploading at once: enough to keep a link busy while the next part downloads, few enough that a copy holds
#: a bounded amount of memory (each part is held until S3 has it).
PARTS_IN_FLIGHT = 3
_CHECKSUM = {"ChecksumAlgorithm": "CRC32"}


class S3PartsWriter:
    """A binary writer (``write``, ``close``, ``commit``, ``discard``) to one S3 key, like s3fs's own opened with
    ``autocommit=False``. A body smaller than one part is sent with one ``PutObject`` at commit: atomic as well.

    Parts are filled into a few buffers (``BytesIO``) that are reused once S3 has their part: a copy allocates them
    once, whatever its size. aiohttp sends such a body in small pieces; handed bytes, Python 3.11's transport would
    copy most of each part into the connection's buffer."""

    def __init__(self, fs: Any, path: str, part_bytes: int) -> None:
        """``fs``: the destination's ``s3fs.S3FileSystem`` (s3fs comes with the amazon provider, not this one)."""
        self.fs, self.path, self.part_bytes = fs, path, part_bytes
        self.bucket, self.key, _ = fs.split_path(path)
        self._filling = io.BytesIO()
        self._free: list[io.BytesIO] = []  # buffers whose part S3 has
        self._upload_id: str | None = None
        self._sending: deque[tuple[Future[dict[str, Any]], str, io.BytesIO]] = deque()  # (upload, CRC32, buffer)
        self._parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> int:
        rest = memoryview(data)
        while rest:
            room = self.part_bytes - self._filling.tell()
            self._filling.write(rest[:room])
            rest = rest[room:]
            if self._filling.tell() == self.part_bytes:
                self._send_part()
        return len(data)

    def close(self) -> None:
        """Send the last part of a multipart upload and wait for every part; the key shows nothing yet."""
        if self._upload_id is not None:
            if self._filling.tell():
                self._send_part()
            while self._sending:
                self._received(self._sending.popleft())

    def commit(self) -> None:
        if self._upload_id is None:
            self._call("put_object", Body=self._filling.getvalue(), **_CHECKSUM)
        else:
            self.close()
            self._call("complete_multipart_upload", UploadId=self._upload_id, MultipartUpload={"Parts": self._parts})
        self.fs.invalidate_cache(self.path)

    def discard(self) -> None:
        """Abort the upload once no part is in flight (a part finishing after an abort could leave it behind)."""
        for sending, _, _ in self._sending:
            with contextlib.suppress(Exception):
                sending.result()
        self._sending.clear()
        if self._upload_id is not None:
            self._call("abort_multipart_upload", UploadId=self._upload_id)

    def _send_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = self._call("create_multipart_upload", **_CHECKSUM)["UploadId"]
        while len(self._sending) >= PARTS_IN_FLIGHT:
            self._received(self._sending.popleft())
        part, self._filling = self._filling, self._free.pop() if self._free else io.BytesIO()
        self._filling.seek(0)
        part.truncate()  # a last part shorter than its reused buffer: the previous part's tail goes
        with part.getbuffer() as body:
            checksum = _crc32(body)  # here, on the writing thread, not by botocore on the loop that sends every part
        part.seek(0)
        number = len(self._parts) + len(self._sending) + 1
        upload = self.fs._call_s3(  # as s3fs's own writer calls it
            "upload_part",
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=part,
            ChecksumCRC32=checksum,
        )
        self._sending.append((asyncio.run_coroutine_threadsafe(upload, self.fs.loop), checksum, part))

    def _received(self, sending: tuple[Future[dict[str, Any]], str, io.BytesIO]) -> None:
        upload, checksum, part = sending
        answer = upload.result()
        self._parts.append({"PartNumber": len(self._parts) + 1, "ETag": answer["ETag"], "ChecksumCRC32": checksum})
        if not part.closed:  # aiohttp closes a BytesIO handed to it as a body; aiobotocore's are left open
            self._free.append(part)

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        return self.fs.call_s3(method, Bucket=self.bucket, Key=self.key, **kwargs)


def _crc32(data: bytes | memoryview) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
