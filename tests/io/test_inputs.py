"""File inputs: which inputs are files, object-store URIs signed, and the pre-flight check over real HTTP and S3."""

from __future__ import annotations

import hashlib

import pytest
import requests
from airflow.sdk import ObjectStoragePath

from airflow_provider_runcomfy.exceptions import RunComfyInvalidInputError, RunComfyServerError
from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook, _sniff
from airflow_provider_runcomfy.io.inputs import (
    MAX_SIGNED_SECONDS,
    as_references,
    input_kind,
    object_store_scheme,
    prepare_inputs,
)
from airflow_provider_runcomfy.testing.server import SAMPLE_BYTES, SAMPLE_PNG_BYTES


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("image_url", "image"),
        ("first_frame_image_url", "image"),
        ("img_url", "image"),
        ("last_frame_url", "image"),
        ("video_url", "video"),
        ("reference_video_urls", "video"),
        ("audio_url", "audio"),
        ("webhook_url", None),
    ],
)
def test_an_inputs_name_says_what_kind_of_file_it_takes(name, kind):
    assert input_kind(name) == kind


@pytest.mark.unit
def test_object_store_uris_are_told_from_web_urls():
    assert object_store_scheme("s3://aws_default@frames/f.png") == "s3"
    assert object_store_scheme("gs://bucket/f.png") == "gs"
    assert object_store_scheme("https://host/f.png") is None
    assert object_store_scheme("a prompt that mentions s3://") is None
    assert object_store_scheme(7) is None


@pytest.mark.unit
def test_a_result_or_a_path_becomes_the_uri_of_its_one_file():
    stored = {"request_id": "r1", "output_urls": ["https://cdn/o.png"], "files": [{"uri": "s3://c@b/o.png"}]}
    hosted = {"request_id": "r2", "output_urls": ["https://cdn/p.png"]}
    refs = as_references(
        {
            "image_url": stored,
            "video_url": ObjectStoragePath("s3://aws_unit@clips/c.mp4"),
            "image_urls": [stored, hosted],
            "prompt": stored,  # not a file input: left alone
        }
    )
    assert refs["image_url"] == "s3://c@b/o.png"  # the stored copy wins over RunComfy's URL
    assert refs["video_url"] == "s3://aws_unit@clips/c.mp4"  # the connection is kept
    assert refs["image_urls"] == ["s3://c@b/o.png", "https://cdn/p.png"]
    assert refs["prompt"] is stored
    assert as_references(["a fox in the snow"]) == ["a fox in the snow"]  # not inputs: validation refuses it
    two = {"request_id": "r3", "output_urls": ["https://cdn/a.png", "https://cdn/b.png"]}
    with pytest.raises(RunComfyInvalidInputError, match=r"image_url: the result of RunComfy request r3 has 2 outputs"):
        as_references({"image_url": two})


@pytest.mark.unit
@pytest.mark.parametrize(
    ("first", "kind"),
    [
        (SAMPLE_PNG_BYTES[:16], "image"),
        (b"\xff\xd8\xff\xe0" + bytes(12), "image"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image"),
        (SAMPLE_BYTES[:16], "video"),
        (b"<!DOCTYPE html>", "text"),
        (b"\x00\x01\x02\x03", None),
    ],
)
def test_a_file_is_told_by_its_first_bytes(first, kind):
    assert _sniff(first) == kind


def check(url: str, **kwargs):
    hook = RunComfyHook(retry_min_wait=0.01, max_retries=2)
    return hook.check_input_url(url, field="image_url", kind="image", allow_loopback_http=True, **kwargs)


def test_a_public_image_passes_with_its_type_and_size(runcomfy_connection):
    seen = check(f"{runcomfy_connection.url}/files/sample.png", max_bytes=50_000_000)
    assert (seen.content_type, seen.size) == ("image/png", len(SAMPLE_PNG_BYTES))
    calls = [(e["method"], e["status"]) for e in runcomfy_connection.log]
    assert calls == [("HEAD", 200)]  # HEAD said enough: no byte of the body was fetched
    assert runcomfy_connection.submits == 0


def test_a_missing_file_fails_at_once_and_a_flaky_host_is_retried(runcomfy_connection):
    with pytest.raises(
        RunComfyInvalidInputError, match=r"image_url: http://127\.0\.0\.1:\d+/files/nope/output\.png: HTTP 404"
    ):
        check(f"{runcomfy_connection.url}/files/nope/output.png")
    assert len(runcomfy_connection.log) == 2  # HEAD, then the ranged GET; a 404 is not retried

    runcomfy_connection.reset()
    runcomfy_connection.add_faults([{"call": "file", "fault": "503", "times": 2}])
    assert check(f"{runcomfy_connection.url}/files/sample.png").content_type == "image/png"
    assert [e["status"] for e in runcomfy_connection.log] == [503, 503, 200]

    runcomfy_connection.reset()
    runcomfy_connection.add_faults([{"call": "file", "fault": "503", "times": 10}])
    with pytest.raises(RunComfyServerError, match="answered HTTP 503"):
        check(f"{runcomfy_connection.url}/files/sample.png")
    assert len(runcomfy_connection.log) == 6  # 3 tries (max_retries=2) of HEAD + GET


def test_a_file_of_another_kind_or_too_large_is_refused(runcomfy_connection):
    with pytest.raises(RunComfyInvalidInputError, match=r"image_url: .*/output\.mp4: video/mp4 is not an image"):
        url = runcomfy_connection.url
        runcomfy_connection.add_outcomes([{"outcome": "succeeded", "queue_seconds": 0, "run_seconds": 0}])
        request_id = RunComfyHook().submit("pixverse/pixverse/v5.5/text-to-video", {"prompt": "x"}).request_id
        check(f"{url}/files/{request_id}/output.mp4")
    # A generic type: the first bytes tell (random bytes tell nothing: a warning, then the size decides).
    with pytest.raises(RunComfyInvalidInputError, match=r"image_url: .*/60000000\.bin: 60\.0 MB is over the 50 MB"):
        check(f"{runcomfy_connection.url}/files/synthetic/60000000.bin", max_bytes=50_000_000)


def test_an_input_on_a_private_address_is_refused_before_any_request(runcomfy_connection):
    hook = RunComfyHook()
    for url in ("http://localhost:9/x.png", "https://10.0.0.7/x.png", "https://[::1]/x.png"):
        with pytest.raises(RunComfyInvalidInputError, match="not an internet address"):
            hook.check_input_url(url, field="image_url", kind="image")
    assert runcomfy_connection.log == []


def test_a_private_s3_object_is_signed_for_the_job_and_fetched_by_a_stranger(runcomfy_connection, s3_bucket):
    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key="frames/frame.png", Body=SAMPLE_PNG_BYTES, ContentType="image/png")
    uri = f"s3://aws_moto@{bucket}/frames/frame.png"
    plain = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "frames/frame.png"})
    plain = plain.split("?")[0]
    assert requests.get(plain, timeout=5).status_code == 403  # the object is private

    hook = RunComfyHook()
    body = prepare_inputs(hook, {"image_url": uri, "prompt": "p"}, expires_in=3600, allow_loopback_http=True)
    signed = body["image_url"]
    assert signed.startswith(plain + "?") and body["prompt"] == "p"
    assert hashlib.sha256(requests.get(signed, timeout=5).content).digest() == hashlib.sha256(SAMPLE_PNG_BYTES).digest()
    query = signed.split("?", 1)[1]
    assert hook._redact(f"fetching {signed} failed; GET /frames/frame.png?{query}") == (
        "fetching *** failed; GET /frames/frame.png?***"  # what requests' errors show of a URL: its path and query
    )

    with pytest.raises(RunComfyInvalidInputError, match=rf"image_url: {plain}: HTTP 403: the object is private"):
        prepare_inputs(hook, {"image_url": plain}, expires_in=60, allow_loopback_http=True)
    client.put_object(Bucket=bucket, Key="notes.txt", Body=b"not a picture", ContentType="text/plain")
    with pytest.raises(RunComfyInvalidInputError, match=r"image_url: s3://.*notes\.txt|text/plain is not an image"):
        prepare_inputs(
            hook, {"image_url": f"s3://aws_moto@{bucket}/notes.txt"}, expires_in=60, allow_loopback_http=True
        )


