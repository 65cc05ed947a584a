"""The hook's decisions, one function at a time and without a server: error mapping, Retry-After, what is retried,
and the base URL read from a connection."""

from __future__ import annotations

import email.utils
import time

import pytest
from tenacity import Retrying

from airflow_provider_runcomfy.exceptions import (
    RunComfyAuthError,
    RunComfyConnectionError,
    RunComfyError,
    RunComfyInsufficientBalanceError,
    RunComfyInvalidInputError,
    RunComfyNotFoundError,
    RunComfyRateLimitError,
    RunComfyServerError,
)
from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook, _retry_after_seconds
from airflow_provider_runcomfy.schemas.api import RequestStatus

pytestmark = pytest.mark.unit


def parse(status_code: int, body: bytes, headers: dict | None = None):
    hook = RunComfyHook()
    hook._credentials = ("https://api", "sk-secret-token")
    return hook._parse(status_code, headers or {}, body, RequestStatus, "r")


@pytest.mark.parametrize(
    ("status_code", "body", "error", "code"),
    [
        (400, b'{"code": 400001, "error": "InvalidModelId"}', RunComfyInvalidInputError, 400001),
        (400, b'{"code": 400002, "error": "Balance"}', RunComfyInsufficientBalanceError, 400002),
        (401, b'{"code": 400004, "error": "UserAccountError"}', RunComfyAuthError, 400004),
        (403, b'{"code": 403001, "error": "Forbidden"}', RunComfyAuthError, 403001),
        (404, b'{"code": 404001, "error": "RequestNotFound"}', RunComfyNotFoundError, 404001),
        (402, b"{}", RunComfyInsufficientBalanceError, None),
        (422, b'{"detail": "bad"}', RunComfyInvalidInputError, None),
        (429, b"{}", RunComfyRateLimitError, None),
        (500, b'{"code": 500000}', RunComfyServerError, 500000),
        (502, b"<html>Bad Gateway</html>", RunComfyServerError, None),
        (200, b"not json", RunComfyServerError, None),
        (200, b'{"error_code": 123, "error_message": "refused"}', RunComfyError, 123),
        # an error code beside the fields of an answer is still an error
        (200, b'{"request_id": "r", "status": "completed", "error_code": 124}', RunComfyError, 124),
    ],
)
def test_answers_map_to_errors(status_code, body, error, code):
    with pytest.raises(error) as raised:
        parse(status_code, body)
    assert type(raised.value) is error
    assert (raised.value.status_code, raised.value.code, raised.value.request_id) == (status_code, code, "r")


def test_a_refused_token_names_its_connection():
    with pytest.raises(RunComfyAuthError, match="refused the API token of connection 'runcomfy_default'"):
        parse(401, b'{"code": 400004, "error": "UserAccountError"}')


def test_the_token_is_redacted_from_an_echoed_error():
    with pytest.raises(RunComfyAuthError) as raised:
        parse(401, b'{"code": 400004, "message": "token sk-secret-token is revoked"}')
    assert "sk-secret-token" not in str(raised.value)
    assert "token *** is revoked" in str(raised.value)


def test_an_answer_is_parsed_and_the_request_id_filled_in():
    assert parse(200, b'{"status": "in_queue", "queue_position": 2}') == RequestStatus(
        request_id="r", status="in_queue", queue_position=2
    )


def test_a_429_carries_its_retry_after():
    with pytest.raises(RunComfyRateLimitError) as raised:
        parse(429, b"{}", {"Retry-After": "7"})
    assert raised.value.retry_after == 7.0


def test_retry_after_in_seconds_or_as_a_date():
    assert _retry_after_seconds("3") == 3.0
    assert _retry_after_seconds("-3") == 0.0
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= _retry_after_seconds(in_a_minute) <= 60
    assert _retry_after_seconds("soon") is None
    assert _retry_after_seconds(None) is None


def attempts_until_done(errors: list[Exception], *, is_submit: bool, monkeypatch, **hook_kwargs):
    """Run the retry policy over an attempt that fails with ``errors`` in turn; return (tries, sleeps, outcome)."""
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    hook = RunComfyHook(**{"max_retries": 3, "retry_min_wait": 1.0, "retry_max_wait": 30.0, **hook_kwargs})
    pending = list(errors)
    tries = []

    def attempt():
        tries.append(1)
        if pending:
            raise pending.pop(0)
        return "answer"

    try:
        outcome = hook._retrying(Retrying, is_submit)(attempt)
    except RunComfyError as error:
        outcome = error
    return len(tries), sleeps, outcome


TRANSIENT = [
    RunComfyServerError("503", status_code=503),
    RunComfyRateLimitError("429", status_code=429),
    RunComfyConnectionError("read timeout", never_sent=False),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: e.message)
def test_a_read_is_retried_after_a_transient_failure(error, monkeypatch):
    tries, sleeps, outcome = attempts_until_done([error, error], is_submit=False, monkeypatch=monkeypatch)
    assert (tries, outcome) == (3, "answer")
    assert len(sleeps) == 2 and all(0 < s <= 30 for s in sleeps)


