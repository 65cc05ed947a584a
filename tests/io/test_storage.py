"""Copying outputs to object storage: streamed, atomic, checked, idempotent; over real HTTP and a real S3 API."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_runcomfy.exceptions import RunComfyConnectionError, RunComfyError, RunComfyInvalidInputError
from airflow_provider_runcomfy.hooks.runcomfy import OutputStream, RunComfyHook
from airflow_provider_runcomfy.io.storage import UPLOAD_PART_BYTES, _write_hashed, copy_output, output_name
from airflow_provider_runcomfy.schemas.pixverse import TEXT_TO_VIDEO
from airflow_provider_runcomfy.testing.server import SAMPLE_BYTES, SAMPLE_SHA256, synthetic_chunks

MiB = 1 << 20


def generated_url(server, **outcome) -> str:
    if outcome:
        server.add_outcomes([{"outcome": "succeeded", **outcome}])
    hook = RunComfyHook()
    request_id = hook.submit(TEXT_TO_VIDEO, {"prompt": "a kite"}).request_id
    deadline = time.monotonic() + 10
    while not (result := hook.get_result(request_id)).is_finished:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return result.output_urls[0]


def copy(url, destination, **kwargs):
    return copy_output(RunComfyHook(), url, destination, allow_loopback_http=True, **kwargs)


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def synthetic_sha256(size: int, seed: int) -> str:
    digest = hashlib.sha256()
    for chunk in synthetic_chunks(size, seed):
        digest.update(chunk)
    return digest.hexdigest()


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_copy_to_a_local_path_is_byte_identical(runcomfy_connection, tmp_path):
    destination = ObjectStoragePath(f"file://{tmp_path}/clips/new/clip.mp4")
    stored = copy(generated_url(runcomfy_connection), destination)
    assert stored.size == len(SAMPLE_BYTES)
    assert stored.sha256 == SAMPLE_SHA256
    assert hashlib.sha256((tmp_path / "clips/new/clip.mp4").read_bytes()).hexdigest() == SAMPLE_SHA256
    assert files_in(tmp_path) == ["clip.mp4"]  # no temporary file left behind


def test_an_interrupted_download_leaves_nothing_and_a_retry_succeeds(runcomfy_connection, tmp_path):
    url = generated_url(runcomfy_connection)
    runcomfy_connection.add_faults([{"call": "file", "fault": "drop"}])  # half the body, then EOF: a short body
    destination = ObjectStoragePath(f"file://{tmp_path}/clip.mp4")
    with pytest.raises(RunComfyConnectionError):
        copy(url, destination)
    assert files_in(tmp_path) == []
    assert copy(url, destination).sha256 == SAMPLE_SHA256
    assert files_in(tmp_path) == ["clip.mp4"]


def test_a_large_output_streams_with_the_right_checksum(runcomfy_connection, tmp_path):
    size = 64 * 1024 * 1024 + 123
    url = generated_url(runcomfy_connection, synthetic_size=size, seed=3)
    stored = copy(url, ObjectStoragePath(f"file://{tmp_path}/big.bin"))
    assert (stored.size, stored.sha256) == (size, synthetic_sha256(size, 3))


def test_an_output_over_the_limit_is_refused_before_it_is_written(runcomfy_connection, tmp_path):
    url = generated_url(runcomfy_connection, synthetic_size=10_000_000)
    with pytest.raises(RunComfyError, match="over the limit"):
        copy(url, ObjectStoragePath(f"file://{tmp_path}/big.bin"), max_bytes=1_000_000)
    assert files_in(tmp_path) == []


@pytest.mark.unit
def test_the_next_part_is_received_while_the_writer_sends_one():
    sending, sent, pulled = threading.Event(), threading.Event(), []

    class SlowUpload:
        def write(self, chunk: bytes) -> int:
            if not sending.is_set():  # the first write sends a part, slowly
                sending.set()
                sent.wait(60)
            return len(chunk)

    def chunks() -> Iterator[bytes]:
        for index in range(16):
            pulled.append(index)
            yield bytes([index]) * MiB

    with ThreadPoolExecutor(1) as receiver:
        copying = receiver.submit(_write_hashed, chunks(), SlowUpload(), url="u", max_bytes=1 << 30)
        try:
            assert sending.wait(10)
            ahead = UPLOAD_PART_BYTES // MiB + 2  # the chunk being written, a part queued, one waiting for room
            deadline = time.monotonic() + 5
            while len(pulled) < ahead and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)
            assert len(pulled) == ahead  # a part ahead, and no further: memory stays bounded
        finally:
            sent.set()
        assert copying.result(10) == (16 * MiB, sha256(b"".join(bytes([i]) * MiB for i in range(16))))


def test_outputs_are_fetched_over_https_only_unless_loopback_is_allowed(runcomfy_connection, tmp_path):
    url = generated_url(runcomfy_connection)
    requests_before = len(runcomfy_connection.log)
    for bad, allow in [(url, False), ("http://example.com/clip.mp4", True), ("ftp://example.com/a.mp4", True)]:
        with pytest.raises(RunComfyInvalidInputError, match="Refusing to download"):
            copy_output(RunComfyHook(), bad, ObjectStoragePath(f"file://{tmp_path}/x.mp4"), allow_loopback_http=allow)
    assert len(runcomfy_connection.log) == requests_before
    assert files_in(tmp_path) == []


def test_a_redirect_is_checked_before_it_is_followed(runcomfy_connection, tmp_path):
    url = generated_url(runcomfy_connection)
    redirect = f"{runcomfy_connection.url}/files/redirect?to="
    stored = copy(redirect + url, ObjectStoragePath(f"file://{tmp_path}/ok.mp4"))  # loopback http: allowed here
    assert stored.sha256 == SAMPLE_SHA256
    with pytest.raises(RunComfyInvalidInputError, match=re.escape("Refusing to download output 'http://192.0.2.1/")):
        copy(redirect + "http://192.0.2.1/clip.mp4", ObjectStoragePath(f"file://{tmp_path}/x.mp4"))  # not followed
    assert files_in(tmp_path) == ["ok.mp4"]


def test_no_credentials_go_to_the_output_host(runcomfy_connection, tmp_path):
    url = generated_url(runcomfy_connection)
    copy(url, ObjectStoragePath(f"file://{tmp_path}/clip.mp4"))
    [download] = [e for e in runcomfy_connection.log if e["call"] == "file"]
    assert download["auth"] is None  # the server saw no Authorization header on the file request


def test_a_rerun_that_finds_the_same_file_skips_the_copy(runcomfy_connection, tmp_path):
    url = generated_url(runcomfy_connection)
    destination = ObjectStoragePath(f"file://{tmp_path}/clip.mp4")
    first = copy(url, destination)
    downloads = sum(e["call"] == "file" for e in runcomfy_connection.log)

    assert copy(url, destination, previous=first.as_dict()) == first
    assert sum(e["call"] == "file" for e in runcomfy_connection.log) == downloads

    (tmp_path / "clip.mp4").write_bytes(b"tampered")
    assert copy(url, destination, previous=first.as_dict()).sha256 == SAMPLE_SHA256
    assert sum(e["call"] == "file" for e in runcomfy_connection.log) == downloads + 1


@pytest.mark.unit
@pytest.mark.parametrize(
    ("template", "url", "expected"),
    [
        ("{request_id}_{index}{ext}", "https://cdn/x/video.MP4?sig=1", "r1_0.mp4"),
        ("{map_index}/{request_id}{ext}", "https://cdn/x/video", "4/r1"),
        ("{request_id}{ext}", "https://cdn/x/video.mp4%2F..%2F..%2Fetc", "r1"),
    ],
)
def test_output_names(template, url, expected):
    assert output_name(template, request_id="r1", index=0, url=url, map_index=4) == expected


@pytest.mark.unit
@pytest.mark.parametrize(
    ("template", "request_id"),
    [("../{request_id}{ext}", "r1"), ("/etc/{request_id}", "r1"), ("{request_id}", "../../escape"), ("{nope}", "r1")],
)
def test_names_cannot_leave_the_output_dir(template, request_id):
    with pytest.raises(RunComfyInvalidInputError):
        output_name(template, request_id=request_id, index=0, url="https://cdn/v.mp4")


_REQUEST_LINE = re.compile(r'"(?P<method>[A-Z]+) /(?P<bucket>[^/ ?]+)/(?P<key>[^ ?]*)\??(?P<query>[^ ]*) HTTP')


@contextlib.contextmanager
def s3_requests(caplog, bucket: str) -> Iterator[list[tuple[str, str, str]]]:
    """Every object request moto's server logged for ``bucket`` meanwhile, as (method, key, query): what went over
    the wire, whoever sent it."""
    seen: list[tuple[str, str, str]] = []
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        first = len(caplog.records)
        yield seen
        for record in caplog.records[first:]:
            if (line := _REQUEST_LINE.search(record.getMessage())) and line["bucket"] == bucket:
                seen.append((line["method"], line["key"], re.sub(r"=[^&]*", "", line["query"])))


def s3_state(s3, bucket: str) -> tuple[list[str], list[str]]:
    """The bucket's keys and the keys of its unfinished multipart uploads."""
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return keys, [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


class UnsizedOutputs:
    """A hook stand-in whose outputs come without ``Content-Length`` (a chunked answer): only the count of bytes
    received can stop one over the limit."""

    @contextlib.contextmanager
    def open_output(self, url: str, **_: Any) -> Iterator[OutputStream]:
        yield OutputStream(url, None, synthetic_chunks(int(url.rsplit("/", 1)[1]), 0))


# S3 completes a multipart upload as one request; the parts, and nothing else, go to the final key beforehand.
UPLOAD = ("POST", "uploads"), ("PUT", "uploadId&partNumber"), ("POST", "uploadId")


def test_a_small_copy_to_s3_goes_straight_to_its_key(runcomfy_connection, s3_bucket, caplog):
    s3, bucket = s3_bucket
    url = generated_url(runcomfy_connection)
    with s3_requests(caplog, bucket) as sent:
        stored = copy(url, ObjectStoragePath(f"s3://aws_moto@{bucket}/2026/clip.mp4"))
    body = s3.get_object(Bucket=bucket, Key="2026/clip.mp4")["Body"].read()
    assert sha256(body) == stored.sha256 == SAMPLE_SHA256
    # All it sent: under one part, one PutObject (as atomic as an upload) to the final key;
    # nothing goes to a temporary key, nothing is copied or deleted.
    assert sent == [("PUT", "2026/clip.mp4", "")]
    assert s3_state(s3, bucket) == (["2026/clip.mp4"], [])


def test_a_large_copy_to_s3_goes_straight_to_its_key_in_parts(runcomfy_connection, s3_bucket, caplog):
    s3, bucket = s3_bucket
    size = 40 * MiB + 123
    url = generated_url(runcomfy_connection, synthetic_size=size, seed=5)
    with s3_requests(caplog, bucket) as sent:
        stored = copy(url, ObjectStoragePath(f"s3://aws_moto@{bucket}/big.bin"))
    body = s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
    assert (stored.size, stored.sha256) == (size, synthetic_sha256(size, 5)) == (len(body), sha256(body))
    initiate, part, complete = UPLOAD
    parts = [part] * -(-size // UPLOAD_PART_BYTES)  # more than two, sent several at once: any order
    assert sent == [(method, "big.bin", query) for method, query in (initiate, *parts, complete)]
    # The upload named CRC32, as boto3's managed transfer does, and every part carried one (S3 refuses a completion
    # without them); s3fs's writer names none, which leaves S3 its default CRC64NVME.
    head = s3.head_object(Bucket=bucket, Key="big.bin", ChecksumMode="ENABLED")
    assert "ChecksumCRC32" in head and "ChecksumCRC64NVME" not in head
    assert s3_state(s3, bucket) == (["big.bin"], [])


def test_an_interrupted_copy_to_s3_keeps_the_previous_object_and_leaves_no_upload(runcomfy_connection, s3_bucket):
    s3, bucket = s3_bucket
    s3.put_object(Bucket=bucket, Key="big.bin", Body=b"the previous clip")
    url = generated_url(runcomfy_connection, synthetic_size=40 * MiB, seed=1)
    runcomfy_connection.add_faults([{"call": "file", "fault": "drop"}])  # cut at 20 MiB: after a part was sent
    with pytest.raises(RunComfyConnectionError):
        copy(url, ObjectStoragePath(f"s3://aws_moto@{bucket}/big.bin"))
    assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == b"the previous clip"
    assert s3_state(s3, bucket) == (["big.bin"], [])  # the multipart upload was aborted

    stored = copy(url, ObjectStoragePath(f"s3://aws_moto@{bucket}/big.bin"))
    assert sha256(s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read()) == stored.sha256
    assert s3_state(s3, bucket) == (["big.bin"], [])


def test_an_output_over_the_limit_is_not_stored_on_s3(s3_bucket):
    s3, bucket = s3_bucket
    url = f"https://cdn.example/{40 * MiB}"
    with pytest.raises(RunComfyError, match="over the limit"):  # found at 24 MiB, parts sent
        copy_output(UnsizedOutputs(), url, ObjectStoragePath(f"s3://aws_moto@{bucket}/big.bin"), max_bytes=24 * MiB)
    assert s3_state(s3, bucket) == ([], [])


def test_copy_to_memory_once_attached(runcomfy_connection):
    # Airflow registers no filesystem for memory://; attaching fsspec's MemoryFileSystem is enough.
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    memory = MemoryFileSystem()
    attach("memory", fs=memory)
    destination = ObjectStoragePath("memory:///runcomfy-test/clips/clip.mp4")

    stored = copy(generated_url(runcomfy_connection), destination)

    assert stored.uri == str(destination)
    assert stored.sha256 == SAMPLE_SHA256
    assert memory.cat_file("/runcomfy-test/clips/clip.mp4") == SAMPLE_BYTES
    assert memory.ls("/runcomfy-test/clips", detail=False) == ["/runcomfy-test/clips/clip.mp4"]  # no temporary left
    memory.rm("/runcomfy-test", recursive=True)
