"""Copying outputs to object storage: streamed, atomic, checked, idempotent; over real HTTP and a real S3 API."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_runcomfy.exceptions import RunComfyConnectionError, RunComfyError, RunComfyInvalidInputError
from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook
from airflow_provider_runcomfy.io.storage import copy_output, output_name
from airflow_provider_runcomfy.schemas.pixverse import TEXT_TO_VIDEO
from airflow_provider_runcomfy.testing.server import SAMPLE_BYTES, SAMPLE_SHA256, synthetic_chunks


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
    expected = hashlib.sha256()
    for chunk in synthetic_chunks(size, 3):
        expected.update(chunk)
    assert (stored.size, stored.sha256) == (size, expected.hexdigest())


def test_an_output_over_the_limit_is_refused_before_it_is_written(runcomfy_connection, tmp_path):
    url = generated_url(runcomfy_connection, synthetic_size=10_000_000)
    with pytest.raises(RunComfyError, match="over the limit"):
        copy(url, ObjectStoragePath(f"file://{tmp_path}/big.bin"), max_bytes=1_000_000)
    assert files_in(tmp_path) == []


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


def test_copy_to_s3_uploads_a_complete_object(runcomfy_connection, s3_bucket):
    s3, bucket = s3_bucket
    url = generated_url(runcomfy_connection)
    stored = copy(url, ObjectStoragePath(f"s3://aws_moto@{bucket}/2026/clip.mp4"))
    body = s3.get_object(Bucket=bucket, Key="2026/clip.mp4")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == stored.sha256 == SAMPLE_SHA256
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["2026/clip.mp4"]


def test_an_interrupted_upload_to_s3_leaves_no_object(runcomfy_connection, s3_bucket):
    url = generated_url(runcomfy_connection, synthetic_size=12 * 1024 * 1024)
    runcomfy_connection.add_faults([{"call": "file", "fault": "drop"}])
    s3, bucket = s3_bucket
    with pytest.raises(RunComfyConnectionError):
        copy(url, ObjectStoragePath(f"s3://aws_moto@{bucket}/big.bin"))
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


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
