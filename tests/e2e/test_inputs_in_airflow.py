"""File inputs in a real Airflow run: a private S3 object signed for the job and fetched by the server as RunComfy
does; every input RunComfy could not fetch refused before any submit; no signature anywhere Airflow keeps text."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from airflow_provider_runcomfy.testing.server import SAMPLE_PNG_BYTES

FRAMES_BUCKET = "runcomfy-e2e-frames"  # where inputs_dag's signed_path task reads frame.png

REFUSED = {  # task: its error, which names the field and the URL without its query string ({url})
    "missing": "image_url: {url}: HTTP 404: there is no file at this URL",
    "private": "image_url: {url}: HTTP 403: the object is private; pass its object-store URI",
    "not_an_image": "image_url: {url}: text/plain is not an image",
    "too_large": "image_url: {url}: 60.0 MB is over the 50 MB limit for images",
    # refused by the input's validation, at once: no memory:// filesystem signs
    "unsignable": "image_url: files on memory:// cannot be signed for RunComfy to fetch",
}
SIGNATURES = ("Signature=", "X-Amz-Signature", "X-Amz-Credential")


def squeeze(text: str) -> str:
    return re.sub(r"[\s│]+", "", text)


def test_private_inputs_are_signed_and_bad_ones_refused_before_paying(test_dags_sandbox, runcomfy_server, s3_bucket):
    client, bucket = s3_bucket
    for key, body, kind in (
        ("frame.png", SAMPLE_PNG_BYTES, "image/png"),
        ("notes.txt", b"a shopping list, not a picture", "text/plain"),
        ("huge.png", SAMPLE_PNG_BYTES + bytes(60_000_000 - len(SAMPLE_PNG_BYTES)), "image/png"),
    ):
        client.put_object(Bucket=bucket, Key=f"frames/{key}", Body=body, ContentType=kind)
    if FRAMES_BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=FRAMES_BUCKET)
    client.put_object(Bucket=FRAMES_BUCKET, Key="frame.png", Body=SAMPLE_PNG_BYTES, ContentType="image/png")
    public_face = client.meta.endpoint_url
    conf = {
        "signed": f"s3://aws_moto@{bucket}/frames/frame.png",
        "missing": f"{runcomfy_server.url}/files/nope/output.png",
        "private": f"{public_face}/{bucket}/frames/frame.png",  # the object's own URL: private, so 403
        "not_an_image": f"s3://aws_moto@{bucket}/frames/notes.txt",
        "too_large": f"s3://aws_moto@{bucket}/frames/huge.png",
        "unsignable": "memory://frames/frame.png",
    }
    runcomfy_server.set_fetch_inputs()

    run = test_dags_sandbox.dags_test("inputs_dag", runcomfy_server, conf=conf)

    assert run.state("signed") == run.state("signed_path") == "success", run.output[-4000:]
    submits = {e["fetched"][0]["url"].split("/")[3]: e for e in runcomfy_server.log if e["call"] == "submit"}
    assert runcomfy_server.submits == 2  # the refused tasks sent nothing to RunComfy
    assert submits[FRAMES_BUCKET]["fetched"][0]["status"] == 200  # the ObjectStoragePath, signed as well
    submit = submits[bucket]
    [fetched] = submit["fetched"]
    assert (fetched["field"], fetched["status"]) == ("image_url", 200)
    assert fetched["sha256"] == hashlib.sha256(SAMPLE_PNG_BYTES).hexdigest()  # the image's own bytes, signed for
    assert fetched["url"] == f"{public_face}/{bucket}/frames/frame.png"
    sent = submit["body"]["image_url"]
    assert "Signature=" in sent  # RunComfy got a signed URL ...

    squeezed = squeeze(run.output)  # some minors print the error in a box, wrapped
    for task_id, error in REFUSED.items():
        ti = run.task_instance(task_id)
        assert (ti["state"], ti["try_number"]) == ("failed", 1), (task_id, ti)  # not retried: it would recur
        url = conf[task_id].replace(f"s3://aws_moto@{bucket}", f"{public_face}/{bucket}")
        assert squeeze(error.format(url=url)) in squeezed, (task_id, error)
    # ... and nothing Airflow keeps holds it: not the logs, not XCom, not the rendered fields.
    kept = {
        "output": run.output,
        "xcom": json.dumps(run.xcoms),
        "rendered": json.dumps([ti["rendered_fields"] for ti in run.task_instances]),
        "log files": "".join(p.read_text(errors="replace") for p in Path(test_dags_sandbox.home).rglob("*.log")),
    }
    query = sent.split("?", 1)[1]
    for where, text in kept.items():
        assert query not in text and not any(mark in text for mark in SIGNATURES), where
    signed_ti = run.task_instance("signed")
    assert signed_ti["rendered_fields"]["image_url"] == conf["signed"]  # the URI, as the user gave it
