"""Bad input: every PixVerse rule, wrong types, missing fields, bad model ids, broken connections, malformed URLs.
Each one is a real DAG run (or DAG file) in the deployment; each must fail with an error that names the problem,
and none may create a job on the server.
"""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.timeout(600)

T2V = "pixverse/pixverse/v5.5/text-to-video"
I2V = "pixverse/pixverse/v5.5/image-to-video"
OK_PROMPT = {"prompt": "a fox in the snow"}

# (model_id, inputs, what the error must say). One DAG run of ``bad_input`` each.
RUN_TIME_ROWS = [
    (T2V, {**OK_PROMPT, "aspect_ratio": "21:9"}, "aspect_ratio: Input should be '16:9', '4:3', '1:1', '3:4' or '9:16'"),
    (T2V, {**OK_PROMPT, "resolution": "4k"}, "resolution: Input should be '360p', '540p', '720p' or '1080p'"),
    (T2V, {**OK_PROMPT, "duration": 7}, "duration: Input should be 5, 8 or 10"),
    (T2V, {**OK_PROMPT, "resolution": "1080p", "duration": 10}, "with resolution '1080p' the duration must be 5 or 8"),
    (T2V, {**OK_PROMPT, "style": "watercolor"}, "style: Input should be 'anime', '3d_animation'"),
    (T2V, {**OK_PROMPT, "thinking_type": "maybe"}, "thinking_type: Input should be 'enabled', 'disabled' or 'auto'"),
    (T2V, {"prompt": ""}, "prompt: must not be empty"),
    (T2V, {"prompt": "   "}, "prompt: must not be empty"),
    (T2V, {"duration": 5}, "prompt: Field required"),
    (I2V, OK_PROMPT, "image_url: Field required"),
    (I2V, {**OK_PROMPT, "image_url": "ftp://example.com/frame.png"}, "image_url: files on ftp:// cannot be signed"),
    (I2V, {**OK_PROMPT, "image_url": "not a url"}, "image_url: must be a public http(s) URL"),
    (I2V, {**OK_PROMPT, "image_url": "https://"}, "image_url: must be a public http(s) URL"),
    (T2V, {**OK_PROMPT, "durration": 5}, "durration: Extra inputs are not permitted"),
    (T2V, {**OK_PROMPT, "seed": "abc"}, "seed: Input should be a valid integer"),
    (T2V, {**OK_PROMPT, "generate_audio_switch": "maybe"}, "generate_audio_switch: Input should be a valid boolean"),
    (T2V, {**OK_PROMPT, "duration": "five"}, "duration: Input should be 5, 8 or 10"),
    (T2V, {"prompt": 123}, "prompt: Input should be a valid string"),
    (T2V, ["a fox in the snow"], "inputs must be a dict of the model's inputs, not list"),
    (T2V, "prompt=a fox", "inputs must be a dict of the model's inputs, not str"),
    # File inputs RunComfy could not fetch, found out by fetching them first ({server_url}: the local server's).
    (I2V, {**OK_PROMPT, "image_url": "{server_url}/files/nope/output.png"}, "HTTP 404: there is no file at this URL"),
    (I2V, {**OK_PROMPT, "image_url": "{server_url}/files/synthetic/60000000.bin"}, "60.0 MB is over the 50 MB limit"),
    (I2V, {**OK_PROMPT, "image_url": "https://10.1.2.3/frame.png"}, "10.1.2.3 is not an internet address"),
    (I2V, {**OK_PROMPT, "image_url": "s3://aws_moto@runcomfy-outputs/none.png"}, "none.png: HTTP 404"),  # signed
    (I2V, {**OK_PROMPT, "image_url": "memory://frames/f.png"}, "files on memory:// cannot be signed"),
    ("../../v1/requests", OK_PROMPT, "is not a RunComfy model id"),
    ("pixverse v5.5", OK_PROMPT, "is not a RunComfy model id"),
    ("", OK_PROMPT, "is not a RunComfy model id"),
    ("acme/unknown-model/v1", OK_PROMPT, "unknown model id 'acme/unknown-model/v1'"),  # only the server knows
]
# One task each in ``bad_connection`` (see conftest.BROKEN_CONNECTIONS).
CONNECTION_ROWS = [
    ("runcomfy_empty_token", "connection with an empty API token", "has no API token"),
    ("runcomfy_blank_token", "connection whose API token is blanks", "has no API token"),
    ("runcomfy_missing", "connection id that is not defined", "isn't defined"),
    ("runcomfy_bad_url", "connection with a malformed base URL (`http://127.0.0.1:notaport`)", "invalid base URL"),
]
PARSE_TIME_ERROR = "duration: with resolution '1080p' the duration must be 5 or 8 (got 10)"
SERVER_ONLY = {"acme/unknown-model/v1"}  # well-formed, not in the provider's schemas: the API refuses it