@pytest.mark.parametrize("error", [TRANSIENT[0], TRANSIENT[2]], ids=lambda e: e.message)
def test_a_submit_that_may_have_arrived_is_not_retried(error, monkeypatch):
    tries, sleeps, outcome = attempts_until_done([error], is_submit=True, monkeypatch=monkeypatch)
    assert (tries, sleeps, outcome) == (1, [], error)


@pytest.mark.parametrize(
    "error",
    [RunComfyConnectionError("refused", never_sent=True), RunComfyRateLimitError("429", retry_after=2.0)],
    ids=["never sent", "429: refused without creating a job"],
)
def test_a_submit_that_created_no_job_is_retried(error, monkeypatch):
    tries, _, outcome = attempts_until_done([error, error], is_submit=True, monkeypatch=monkeypatch)
    assert (tries, outcome) == (3, "answer")


@pytest.mark.parametrize(
    "error",
    [RunComfyAuthError("401"), RunComfyNotFoundError("404"), RunComfyInvalidInputError("400"), RunComfyError("?")],
    ids=lambda e: e.message,
)
def test_an_error_that_will_recur_is_not_retried(error, monkeypatch):
    tries, sleeps, outcome = attempts_until_done([error], is_submit=False, monkeypatch=monkeypatch)
    assert (tries, sleeps, outcome) == (1, [], error)


def test_retries_stop_after_max_retries(monkeypatch):
    errors = [RunComfyServerError("503")] * 10
    tries, sleeps, outcome = attempts_until_done(errors, is_submit=False, monkeypatch=monkeypatch, max_retries=2)
    assert tries == 3 and len(sleeps) == 2
    assert isinstance(outcome, RunComfyServerError)


def test_retry_after_takes_precedence_over_the_backoff_and_is_capped(monkeypatch):
    errors = [RunComfyRateLimitError("429", retry_after=5.0), RunComfyRateLimitError("429", retry_after=3600.0)]
    _, sleeps, _ = attempts_until_done(errors, is_submit=False, monkeypatch=monkeypatch, retry_max_wait=30.0)
    assert sleeps == [5.0, 30.0]


def _connection(host, password, port=None):
    from airflow.sdk import Connection

    return Connection(conn_id="runcomfy_default", conn_type="runcomfy", host=host, password=password, port=port)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        (None, None, "https://model-api.runcomfy.net"),
        ("http://127.0.0.1:8080/", None, "http://127.0.0.1:8080"),
        ("https://proxy.example.com/v1", None, "https://proxy.example.com"),
        ("proxy.example.com", 8443, "https://proxy.example.com:8443"),
    ],
)
def test_base_url_from_connection_host(host, port, expected):
    assert RunComfyHook()._read_connection(_connection(host, "t", port))[0] == expected


@pytest.mark.parametrize("host", ["http://127.0.0.1:notaport", "ftp://files.example.com", "https://:443"])
def test_a_malformed_base_url_is_refused_before_any_request(host):
    with pytest.raises(RunComfyInvalidInputError, match="invalid base URL"):
        RunComfyHook()._read_connection(_connection(host, "t"))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"host": "127.0.0.1", "port": 8765, "schema": "http"}, "http://127.0.0.1:8765"),
        ({"host": "127.0.0.1", "port": 8765, "extra": '{"scheme": "http"}'}, "http://127.0.0.1:8765"),
        ({"host": "127.0.0.1", "port": 8765}, "https://127.0.0.1:8765"),
    ],
)
def test_a_host_without_a_scheme_takes_it_from_schema_or_extra(fields, expected):
    from airflow.sdk import Connection

    conn = Connection(conn_id="runcomfy_default", conn_type="runcomfy", password="t", **fields)
    assert RunComfyHook()._read_connection(conn)[0] == expected


def test_the_uri_form_can_say_http():
    from airflow.models.connection import Connection  # parses the URI form on every minor

    conn = Connection(conn_id="runcomfy_default", uri="runcomfy://:tok@127.0.0.1:8765/http")
    assert RunComfyHook()._read_connection(conn) == ("http://127.0.0.1:8765", "tok")


def test_a_connection_of_another_type_is_used_with_a_warning(capfd):
    from airflow.sdk import Connection

    conn = Connection(conn_id="runcomfy_default", conn_type="http", host="http://127.0.0.1:1", password="t")
    assert RunComfyHook()._read_connection(conn)[0] == "http://127.0.0.1:1"
    assert "is of type 'http', not 'runcomfy'" in "".join(capfd.readouterr())


@pytest.mark.parametrize("request_id", ["None", "null", "", "  "])
def test_a_request_id_rendered_to_nothing_is_refused_before_any_request(request_id):
    with pytest.raises(RunComfyInvalidInputError, match="request_id"):
        RunComfyHook().get_status(request_id)  # no connection is read: it would fail differently


@pytest.mark.parametrize("password", [None, "", "   "])
def test_a_connection_without_a_token_is_refused(password):
    with pytest.raises(RunComfyAuthError, match="no API token"):
        RunComfyHook()._read_connection(_connection(None, password))
