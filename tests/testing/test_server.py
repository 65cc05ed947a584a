"""The local RunComfy-compatible server, over real HTTP: what the provider's tests rely on must hold here first."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import requests

from airflow_provider_runcomfy.testing.server import RunComfyTestServer, synthetic_chunks

T2V = "pixverse/pixverse/v5.5/text-to-video"
I2V = "pixverse/pixverse/v5.5/image-to-video"
CLIENTS = ["requests", "httpx"]
# What each client raises when the answer breaks off mid-body (status line and headers were received).
BROKEN = {"requests": requests.exceptions.ChunkedEncodingError, "httpx": httpx.RemoteProtocolError}
TIMEOUT = {"requests": requests.exceptions.ReadTimeout, "httpx": httpx.ReadTimeout}


def call(client: str, method: str, url: str, token: str | None = None, **kwargs) -> tuple[int, dict, bytes]:
    """One request with either client: (status, lower-cased headers, body)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs.setdefault("timeout", 10)
    if client == "requests":
        response = requests.request(method, url, headers=headers, **kwargs)
    else:
        response = httpx.request(method, url, headers=headers, **kwargs)
    return response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content


def submit(server: RunComfyTestServer, inputs: dict | None = None, model_id: str = T2V, token: str | None = None):
    response = requests.post(
        f"{server.url}/v1/models/{model_id}",
        json={"prompt": "a cat"} if inputs is None else inputs,
        headers={"Authorization": f"Bearer {token or server.token}"},
        timeout=10,
    )
    return response


def get(server: RunComfyTestServer, request_id: str, what: str, token: str | None = None, **params) -> dict:
    response = requests.get(
        f"{server.url}/v1/requests/{request_id}/{what}",
        params=params,
        headers={"Authorization": f"Bearer {token or server.token}"},
        timeout=10,
    )
    return response.json()


def wait_for(server: RunComfyTestServer, request_id: str, status: str, limit: float = 5) -> dict:
    deadline = time.monotonic() + limit
    while (answer := get(server, request_id, "status"))["status"] != status:
        assert time.monotonic() < deadline, answer
        time.sleep(0.02)
    return answer


def test_job_goes_through_queue_and_run_to_a_downloadable_mp4(runcomfy_server):
    runcomfy_server.set_clock(queue_seconds=0.3, run_seconds=0.3)
    answer = submit(runcomfy_server)
    assert answer.status_code == 200
    job = answer.json()
    request_id = job["request_id"]
    base = f"{runcomfy_server.url}/v1/requests/{request_id}"
    assert job == {
        "request_id": request_id,
        "status_url": f"{base}/status",
        "result_url": f"{base}/result",
        "cancel_url": f"{base}/cancel",
    }

    queued = get(runcomfy_server, request_id, "status")
    assert queued == {
        "request_id": request_id,
        "status": "in_queue",
        "queue_position": 0,
        "status_url": f"{base}/status",
        "result_url": f"{base}/result",
    }
    running_result = get(runcomfy_server, request_id, "result", include_cost="true")
    assert running_result["status"] == "in_queue"
    assert "output" not in running_result and "cost" not in running_result
    assert "queue_position" not in wait_for(runcomfy_server, request_id, "in_progress")
    assert get(runcomfy_server, request_id, "result")["status"] == "in_progress"
    wait_for(runcomfy_server, request_id, "completed")

    result = get(runcomfy_server, request_id, "result", include_cost="true")
    assert result["status"] == "succeeded"
    assert result["cost"] == 0.35 and result["created_at"] < result["finished_at"]
    assert "cost" not in get(runcomfy_server, request_id, "result")
    video = requests.get(result["output"]["video"], timeout=10)  # no auth: output files are like a CDN
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert int(video.headers["content-length"]) == len(video.content) < 100_000
    assert video.content[4:8] == b"ftyp"
    assert runcomfy_server.submits == 1