def test_signing_lasts_the_jobs_timeout_capped_at_seven_days(s3_bucket):
    import time
    from urllib.parse import parse_qs, urlsplit

    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key="f.png", Body=SAMPLE_PNG_BYTES, ContentType="image/png")
    for timeout, expected in ((3600, 3600 + 900), (30 * 86400, MAX_SIGNED_SECONDS)):
        body = prepare_inputs(
            RunComfyHook(), {"image_url": f"s3://aws_moto@{bucket}/f.png"}, expires_in=timeout, check=False
        )
        query = parse_qs(urlsplit(body["image_url"]).query)
        expires = int(query["Expires"][0]) - time.time() if "Expires" in query else int(query["X-Amz-Expires"][0])
        assert expected - 60 <= expires <= expected + 1


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("memory://frames/f.png", "files on memory:// cannot be signed"),
        ("file:///tmp/f.png", "files on file:// cannot be signed"),
        ("nosuchstore://b/f.png", "no object store serves nosuchstore://"),
    ],
)
def test_a_store_that_cannot_sign_is_refused_before_any_request(runcomfy_connection, value, error):
    with pytest.raises(RunComfyInvalidInputError, match=rf"image_url: {value}: {error}"):
        prepare_inputs(RunComfyHook(), {"image_url": value}, expires_in=60)
    assert runcomfy_connection.log == []


def test_a_connection_that_cannot_sign_is_refused_before_any_request(runcomfy_connection, s3_bucket, monkeypatch):
    import json
    import os

    client, bucket = s3_bucket
    client.put_object(Bucket=bucket, Key="f.png", Body=SAMPLE_PNG_BYTES, ContentType="image/png")
    anonymous = json.loads(os.environ["AIRFLOW_CONN_AWS_MOTO"])
    anonymous["extra"]["config_kwargs"] = {"signature_version": "unsigned"}  # a public-bucket reader: no signing
    monkeypatch.setenv("AIRFLOW_CONN_AWS_UNSIGNED", json.dumps(anonymous))
    with pytest.raises(
        RunComfyInvalidInputError, match=r"image_url: s3://aws_unsigned@\S+/f\.png: it could not be signed"
    ):
        prepare_inputs(RunComfyHook(), {"image_url": f"s3://aws_unsigned@{bucket}/f.png"}, expires_in=60)
    assert runcomfy_connection.log == []


def test_an_unreachable_input_host_is_retried_then_named():
    from airflow_provider_runcomfy.exceptions import RunComfyConnectionError
    from airflow_provider_runcomfy.testing.ports import free_port

    url = f"http://127.0.0.1:{free_port()}/frame.png?X-Amz-Signature=secret-part"
    hook = RunComfyHook(retry_min_wait=0.01, max_retries=1)
    hook.mask(url)
    with pytest.raises(
        RunComfyConnectionError, match=r"image_url: http://127\.0\.0\.1:\d+/frame\.png: could not be"
    ) as e:
        hook.check_input_url(url, field="image_url", kind="image", allow_loopback_http=True)
    assert "secret-part" not in str(e.value)  # requests names the URL's path and query; the query is redacted
