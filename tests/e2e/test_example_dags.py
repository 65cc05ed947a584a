"""Every example DAG succeeds under `airflow dags test` against the local RunComfy server."""

from __future__ import annotations

import hashlib
import threading

import pytest
import requests
from airflow.sdk import ObjectStoragePath

from airflow_provider_runcomfy.testing.server import SAMPLE_MP4

SAMPLE_SHA256 = hashlib.sha256(SAMPLE_MP4.read_bytes()).hexdigest()
EXAMPLES = {
    "example_runcomfy_text_to_video": 1,
    "example_runcomfy_image_to_video": 1,
    "example_runcomfy_split_pipeline": 1,
    "example_runcomfy_batch": 3,
}


def results_of(run) -> list[dict]:
    values = [r["value"] for r in run.xcoms if r["key"] == "return_value" and isinstance(r["value"], dict)]
    return [v for v in values if v.get("status") == "succeeded"]


def assert_stored_as_served(result: dict) -> None:
    """Each stored file is byte-identical to what the server served."""
    for url, file in zip(result["output_urls"], result.get("files", []), strict=False):
        served = hashlib.sha256(requests.get(url, timeout=5).content).hexdigest()
        with ObjectStoragePath(file["uri"]).open("rb") as stored:
            assert hashlib.sha256(stored.read()).hexdigest() == served == file["sha256"] == SAMPLE_SHA256


@pytest.fixture
def output_dir(tmp_path) -> str:
    return (tmp_path / "outputs").as_uri()


@pytest.mark.parametrize(("dag_id", "jobs"), EXAMPLES.items())
def test_example_dag_succeeds(examples_sandbox, runcomfy_server, output_dir, dag_id, jobs):
    run = examples_sandbox.dags_test(dag_id, runcomfy_server, AIRFLOW_VAR_RUNCOMFY_OUTPUT_DIR=output_dir)

    assert run.returncode == 0, run.output[-4000:]
    assert "state=success" in run.output
    results = results_of(run)
    assert len({r["request_id"] for r in results}) == jobs
    for result in results:
        [url] = result["output_urls"]
        assert requests.get(url, timeout=5).content[4:8] == b"ftyp"
        assert_stored_as_served(result)
    assert runcomfy_server.submits == jobs


def test_text_to_video_and_split_pipeline_store_their_clips(examples_sandbox, runcomfy_server, output_dir):
    for dag_id in ("example_runcomfy_text_to_video", "example_runcomfy_split_pipeline"):
        run = examples_sandbox.dags_test(dag_id, runcomfy_server, AIRFLOW_VAR_RUNCOMFY_OUTPUT_DIR=output_dir)
        assert run.returncode == 0, run.output[-4000:]
        stored = [r for r in results_of(run) if r.get("files")]
        assert len(stored) == 1
        assert stored[0]["files"][0]["uri"].startswith(output_dir)


def test_asset_pipeline_schedules_the_checker_on_the_generated_clip(examples_sandbox, runcomfy_server, output_dir):
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
    published = sorted(p.name for p in (tmp_path / "outputs" / "published").glob("*")) if answer == "Approve" else []
    expected = [ObjectStoragePath(generated["files"][0]["uri"]).name] if answer == "Approve" else []
    assert published == expected
    if answer == "Reject":
        assert not (tmp_path / "outputs" / "published").exists()