def test_queue_position_counts_earlier_jobs_still_queued(runcomfy_server):
    runcomfy_server.set_clock(queue_seconds=30)
    ids = [submit(runcomfy_server).json()["request_id"] for _ in range(3)]
    assert [get(runcomfy_server, i, "status")["queue_position"] for i in ids] == [0, 1, 2]
    requests.post(
        f"{runcomfy_server.url}/v1/requests/{ids[0]}/cancel",
        headers={"Authorization": f"Bearer {runcomfy_server.token}"},
        timeout=10,
    )
    assert [get(runcomfy_server, i, "status")["queue_position"] for i in ids[1:]] == [0, 1]


@pytest.mark.parametrize("client", CLIENTS)
def test_auth_errors(runcomfy_server, client):
    request_id = submit(runcomfy_server).json()["request_id"]
    status_url = f"{runcomfy_server.url}/v1/requests/{request_id}/status"
    for token in (None, "wrong-token"):
        status, _, body = call(client, "GET", status_url, token)
        assert (status, json.loads(body)) == (401, {"code": 400004, "error": "UserAccountError"})
        status, _, body = call(client, "POST", f"{runcomfy_server.url}/v1/models/{T2V}", token, json={"prompt": "x"})
        assert (status, json.loads(body)["code"]) == (401, 400004)
    # Auth is checked before the request id.
    assert call(client, "GET", f"{runcomfy_server.url}/v1/requests/nope/status")[0] == 401
    status, _, body = call(client, "GET", f"{runcomfy_server.url}/v1/requests/nope/result", runcomfy_server.token)
    assert (status, json.loads(body)["code"], json.loads(body)["error"]) == (404, 404001, "RequestNotFound")
    assert runcomfy_server.submits == 1


def test_request_of_another_token_is_forbidden():
    with RunComfyTestServer(tokens=["second-token"]) as server:
        request_id = submit(server, token="second-token").json()["request_id"]
        for what in ("status", "result"):
            assert get(server, request_id, what)["code"] == 403001
        cancel = requests.post(
            f"{server.url}/v1/requests/{request_id}/cancel", headers={"Authorization": f"Bearer {server.token}"}
        )
        assert (cancel.status_code, cancel.json()["code"]) == (403, 403001)
        assert get(server, request_id, "status", token="second-token")["status"] in ("in_queue", "in_progress")
        assert server.cancels == 0


def test_any_well_formed_model_id_is_served_by_default(runcomfy_server):
    assert submit(runcomfy_server, {"prompt": "x"}, model_id="bytedance/seedream-4-0/text-to-image").status_code == 200
    malformed = submit(runcomfy_server, {}, model_id="acme/-not-an-id")
    assert (malformed.status_code, malformed.json()["code"]) == (400, 400001)


def test_model_ids_and_input_validation():
    with RunComfyTestServer(model_ids=["acme/other/v1", "test/echo"]) as server:
        unknown = submit(server, model_id="acme/unknown/v1")
        assert (unknown.status_code, unknown.json()["code"], unknown.json()["error"]) == (400, 400001, "InvalidModelId")
        bad = submit(server, {"prompt": "x", "duration": 7})
        assert (bad.status_code, bad.json()["code"], bad.json()["error"]) == (400, 400000, "InvalidInput")
        assert "duration" in bad.json()["message"] and server.token not in bad.text
        assert submit(server, {"image_url": "ftp://x/y.png", "prompt": "x"}, model_id=I2V).status_code == 400
        assert submit(server, "not an object", model_id="test/echo").status_code == 400
        # Generic models take any JSON object: their schema is not known.
        for model_id in ("test/echo", "acme/other/v1"):
            assert submit(server, {"anything": [1, 2]}, model_id=model_id).status_code == 200
        assert submit(server, {"prompt": "x", "image_url": "https://x/y.png"}, model_id=I2V).status_code == 200
        assert server.submits == 3
        assert server.log[-1]["body"] == {"prompt": "x", "image_url": "https://x/y.png"}
        assert server.log[-1]["model_id"] == I2V


