"""Every example DAG succeeds under `airflow dags test` against the local RunComfy server."""

from __future__ import annotations

import hashlib
import threading

import pytest
import requests
from airflow.sdk import ObjectStoragePath

from airflow_provider_runcomfy.testing.server import SAMPLE_PNG_BYTES, SAMPLE_SHA256

# dag_id: (RunComfy jobs, results that stored their outputs under output_dir)
EXAMPLES = {
    "example_runcomfy_text_to_video": (1, 1),
    "example_runcomfy_image_to_video": (1, 0),
    "example_runcomfy_split_pipeline": (1, 1),  # the download task's result
    "example_runcomfy_batch": (3, 0),
}


def results_of(run) -> list[dict]:
    values = [r["value"] for r in run.xcoms if r["key"] == "return_value" and isinstance(r["value"], dict)]
    return [v for v in values if v.get("status") == "succeeded"]


def assert_stored_as_served(result: dict) -> None:
    """Each output was stored, byte-identical to what the server served."""
    for url, file in zip(result["output_urls"], result["files"], strict=True):
        served = hashlib.sha256(requests.get(url, timeout=5).content).hexdigest()
        with ObjectStoragePath(file["uri"]).open("rb") as stored:
            assert hashlib.sha256(stored.read()).hexdigest() == served == file["sha256"] == SAMPLE_SHA256


@pytest.fixture
def output_dir(tmp_path) -> str:
    return (tmp_path / "outputs").as_uri()


@pytest.mark.parametrize(("dag_id", "expected"), EXAMPLES.items())
def test_example_dag_succeeds(examples_sandbox, runcomfy_server, output_dir, dag_id, expected):
    jobs, stored_results = expected
    frame = f"{runcomfy_server.url}/files/sample.png"  # the image-to-video example's first frame
    run = examples_sandbox.dags_test(
        dag_id, runcomfy_server, AIRFLOW_VAR_RUNCOMFY_OUTPUT_DIR=output_dir, AIRFLOW_VAR_RUNCOMFY_FIRST_FRAME=frame
    )

    assert run.returncode == 0, run.output[-4000:]
    assert "state=success" in run.output
    results = results_of(run)
    assert len({r["request_id"] for r in results}) == jobs
    for result in results:
        [url] = result["output_urls"]
        assert requests.get(url, timeout=5).content[4:8] == b"ftyp"
    stored = [r for r in results if "files" in r]
    assert len(stored) == stored_results
    for result in stored:
        assert all(file["uri"].startswith(output_dir) for file in result["files"])
        assert_stored_as_served(result)
    assert runcomfy_server.submits == jobs


@pytest.mark.requires_airflow(
    "3.1", reason="airflow dags test on 3.0 does not activate a DAG's assets (AirflowInactiveAssetInInletOrOutlet)"
)
def test_asset_pipeline_hands_the_clip_to_the_checker_in_its_event(examples_sandbox, runcomfy_server, output_dir):
    produced = examples_sandbox.dags_test(
        "runcomfy_generate_clip", runcomfy_server, AIRFLOW_VAR_RUNCOMFY_OUTPUT_DIR=output_dir
    )
    assert produced.returncode == 0, produced.output[-4000:]
    generated = produced.xcom("generate")
    assert_stored_as_served(generated)

    checked = examples_sandbox.dags_test("runcomfy_check_clip", runcomfy_server)
    assert checked.returncode == 0, checked.output[-4000:]
    event = checked.xcom("check_clip")
    assert event["request_id"] == generated["request_id"]
    assert event["model_id"] == "pixverse/pixverse/v5.5/text-to-video"
    assert event["prompt"] == "A hot-air balloon rising over misty hills at dawn"
    assert event["seed"] == 7
    assert (event["uri"], event["sha256"]) == (generated["files"][0]["uri"], generated["files"][0]["sha256"])


@pytest.mark.requires_airflow(
    "3.3", reason="airflow dags test answers approvals from 3.3; tests/deployment/test_examples.py approves over REST"
)
@pytest.mark.parametrize("answer", ["Approve", "Reject"])
def test_human_review_publishes_only_approved_clips(examples_sandbox, runcomfy_server, tmp_path, answer):
    output_dir = (tmp_path / "outputs").as_uri()
    answered: list[int] = []
    stop = threading.Event()

    def reviewer() -> None:  # a person answering in the UI, once the request shows up
        while not stop.wait(1) and not answered:
            if count := examples_sandbox.answer_approvals(answer):
                answered.append(count)

    person = threading.Thread(target=reviewer)
    person.start()
    try:
        run = examples_sandbox.dags_test(
            "example_runcomfy_human_review", runcomfy_server, AIRFLOW_VAR_RUNCOMFY_OUTPUT_DIR=output_dir
        )
    finally:
        stop.set()
        person.join()

    assert run.returncode == 0, run.output[-4000:]
    assert answered == [1]
    generated = run.xcom("generate")
    assert_stored_as_served(generated)
    published = sorted(p.name for p in (tmp_path / "outputs" / "published").glob("*"))
    expected = [ObjectStoragePath(generated["files"][0]["uri"]).name] if answer == "Approve" else []
    assert published == expected
    if answer == "Reject":
        assert not (tmp_path / "outputs" / "published").exists()


def test_the_chain_animates_its_stored_frame_signed_from_s3(examples_sandbox, runcomfy_server, s3_bucket):
    client, bucket = s3_bucket
    runcomfy_server.set_fetch_inputs()  # the server fetches image_url as RunComfy does
    run = examples_sandbox.dags_test(
        "example_runcomfy_image_chain", runcomfy_server, AIRFLOW_VAR_RUNCOMFY_OUTPUT_DIR=f"s3://aws_moto@{bucket}/media"
    )

    assert run.returncode == 0, run.output[-4000:]
    [frame], [clip] = run.xcom("make_frame")["files"], run.xcom("animate_frame")["files"]
    assert frame["uri"].startswith(f"s3://aws_moto@{bucket}/media/chain/") and frame["uri"].endswith(".png")
    assert frame["sha256"] == hashlib.sha256(SAMPLE_PNG_BYTES).hexdigest()
    assert clip["uri"].endswith(".mp4") and clip["sha256"] == SAMPLE_SHA256
    assert sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]) == sorted(
        f["uri"].split(f"{bucket}/", 1)[1] for f in (frame, clip)
    )
    submits = [e for e in runcomfy_server.log if e["call"] == "submit"]
    assert [e["model_id"] for e in submits] == [
        "runcomfy-local/test/text-to-image",
        "pixverse/pixverse/v5.5/image-to-video",
    ]
    [fetched] = submits[1]["fetched"]  # the stored frame, fetched by "RunComfy" through its signed URL
    assert (fetched["status"], fetched["sha256"]) == (200, frame["sha256"])
    assert "Signature=" in submits[1]["body"]["image_url"]
    assert "Signature=" not in run.output
