"""The hook's catalog, price and balance calls against the local server: parsed answers, pages, errors, retries."""

from __future__ import annotations

import json

import pytest

from airflow_provider_runcomfy.exceptions import (
    RunComfyInvalidInputError,
    RunComfyNotFoundError,
    RunComfyServerError,
)
from airflow_provider_runcomfy.hooks.runcomfy import DEFAULT_BALANCE_URL, RunComfyHook
from airflow_provider_runcomfy.schemas.pixverse import TEXT_TO_VIDEO
from airflow_provider_runcomfy.testing.server import LOCAL_TEXT_TO_IMAGE


def fast_hook(**kwargs) -> RunComfyHook:
    return RunComfyHook(**{"retry_min_wait": 0.01, "retry_max_wait": 0.05, "timeout": 5.0, **kwargs})


def catalog_calls(server) -> list[dict]:
    return [entry for entry in server.log if entry["call"] == "catalog"]


def test_list_models_reads_every_page_lazily(runcomfy_connection):
    hook = fast_hook()
    models = hook.list_models(page_size=1)
    first = next(models)
    assert len(catalog_calls(runcomfy_connection)) == 1  # a generator: one page asked so far
    rest = list(models)
    assert len(catalog_calls(runcomfy_connection)) == 1 + len(rest)
    ids = [first.model_id, *(model.model_id for model in rest)]
    assert TEXT_TO_VIDEO in ids and LOCAL_TEXT_TO_IMAGE in ids and len(set(ids)) == len(ids)
    assert first.input_schema is None  # asked without schemas


def test_list_models_searches_and_filters_with_schemas(runcomfy_connection):
    videos = list(fast_hook().list_models("video", include_schema=True))
    assert videos and all("video" in m.model_id or "video" in (m.display_name or "").lower() for m in videos)
    assert all(m.input_schema for m in videos)
    [image] = fast_hook().list_models(category="text-to-image")
    assert (image.model_id, image.price_unit, image.price) == (LOCAL_TEXT_TO_IMAGE, "output", "$0.02/output")
    assert list(fast_hook().list_models("no such model")) == []


def test_get_model_parses_the_schema_and_price_and_maps_404(runcomfy_connection):
    model = fast_hook().get_model(TEXT_TO_VIDEO)
    assert model.input_schema["properties"]["duration"]["enum"] == [5, 8, 10]
    assert model.estimate({"prompt": "x", "duration": 10}) == pytest.approx(0.6)
    assert model.estimate({"prompt": "x"}) == pytest.approx(0.3)  # the schema's default duration
    with pytest.raises(RunComfyNotFoundError):
        fast_hook().get_model("acme/none/v1")
    with pytest.raises(RunComfyInvalidInputError):
        fast_hook().get_model("../etc")  # refused before it is put in a URL


def test_catalog_reads_are_retried_and_a_catalog_down_is_a_server_error(runcomfy_connection):
    runcomfy_connection.add_faults({"call": "catalog", "fault": "503", "times": 2})
    assert fast_hook().get_model(TEXT_TO_VIDEO).model_id == TEXT_TO_VIDEO
    assert len(catalog_calls(runcomfy_connection)) == 3
    runcomfy_connection.set_catalog_available(False)
    with pytest.raises(RunComfyServerError):
        fast_hook(max_retries=1).get_model(TEXT_TO_VIDEO)


def test_get_balance_reads_the_connections_balance_url(runcomfy_connection):
    runcomfy_connection.set_balance(1.5)
    balance = fast_hook().get_balance()
    assert (balance.balance_usd, balance.balance_microdollars, balance.currency) == (1.5, 1_500_000, "USD")
    [entry] = [e for e in runcomfy_connection.log if e["call"] == "balance"]
    assert entry["auth"] is True and entry["path"] == "/prod/v2/balance"


def test_the_balance_url_defaults_to_runcomfys_and_must_be_http(runcomfy_connection, monkeypatch):
    conn = json.loads(runcomfy_connection.connection_json())
    del conn["extra"]
    monkeypatch.setenv("AIRFLOW_CONN_RUNCOMFY_DEFAULT", json.dumps(conn))
    hook = fast_hook()
    hook._get_credentials()
    assert hook._balance_url == DEFAULT_BALANCE_URL
    monkeypatch.setenv("AIRFLOW_CONN_RUNCOMFY_DEFAULT", json.dumps({**conn, "extra": {"balance_url": "ftp://x/b"}}))
    with pytest.raises(RunComfyInvalidInputError, match="balance_url"):
        fast_hook().get_balance()