@pytest.mark.parametrize("client", CLIENTS)
def test_cancel_only_while_queued(runcomfy_server, client):
    cancel = "{}/v1/requests/{}/cancel".format
    runcomfy_server.set_clock(queue_seconds=30)
    queued = submit(runcomfy_server).json()["request_id"]
    status, _, body = call(client, "POST", cancel(runcomfy_server.url, queued), runcomfy_server.token)
    assert (status, json.loads(body)) == (202, {"request_id": queued, "status": "cancelled", "outcome": "cancelled"})
    assert get(runcomfy_server, queued, "status")["status"] == "cancelled"
    result = get(runcomfy_server, queued, "result", include_cost="true")
    assert (result["status"], result["cost"], "output" in result) == ("cancelled", 0.0, False)
    # A second cancel of the same job cancels nothing.
    assert json.loads(call(client, "POST", cancel(runcomfy_server.url, queued), runcomfy_server.token)[2])[
        "outcome"
    ] == ("not_cancellable")

    runcomfy_server.set_clock(queue_seconds=0, run_seconds=0.3)
    running = submit(runcomfy_server).json()["request_id"]
    status, _, body = call(client, "POST", cancel(runcomfy_server.url, running), runcomfy_server.token)
    assert (status, json.loads(body)["outcome"], json.loads(body)["status"]) == (202, "not_cancellable", "in_progress")
    wait_for(runcomfy_server, running, "completed")
    assert get(runcomfy_server, running, "result")["status"] == "succeeded"
    assert runcomfy_server.cancels == 1


def test_failed_job_says_completed_in_status_and_failed_in_result(runcomfy_server):
    runcomfy_server.set_clock(queue_seconds=0, run_seconds=0)
    runcomfy_server.add_outcomes(
        [{"outcome": "failed"}, {"outcome": "failed", "error": "content moderation", "cost": 0.1}]
    )
    first, second, third = (submit(runcomfy_server).json()["request_id"] for _ in range(3))
    assert get(runcomfy_server, first, "status")["status"] == "completed"
    failed = get(runcomfy_server, first, "result")
    assert failed["status"] == "failed" and "output" not in failed
    assert failed["error"] == {"code": "GENERATION_FAILED", "message": "Simulated generation failure"}
    failed = get(runcomfy_server, second, "result", include_cost="true")
    assert (failed["status"], failed["error"], failed["cost"]) == ("failed", "content moderation", 0.1)
    assert get(runcomfy_server, third, "result")["status"] == "succeeded"


def test_a_lagging_result_says_in_progress_for_its_first_calls_once_the_job_finished(runcomfy_server):
    runcomfy_server.set_clock(queue_seconds=0.3, run_seconds=0)
    runcomfy_server.add_outcomes([{"outcome": "failed", "result_lag": 2}])
    lagging, other = (submit(runcomfy_server).json()["request_id"] for _ in range(2))
    assert get(runcomfy_server, lagging, "result")["status"] == "in_queue"  # not finished yet: no lag used up
    wait_for(runcomfy_server, lagging, "completed")
    assert [get(runcomfy_server, lagging, "result")["status"] for _ in range(3)] == ["in_progress"] * 2 + ["failed"]
    assert get(runcomfy_server, other, "result")["status"] == "succeeded"  # the rule was that job's alone
    assert [e["fault"] for e in runcomfy_server.log if e["call"] == "result"] == [
        None,
        "result_lag",
        "result_lag",
        None,
        None,
    ]