def test_every_bad_input_fails_clearly_without_a_job(deployment, server, report):
    started = time.monotonic()

    def conf(model_id, inputs):
        text = json.dumps({"model_id": model_id, "inputs": inputs})
        return json.loads(text.replace("{server_url}", server.control.url))

    runs = [deployment.api.trigger("bad_input", conf(m, i)) for m, i, _ in RUN_TIME_ROWS]
    connection_run = deployment.api.trigger("bad_connection")
    states = [deployment.api.wait_run("bad_input", run_id, timeout=300) for run_id in runs]
    connection_state = deployment.api.wait_run("bad_connection", connection_run, timeout=300)

    rows, log = [], server.control.log()
    posts = {e["model_id"]: e["status"] for e in log if e["call"] == "submit"}
    assert server.control.stats()["submits"] == 0  # no job, whatever the input
    assert posts == dict.fromkeys(SERVER_ONLY, 400)  # only the unknown model reached the server, refused
    # besides, only the inputs' pre-flight and the catalog's free lookups
    assert {e["call"] for e in log if e["call"] != "submit"} <= {"file", "catalog"}
    assert states == ["failed"] * len(runs) and connection_state == "failed"
    for (model_id, inputs, expected), run_id in zip(RUN_TIME_ROWS, runs, strict=True):
        [ti] = deployment.api.task_instances("bad_input", run_id)
        errors = deployment.task_errors("bad_input", run_id, "generate")
        assert (ti["state"], ti["try_number"]) == ("failed", 1)
        assert any(expected in error for error in errors), (model_id, inputs, errors)
        described = f"`{model_id or '(empty)'}` " + json.dumps(inputs)
        rows.append([described, _first(errors, expected), "refused (400)" if model_id in SERVER_ONLY else "no", "no"])
    tis = {ti["task_id"]: ti for ti in deployment.api.task_instances("bad_connection", connection_run)}
    for conn_id, described, expected in CONNECTION_ROWS:
        errors = deployment.task_errors("bad_connection", connection_run, conn_id)
        assert (tis[conn_id]["state"], tis[conn_id]["try_number"]) == ("failed", 1)
        assert any(expected in error for error in errors), (conn_id, errors)
        rows.append([described, _first(errors, expected), "no", "no"])
    bad_url = deployment.task_errors("bad_connection", connection_run, "runcomfy_bad_url")
    assert not any("may have reached the server" in error for error in bad_url)  # it never left: say so
    [import_error] = [e for e in deployment.api.import_errors() if e["filename"].endswith("bad_literal_dag.py")]
    assert PARSE_TIME_ERROR in import_error["stack_trace"]
    assert "bad_literal" not in deployment.api.dag_ids()  # the DAG never became runnable
    rows.append(
        ["a DAG file with a literal `resolution='1080p', duration=10`", f"import error: {PARSE_TIME_ERROR}", "no", "no"]
    )

    report.record(
        "bad_input",
        rows=[[n, *row] for n, row in enumerate(rows, 1)],
        checked=len(runs) + len(CONNECTION_ROWS),
        seconds=round(time.monotonic() - started, 1),
        duplicates=0,
    )


def _first(errors: list[str], expected: str) -> str:
    """The error that says what was expected, shortened for the table."""
    text = next(error for error in errors if expected in error)
    return text if len(text) <= 240 else text[:237] + "..."
