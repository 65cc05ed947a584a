"""Every example DAG succeeds under `airflow dags test` against the local RunComfy server."""

from __future__ import annotations

import pytest
import requests

EXAMPLES = {
    "example_runcomfy_text_to_video": 1,
    "example_runcomfy_image_to_video": 1,
    "example_runcomfy_split_pipeline": 1,
    "example_runcomfy_batch": 3,
}


@pytest.mark.parametrize(("dag_id", "jobs"), EXAMPLES.items())
def test_example_dag_succeeds(examples_sandbox, runcomfy_server, dag_id, jobs):
    run = examples_sandbox.dags_test(dag_id, runcomfy_server)

    assert run.returncode == 0, run.output[-4000:]
    assert "state=success" in run.output
    results = [r["value"] for r in run.xcoms if r["key"] == "return_value" and isinstance(r["value"], dict)]
    finished = [r for r in results if r["status"] == "succeeded"]
    assert len(finished) == jobs
    for result in finished:
        [url] = result["output_urls"]
        assert requests.get(url, timeout=5).content[4:8] == b"ftyp"
    assert runcomfy_server.submits == jobs