def test_a_job_with_queue_polls_starts_once_its_status_was_read_that_often(runcomfy_server):
    runcomfy_server.set_clock(queue_seconds=0, run_seconds=0)
    runcomfy_server.add_outcomes([{"outcome": "failed", "queue_polls": 2}])
    request_id = submit(runcomfy_server).json()["request_id"]
    time.sleep(0.3)  # no clock moves it: only status calls do
    assert get(runcomfy_server, request_id, "result")["status"] == "in_queue"
    assert [get(runcomfy_server, request_id, "status")["status"] for _ in range(3)] == ["in_queue"] * 2 + ["completed"]
    assert get(runcomfy_server, request_id, "result")["status"] == "failed"


def test_unknown_status_value_for_running_jobs(runcomfy_server):
    runcomfy_server.set_clock(queue_seconds=0, run_seconds=30)
    request_id = submit(runcomfy_server).json()["request_id"]
    runcomfy_server.add_outcomes({"status_value": "processing", "times": 2})
    assert [get(runcomfy_server, request_id, "status")["status"] for _ in range(3)] == [
        "processing",
        "processing",
        "in_progress",
    ]


@pytest.mark.parametrize("client", CLIENTS)
def test_synthetic_file_is_exact_and_streamed(runcomfy_server, client):
    size = 5 * 2**20 + 3
    expected = hashlib.sha256(b"".join(synthetic_chunks(size, seed=7))).hexdigest()
    url = f"{runcomfy_server.url}/files/synthetic/{size}.bin?seed=7"
    digest, received, pieces = hashlib.sha256(), 0, 0
    if client == "requests":
        with requests.get(url, stream=True, timeout=10) as response:
            length = int(response.headers["content-length"])
            for piece in response.iter_content(256 * 1024):
                digest.update(piece)
                received, pieces = received + len(piece), pieces + 1
    else:
        with httpx.stream("GET", url, timeout=10) as response:
            length = int(response.headers["content-length"])
            for piece in response.iter_bytes(256 * 1024):
                digest.update(piece)
                received, pieces = received + len(piece), pieces + 1
    assert length == received == size and pieces > 1
    assert digest.hexdigest() == expected
    other_seed = requests.get(f"{runcomfy_server.url}/files/synthetic/1000.bin?seed=8", timeout=10).content
    assert len(other_seed) == 1000 and other_seed != b"".join(synthetic_chunks(1000, seed=7))


def test_outcome_can_point_the_output_at_a_synthetic_file(runcomfy_server):
    runcomfy_server.set_clock(queue_seconds=0, run_seconds=0)
    runcomfy_server.add_outcomes(
        [
            {"outcome": "succeeded", "synthetic_size": 3000, "seed": 2},
            {"outcome": "succeeded", "output": {"videos": ["{base}/{request_id}"]}},
        ]
    )
    first, second = (submit(runcomfy_server).json()["request_id"] for _ in range(2))
    video = get(runcomfy_server, first, "result")["output"]["video"]
    assert video == f"{runcomfy_server.url}/files/synthetic/3000.bin?seed=2"
    assert requests.get(video, timeout=10).content == b"".join(synthetic_chunks(3000, seed=2))
    assert get(runcomfy_server, second, "result")["output"] == {"videos": [f"{runcomfy_server.url}/{second}"]}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("rule", "status", "check"),
    [
        ({"fault": "400"}, 400, lambda h, b: json.loads(b)["code"] == 400001),
        ({"fault": "422"}, 422, lambda h, b: json.loads(b)["error"] == "InvalidInput"),
        ({"fault": "429", "retry_after": 2}, 429, lambda h, b: h["retry-after"] == "2" and b"TooManyRequests" in b),
        ({"fault": "429"}, 429, lambda h, b: "retry-after" not in h),
        ({"fault": "500"}, 500, lambda h, b: json.loads(b)["code"] == 500000),
        ({"fault": "502"}, 502, lambda h, b: h["content-type"].startswith("text/html")),
        ({"fault": "503"}, 503, lambda h, b: b.startswith(b"<html>")),
        ({"fault": "http200_error", "error_code": 400002}, 200, lambda h, b: json.loads(b)["error_code"] == 400002),
    ],
)
def test_error_faults(runcomfy_server, client, rule, status, check):
    request_id = submit(runcomfy_server).json()["request_id"]
    runcomfy_server.add_faults({**rule, "call": "status"})
    url = f"{runcomfy_server.url}/v1/requests/{request_id}/status"
    answer_status, headers, body = call(client, "GET", url, runcomfy_server.token)
    assert answer_status == status and check(headers, body)
    # Consumed: the next call is answered normally, and the fault never reached the job.
    assert call(client, "GET", url, runcomfy_server.token)[0] == 200
    assert runcomfy_server.log[-2]["fault"] == rule["fault"] and runcomfy_server.log[-1]["fault"] is None


