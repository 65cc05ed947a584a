"""API answers and the trigger event: what a result means, and an event that crosses processes as plain JSON."""

from __future__ import annotations

import json

import pytest

from airflow_provider_runcomfy.exceptions import (
    RunComfyAuthError,
    RunComfyError,
    RunComfyJobError,
    RunComfyNotFoundError,
    RunComfyTimeoutError,
)
from airflow_provider_runcomfy.schemas.api import RequestEvent, RequestResult

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("failed", "RunComfy request failed: boom"),
        ("cancelled", "RunComfy request was cancelled"),
        ("canceled", "RunComfy request was cancelled"),
        ("in_progress", "has not finished: it is in_progress"),
        ("weird", "has not finished: it is weird"),
    ],
)
def test_only_succeeded_is_success(status, message):
    with pytest.raises(RunComfyJobError, match=message) as raised:
        RequestResult(request_id="r", status=status, error="boom").raise_for_outcome()
    assert raised.value.request_id == "r"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ({"code": "CONTENT_MODERATION", "message": "refused"}, "CONTENT_MODERATION: refused"),
        ({"message": "refused"}, "refused"),
        ({"code": 7}, "{'code': 7}"),
        (None, "None"),
    ],
)
def test_a_failure_says_runcomfys_code_and_message(error, message):
    with pytest.raises(RunComfyJobError) as raised:
        RequestResult(request_id="r", status="failed", error=error).raise_for_outcome()
    assert raised.value.message == f"RunComfy request failed: {message}"
    assert raised.value.status == "failed"


def test_a_succeeded_result_is_returned():
    result = RequestResult(request_id="r", status="succeeded", output={"video": "https://cdn/x.mp4"})
    assert result.raise_for_outcome() is result


def test_output_urls_are_flat_and_ordered():
    output = {"thumbnail": "https://cdn/t.jpg", "videos": ["https://cdn/a.mp4", "https://cdn/b.mp4"], "seed": 7}
    assert RequestResult(request_id="r", status="succeeded", output=output).output_urls == [
        "https://cdn/a.mp4",
        "https://cdn/b.mp4",
        "https://cdn/t.jpg",
    ]


def round_trip(event: RequestEvent) -> RequestEvent:
    """What the triggerer does with an event: JSON into the database, back out in the task."""
    return RequestEvent.model_validate(json.loads(json.dumps(event.to_payload())))


def test_a_finished_event_carries_the_whole_result():
    result = RequestResult(request_id="r", status="failed", error={"code": "MODERATED"}, cost=0.1)
    event = round_trip(RequestEvent.finished(result))
    assert event.status == "failed"
    assert event.outcome() == result


def test_one_shape_for_every_event():
    finished = RequestEvent.finished(RequestResult(request_id="r", status="succeeded")).to_payload()
    timeout = RequestEvent.from_error("r", RunComfyTimeoutError("late", cancelled=True)).to_payload()
    error = RequestEvent.from_error("r", RunComfyAuthError("no", status_code=401, code=400004)).to_payload()
    assert finished.keys() == timeout.keys() == error.keys()


def test_a_timeout_event_raises_the_timeout_again_in_the_task():
    event = round_trip(RequestEvent.from_error("r", RunComfyTimeoutError("did not finish", cancelled=True)))
    assert (event.status, event.cancelled) == ("timeout", True)
    with pytest.raises(RunComfyTimeoutError, match="did not finish") as raised:
        event.outcome()
    assert raised.value.cancelled is True
    assert raised.value.request_id == "r"


@pytest.mark.parametrize("error", [RunComfyNotFoundError, RunComfyAuthError, RunComfyError])
def test_an_error_event_raises_the_same_error_in_the_task(error):
    original = error("RunComfy answered: gone", status_code=404, code=404001, request_id="r")
    event = round_trip(RequestEvent.from_error("r", original))
    assert event.status == "error"
    with pytest.raises(error) as raised:
        event.outcome()
    assert type(raised.value) is error
    assert str(raised.value) == str(original)


def test_an_error_type_that_is_not_ours_is_raised_as_a_runcomfy_error():
    payload = RequestEvent.from_error("r", RunComfyError("x")).to_payload()
    payload["error"]["type"] = "SystemExit"
    with pytest.raises(RunComfyError) as raised:
        RequestEvent.model_validate(payload).outcome()
    assert type(raised.value) is RunComfyError
