"""RunComfyHook against the local RunComfy server: real HTTP over loopback, faults injected by the server."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from airflow_provider_runcomfy.exceptions import (
    RunComfyAuthError,
    RunComfyConnectionError,
    RunComfyError,
    RunComfyInvalidInputError,
    RunComfyNotFoundError,
    RunComfyServerError,
    RunComfyTimeoutError,
)
from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook
from airflow_provider_runcomfy.schemas.pixverse import TEXT_TO_VIDEO
from airflow_provider_runcomfy.testing.ports import free_port
from airflow_provider_runcomfy.testing.server import RunComfyTestServer

T2V_INPUTS = {"prompt": "a red fox running through snow", "duration": 5}


def fast_hook(**kwargs) -> RunComfyHook:
    """A hook whose retries wait milliseconds, so fault tests stay quick."""
    return RunComfyHook(**{"retry_min_wait": 0.01, "retry_max_wait": 2.0, "timeout": 5.0, **kwargs})


def wait_until_finished(hook: RunComfyHook, request_id: str) -> None:
    deadline = time.monotonic() + 30
    while not hook.get_status(request_id).is_finished:
        assert time.monotonic() < deadline, "job did not finish"
        time.sleep(0.05)


def submit_requests(server: RunComfyTestServer) -> list[dict]:
    return [entry for entry in server.log if entry["call"] == "submit"]


def test_text_to_video_round_trip_ends_in_an_mp4(runcomfy_connection):
    hook = fast_hook()
    submitted = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS)
    first = hook.get_status(submitted.request_id)
    assert first.status in {"in_queue", "in_progress"}
    wait_until_finished(hook, submitted.request_id)

    result = hook.get_result(submitted.request_id)
    assert result.succeeded
    assert result.request_id == submitted.request_id
    [url] = result.output_urls
    assert requests.get(url, timeout=5).content[4:8] == b"ftyp"
    assert runcomfy_connection.submits == 1
    assert submit_requests(runcomfy_connection)[0]["body"] == T2V_INPUTS


def test_queued_job_reports_its_position(runcomfy_connection):
    runcomfy_connection.set_clock(queue_seconds=30, run_seconds=30)
    hook = fast_hook()
    first = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id
    second = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id
    assert hook.get_status(first).queue_position == 0
    assert hook.get_status(second).queue_position == 1
    assert hook.get_result(second).status == "in_queue"
    assert hook.get_result(second).output_urls == []


def test_cancel_only_while_queued(runcomfy_connection):
    runcomfy_connection.set_clock(queue_seconds=30, run_seconds=30)
    hook = fast_hook()
    request_id = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id
    assert hook.cancel(request_id).cancelled
    assert hook.get_status(request_id).is_finished
    assert hook.get_result(request_id).cancelled

    runcomfy_connection.set_clock(queue_seconds=0, run_seconds=30)
    running = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id
    answer = hook.cancel(running)
    assert not answer.cancelled
    assert answer.outcome == "not_cancellable"


@pytest.mark.parametrize(
    "fault",
    [
        {"fault": "429", "retry_after": 0, "times": 2},
        {"fault": "500", "times": 3},
        {"fault": "502", "times": 2},
        {"fault": "503", "times": 2},
        {"fault": "drop", "times": 2},
        {"fault": "slow", "delay": 1.5, "times": 1},
    ],
    ids=lambda f: f["fault"],
)
@pytest.mark.parametrize("call", ["status", "result"])
def test_reads_survive_faults_and_never_resubmit(runcomfy_connection, fault, call):
    hook = fast_hook(timeout=1.0)
    request_id = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id
    wait_until_finished(hook, request_id)
    runcomfy_connection.add_faults([{**fault, "call": call}])

    result = hook.get_result(request_id) if call == "result" else hook.get_status(request_id)

    assert result.request_id == request_id
    assert result.status in {"succeeded", "completed"}
    answered = [e for e in runcomfy_connection.log if e["call"] == call]
    assert len(answered) > 1, "the fault was never served, so nothing was retried"
    assert runcomfy_connection.submits == 1


async def test_async_reads_survive_faults(runcomfy_connection):
    hook = fast_hook(timeout=1.0)
    request_id = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id
    wait_until_finished(hook, request_id)
    runcomfy_connection.add_faults(
        [
            {"call": "status", "fault": "drop"},
            {"call": "status", "fault": "503", "times": 2},
            {"call": "result", "fault": "429", "retry_after": 0},
            {"call": "result", "fault": "slow", "delay": 1.5},
        ]
    )
    assert (await hook.aget_status(request_id)).status == "completed"
    assert (await hook.aget_result(request_id)).succeeded
    assert runcomfy_connection.submits == 1


def test_retry_after_is_honoured(runcomfy_connection):
    hook = fast_hook()
    request_id = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id
    runcomfy_connection.add_faults([{"call": "status", "fault": "429", "retry_after": 1}])
    started = time.monotonic()
    hook.get_status(request_id)
    assert time.monotonic() - started >= 1.0  # backoff alone would have waited ~10 ms


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"fault": "drop"}, RunComfyConnectionError),
        ({"fault": "slow", "delay": 2.0}, RunComfyConnectionError),
        ({"fault": "500"}, RunComfyServerError),
        ({"fault": "503"}, RunComfyServerError),
    ],
    ids=lambda v: v["fault"] if isinstance(v, dict) else "",
)
def test_a_submit_that_may_have_arrived_is_never_sent_again(runcomfy_connection, fault, error):
    hook = fast_hook(timeout=1.0)
    runcomfy_connection.add_faults([{**fault, "call": "submit", "times": 5}])
    with pytest.raises(error) as raised:
        hook.submit(TEXT_TO_VIDEO, T2V_INPUTS)
    assert len(submit_requests(runcomfy_connection)) == 1
    if error is RunComfyConnectionError:
        assert not raised.value.never_sent
        assert "may have reached the server" in str(raised.value)


def test_a_submit_refused_with_429_is_sent_again_after_retry_after(runcomfy_connection):
    runcomfy_connection.add_faults([{"call": "submit", "fault": "429", "retry_after": 0, "times": 2}])
    submitted = fast_hook().submit(TEXT_TO_VIDEO, T2V_INPUTS)
    assert [e["status"] for e in submit_requests(runcomfy_connection)] == [429, 429, 200]
    assert runcomfy_connection.submits == 1 and submitted.request_id


def test_a_tls_handshake_with_a_plain_http_server_is_known_never_sent(runcomfy_server):
    hook = fast_hook(max_retries=1)
    hook._read_connection(_connection(runcomfy_server.url.replace("http://", "https://"), runcomfy_server.token))
    with pytest.raises(RunComfyConnectionError) as raised:
        hook.submit(TEXT_TO_VIDEO, T2V_INPUTS)
    assert raised.value.never_sent
    assert "never reached the server" in str(raised.value) and "plain http?" in str(raised.value)
    assert runcomfy_server.log == []  # nothing reached the API


async def test_the_async_side_says_the_same_of_a_tls_handshake(runcomfy_server):
    hook = fast_hook(max_retries=0)
    hook._read_connection(_connection(runcomfy_server.url.replace("http://", "https://"), runcomfy_server.token))
    with pytest.raises(RunComfyConnectionError) as raised:
        await hook.aget_status("r")
    assert raised.value.never_sent and "plain http?" in str(raised.value)


def test_a_submit_that_never_left_is_retried_until_the_server_is_up():
    port = free_port()
    server = RunComfyTestServer(port=port)
    starter = threading.Timer(0.5, server.start)
    starter.start()
    try:
        hook = fast_hook(retry_min_wait=0.2, max_retries=10)
        hook._read_connection(_connection(f"http://127.0.0.1:{port}", server.token))
        submitted = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS)
        assert submitted.request_id
        assert server.submits == 1
    finally:
        starter.join()
        server.stop()


def test_errors_carry_status_code_and_request_id_but_never_the_token(runcomfy_server, monkeypatch):
    secret = "sk-super-secret-token-123"
    monkeypatch.setenv(
        "AIRFLOW_CONN_RUNCOMFY_DEFAULT",
        json.dumps({"conn_type": "runcomfy", "host": runcomfy_server.url, "password": secret}),
    )
    with pytest.raises(RunComfyAuthError) as raised:
        fast_hook().get_status("some-request")
    error = raised.value
    assert (error.status_code, error.code, error.request_id) == (401, 400004, "some-request")
    assert secret not in str(error) and secret not in repr(error.args)


def test_not_found_and_a_request_of_another_account():
    with RunComfyTestServer(tokens=("second-token",)) as server:
        owner, stranger = fast_hook(), fast_hook()
        owner._read_connection(_connection(server.url, server.token))
        stranger._read_connection(_connection(server.url, "second-token"))
        request_id = owner.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id

        with pytest.raises(RunComfyNotFoundError) as missing:
            owner.get_result("no-such-request")
        assert (missing.value.status_code, missing.value.code) == (404, 404001)
        with pytest.raises(RunComfyAuthError) as foreign:
            stranger.get_status(request_id)
        assert (foreign.value.status_code, foreign.value.code) == (403, 403001)


def test_http_200_carrying_an_error_code_is_an_error(runcomfy_connection):
    hook = fast_hook()
    request_id = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id
    runcomfy_connection.add_faults([{"call": "result", "fault": "http200_error"}])
    with pytest.raises(RunComfyError) as raised:
        hook.get_result(request_id)
    assert type(raised.value) is RunComfyError  # a refusal we do not know: not retried as a server error would be
    assert (raised.value.status_code, raised.value.code) == (200, 500000)
    assert "Simulated" in str(raised.value)
    assert sum(e["call"] == "result" for e in runcomfy_connection.log) == 1


def test_unknown_status_values_are_tolerated_and_logged(runcomfy_connection, capfd):
    runcomfy_connection.set_clock(queue_seconds=0, run_seconds=30)
    hook = fast_hook()
    request_id = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id
    runcomfy_connection.add_outcomes([{"status_value": "processing", "times": 1}])
    status = hook.get_status(request_id)
    assert status.status == "processing"
    assert not status.is_finished
    assert "undocumented status 'processing'" in "".join(capfd.readouterr())


@pytest.mark.parametrize(
    ("model_id", "inputs", "field"),
    [
        (TEXT_TO_VIDEO, {"prompt": "x", "duration": 10, "resolution": "1080p"}, "duration"),
        ("../../admin", {}, "model_id"),
    ],
)
def test_invalid_inputs_fail_before_any_request(runcomfy_connection, model_id, inputs, field):
    with pytest.raises(RunComfyInvalidInputError) as raised:
        fast_hook().submit(model_id, inputs)
    assert field in str(raised.value)
    assert runcomfy_connection.log == []


async def test_async_cancel_and_one_shared_client(runcomfy_connection):
    runcomfy_connection.set_clock(queue_seconds=30, run_seconds=30)
    first, second = fast_hook(), fast_hook()
    request_id = first.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id
    assert (await first.aget_status(request_id)).status == "in_queue"
    assert (await second.acancel(request_id)).cancelled
    assert (await second.aget_result(request_id)).cancelled
    assert first._async_client(first.base_url) is second._async_client(second.base_url)


async def test_status_reads_take_turns_and_a_read_that_gets_none_never_left(runcomfy_connection, monkeypatch):
    """With one turn per loop, a read waits while another is answered slowly, and says when its turn came (what
    ``_watch`` counts a cadence from). A read whose turn does not come within its hook's timeout fails as never sent
    (so it is retried)."""
    import asyncio

    import airflow_provider_runcomfy.hooks.runcomfy as hook_module

    monkeypatch.setattr(hook_module, "_POOL_SIZE", 1)  # read when this test's loop makes its client
    slow, waiting, impatient = fast_hook(timeout=5.0), fast_hook(), fast_hook(timeout=0.2, max_retries=0)
    request_id = slow.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id
    runcomfy_connection.add_faults([{"call": "status", "fault": "slow", "delay": 1.0}])
    reads_before = sum(entry["call"] == "status" for entry in runcomfy_connection.log)

    started = time.monotonic()
    slow_read = asyncio.ensure_future(slow.aget_status(request_id))
    turns = slow._async_client(slow.base_url).read_turns
    while not turns.locked():  # until the slow read has the only turn, however long its connection lookup takes
        assert time.monotonic() - started < 30, "the slow read never took its turn"
        await asyncio.sleep(0.01)
    waited = asyncio.ensure_future(waiting.aget_status(request_id))
    with pytest.raises(RunComfyConnectionError, match="never reached the server") as raised:
        await impatient.aget_status(request_id)
    assert "no turn to read within 0.2s" in str(raised.value)
    await asyncio.gather(slow_read, waited)

    assert waiting._status_read_started() - started >= 1.0  # its turn came when the slow answer did
    reads = sum(entry["call"] == "status" for entry in runcomfy_connection.log) - reads_before
    assert reads == 2, "the impatient read reached the server"


def test_include_cost(runcomfy_connection):
    hook = fast_hook()
    request_id = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id
    wait_until_finished(hook, request_id)
    assert hook.get_result(request_id).cost is None
    assert hook.get_result(request_id, include_cost=True).cost > 0


def test_test_connection(runcomfy_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_RUNCOMFY_DEFAULT", runcomfy_server.connection_json())
    assert fast_hook().test_connection()[0] is True
    bad = fast_hook()
    bad._read_connection(_connection(runcomfy_server.url, "wrong"))
    ok, message = bad.test_connection()
    assert not ok and "400004" in message
    assert runcomfy_server.submits == 0


def test_a_connection_without_token_fails_before_any_request(runcomfy_server, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_RUNCOMFY_DEFAULT", json.dumps({"conn_type": "runcomfy", "host": runcomfy_server.url})
    )
    with pytest.raises(RunComfyAuthError, match="no API token"):
        fast_hook().submit(TEXT_TO_VIDEO, T2V_INPUTS)
    assert runcomfy_server.log == []


def _connection(host, password, port=None):
    from airflow.sdk import Connection

    return Connection(conn_id="runcomfy_default", conn_type="runcomfy", host=host, password=password, port=port)


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_the_wait_returns_the_final_result_when_the_result_lags_the_status(runcomfy_connection, outcome):
    runcomfy_connection.add_outcomes([{"outcome": outcome, "result_lag": 2}])
    hook = fast_hook()
    request_id = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id

    result = hook.wait_for_request(request_id, timeout=30, poll_interval=0.05)

    assert result.status == outcome
    lagged = [e for e in runcomfy_connection.log if e["call"] == "result" and e["fault"] == "result_lag"]
    assert len(lagged) == 2  # the fault was served: two result calls said in_progress for a finished job


async def test_the_async_wait_gives_the_same_answer(runcomfy_connection):
    runcomfy_connection.add_outcomes([{"outcome": "succeeded", "result_lag": 2}])
    hook = fast_hook()
    request_id = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id

    result = await hook.await_request(request_id, timeout=30, poll_interval=0.05, include_cost=True)

    assert result.succeeded and result.cost > 0
    assert sum(e["fault"] == "result_lag" for e in runcomfy_connection.log) == 2


def test_a_poll_is_one_look(runcomfy_connection):
    runcomfy_connection.set_clock(queue_seconds=30, run_seconds=30)
    hook = fast_hook()
    request_id = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id
    assert hook.poll_request(request_id) is None
    assert [e["call"] for e in runcomfy_connection.log] == ["submit", "status"]


def test_the_wait_past_its_timeout_cancels_the_queued_job(runcomfy_connection):
    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    hook = fast_hook()
    request_id = hook.submit(TEXT_TO_VIDEO, T2V_INPUTS).request_id
    with pytest.raises(RunComfyTimeoutError, match="still queued and has been cancelled") as raised:
        hook.wait_for_request(request_id, timeout=0.3, poll_interval=0.05)
    assert raised.value.cancelled and raised.value.request_id == request_id
    assert runcomfy_connection.cancels == 1