@pytest.mark.parametrize("client", CLIENTS)
def test_error_fault_on_submit_creates_no_job(runcomfy_server, client):
    runcomfy_server.add_faults([{"call": "submit", "fault": "503", "times": 2}])
    url = f"{runcomfy_server.url}/v1/models/{T2V}"
    assert [call(client, "POST", url, runcomfy_server.token, json={"prompt": "x"})[0] for _ in range(3)] == [
        503,
        503,
        200,
    ]
    assert runcomfy_server.submits == 1


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("call_name", ["submit", "status", "result", "cancel"])
def test_drop_breaks_the_answer_off_in_both_clients(runcomfy_server, client, call_name):
    runcomfy_server.set_clock(queue_seconds=30)
    request_id = submit(runcomfy_server).json()["request_id"]
    runcomfy_server.add_faults({"call": call_name, "fault": "drop"})
    method, path = {
        "submit": ("POST", f"/v1/models/{T2V}"),
        "status": ("GET", f"/v1/requests/{request_id}/status"),
        "result": ("GET", f"/v1/requests/{request_id}/result"),
        "cancel": ("POST", f"/v1/requests/{request_id}/cancel"),
    }[call_name]
    with pytest.raises(BROKEN[client]):
        call(client, method, runcomfy_server.url + path, runcomfy_server.token, json={"prompt": "x"})
    # The work behind a dropped answer was done: the dangerous case of a paid job the client never heard of.
    assert runcomfy_server.submits == (2 if call_name == "submit" else 1)
    assert runcomfy_server.cancels == (1 if call_name == "cancel" else 0)
    entry = runcomfy_server.log[-1]
    assert (entry["call"], entry["fault"], entry["status"]) == (
        call_name,
        "drop",
        200 if call_name != "cancel" else 202,
    )
    if call_name == "submit":
        assert entry["request_id"] not in (None, request_id)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_dropped_file_sends_half_the_bytes_then_breaks(runcomfy_server, client):
    size = 3 * 2**20
    runcomfy_server.add_faults({"call": "file", "fault": "drop"})
    received = bytearray()
    url = f"{runcomfy_server.url}/files/synthetic/{size}.bin"
    with pytest.raises(BROKEN[client]):
        if client == "requests":
            with requests.get(url, stream=True, timeout=10) as response:
                assert int(response.headers["content-length"]) == size
                for piece in response.iter_content(65536):
                    received += piece
        else:
            with httpx.stream("GET", url, timeout=10) as response:
                assert int(response.headers["content-length"]) == size
                for piece in response.iter_bytes(65536):
                    received += piece
    assert bytes(received) == b"".join(synthetic_chunks(size // 2))
    assert len(requests.get(url, timeout=10).content) == size  # consumed


@pytest.mark.parametrize("client", CLIENTS)
def test_slow_submit_times_out_in_the_client_after_creating_the_job(runcomfy_server, client):
    runcomfy_server.add_faults({"call": "submit", "fault": "slow", "delay": 1.5})
    with pytest.raises(TIMEOUT[client]):
        call(
            client,
            "POST",
            f"{runcomfy_server.url}/v1/models/{T2V}",
            runcomfy_server.token,
            json={"prompt": "x"},
            timeout=0.3,
        )
    assert runcomfy_server.submits == 1


def test_faults_match_their_call_in_order(runcomfy_server):
    request_id = submit(runcomfy_server).json()["request_id"]
    runcomfy_server.add_faults(
        [{"call": "result", "fault": "500"}, {"fault": "502"}, {"call": "status", "fault": "503"}]
    )
    headers = {"Authorization": f"Bearer {runcomfy_server.token}"}
    url = f"{runcomfy_server.url}/v1/requests/{request_id}"
    assert requests.get(f"{url}/status", headers=headers).status_code == 502  # "any" comes before the status rule
    assert requests.get(f"{url}/status", headers=headers).status_code == 503
    assert requests.get(f"{url}/status", headers=headers).status_code == 200
    assert requests.get(f"{url}/result", headers=headers).status_code == 500
    with pytest.raises(ValueError, match="fault must be one of"):
        runcomfy_server.add_faults({"fault": "418"})


def test_control_api_over_http_and_no_token_in_the_log(runcomfy_server):
    url, token = runcomfy_server.url, runcomfy_server.token
    assert requests.post(f"{url}/_control/clock", json={"queue_seconds": 0, "run_seconds": 0}).json() == {
        "queue_seconds": 0.0,
        "run_seconds": 0.0,
    }
    assert requests.post(f"{url}/_control/faults", json=[{"call": "status", "fault": "500"}]).status_code == 200
    assert requests.post(f"{url}/_control/outcomes", json=[{"outcome": "failed", "error": "boom"}]).status_code == 200
    assert requests.post(f"{url}/_control/faults", json=[{"fault": "nope"}]).status_code == 400
    request_id = submit(runcomfy_server).json()["request_id"]
    assert get(runcomfy_server, request_id, "status") == {"code": 500000, "error": "InternalServerError"}
    assert get(runcomfy_server, request_id, "result")["error"] == "boom"
    requests.get(f"{url}/v1/requests/{request_id}/status", headers={"Authorization": "Bearer wrong-secret"})

    log = requests.get(f"{url}/_control/log")
    assert [(e["call"], e["status"], e["auth"]) for e in log.json()] == [
        ("submit", 200, True),
        ("status", 500, True),
        ("result", 200, True),
        ("status", 401, False),
    ]
    assert token not in log.text and "wrong-secret" not in log.text
    assert log.json()[0]["body"] == {"prompt": "a cat"}
    stats = requests.get(f"{url}/_control/stats").json()
    assert stats == {"submits": 1, "cancels": 0, "jobs": 1, "requests": 4}
    assert requests.get(f"{url}/_control/cpu").json()["cpu_seconds"] > 0  # what a benchmark's load costs the server

    assert requests.post(f"{url}/_control/reset").status_code == 200
    assert requests.get(f"{url}/_control/stats").json() == {"submits": 0, "cancels": 0, "jobs": 0, "requests": 0}
    assert requests.get(f"{url}/_control/log").json() == []
    assert get(runcomfy_server, request_id, "status")["code"] == 404001


def test_connection_fixture(runcomfy_connection):
    conn = json.loads(os.environ["AIRFLOW_CONN_RUNCOMFY_DEFAULT"])
    balance_url = f"{runcomfy_connection.url}/prod/v2/balance"
    assert conn == {
        "conn_type": "runcomfy",
        "host": runcomfy_connection.url,
        "password": "test-token",
        "extra": {"balance_url": balance_url},
    }


def test_cli_serves_until_terminated():
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_runcomfy.testing.server", "--port", "0", "--token", "cli-token"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # Importing Airflow may print its own log lines first.
        line = next(line for line in process.stdout if line.startswith("RunComfy test server on "))
        assert line.startswith("RunComfy test server on http://127.0.0.1:")
        url = line.split()[-1]
        answer = requests.post(
            f"{url}/v1/models/test/echo", json={}, headers={"Authorization": "Bearer cli-token"}, timeout=10
        )
        assert answer.status_code == 200 and answer.json()["status_url"].startswith(url)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()


def test_a_rule_with_skip_lets_its_first_matching_calls_through(runcomfy_server):
    request_id = submit(runcomfy_server).json()["request_id"]
    runcomfy_server.add_faults({"call": "status", "fault": "500", "skip": 2, "times": 1})
    url = f"{runcomfy_server.url}/v1/requests/{request_id}/status"
    headers = {"Authorization": f"Bearer {runcomfy_server.token}"}
    assert [httpx.get(url, headers=headers).status_code for _ in range(4)] == [200, 200, 500, 200]
    assert [e["fault"] for e in runcomfy_server.log if e["call"] == "status"] == [None, None, "500", None]


def test_release_starts_every_queued_job_now_and_leaves_the_others(runcomfy_server):
    runcomfy_server.set_clock(queue_seconds=600, run_seconds=0.2)
    held = [submit(runcomfy_server).json()["request_id"] for _ in range(3)]
    answer = httpx.post(f"{runcomfy_server.url}/_control/release")
    assert answer.json() == {"released": 3}
    time.sleep(0.4)
    headers = {"Authorization": f"Bearer {runcomfy_server.token}"}
    statuses = [httpx.get(f"{runcomfy_server.url}/v1/requests/{rid}/status", headers=headers).json() for rid in held]
    assert [s["status"] for s in statuses] == ["completed"] * 3
    assert runcomfy_server.release() == 0  # nothing left in the queue


def test_the_local_text_to_image_model_answers_a_real_png(runcomfy_server):
    from airflow_provider_runcomfy.testing.server import LOCAL_TEXT_TO_IMAGE, SAMPLE_PNG_BYTES

    refused = submit(runcomfy_server, {"prompt": "a kite", "size": "4k"}, model_id=LOCAL_TEXT_TO_IMAGE)
    assert refused.status_code == 400 and "size: Extra inputs are not permitted" in refused.json()["message"]
    request_id = submit(runcomfy_server, {"prompt": "a kite"}, model_id=LOCAL_TEXT_TO_IMAGE).json()["request_id"]
    wait_for(runcomfy_server, request_id, "completed")
    [url] = get(runcomfy_server, request_id, "result")["output"]["images"]
    image = requests.get(url, timeout=10)
    assert (image.headers["content-type"], image.content) == ("image/png", SAMPLE_PNG_BYTES)
    assert image.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert requests.head(f"{runcomfy_server.url}/files/sample.png", timeout=10).headers["content-length"] == str(
        len(SAMPLE_PNG_BYTES)
    )


def test_with_fetch_inputs_a_job_whose_input_cannot_be_fetched_fails_naming_it(runcomfy_server):
    runcomfy_server.set_fetch_inputs()
    good = f"{runcomfy_server.url}/files/sample.png"
    bad = f"{runcomfy_server.url}/files/gone/output.png?X-Amz-Signature=abc"
    ok = submit(runcomfy_server, {"prompt": "x", "image_url": good}, model_id=I2V).json()["request_id"]
    failing = submit(runcomfy_server, {"prompt": "x", "image_url": bad}, model_id=I2V).json()["request_id"]
    for request_id in (ok, failing):
        wait_for(runcomfy_server, request_id, "completed")
    assert get(runcomfy_server, ok, "result")["status"] == "succeeded"
    failed = get(runcomfy_server, failing, "result")
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "INPUT_FETCH_FAILED", "message": "image_url could not be fetched: HTTP 404"}
    fetched = [e["fetched"] for e in runcomfy_server.log if e["call"] == "submit"]
    seen = [[(f["field"], f["status"]) for f in each] for each in fetched]
    assert seen == [[("image_url", 200)], [("image_url", 404)]]
    assert fetched[1][0]["url"] == f"{runcomfy_server.url}/files/gone/output.png"  # logged without its query
