"""The local server's catalog, prices and balance, over real HTTP."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests

from airflow_provider_runcomfy.testing.server import LOCAL_TEXT_TO_IMAGE

T2V = "pixverse/pixverse/v5.5/text-to-video"
I2V = "pixverse/pixverse/v5.5/image-to-video"
# RunComfy's own pages for the two PixVerse models: the project's shared documents beside the repository (not
# shipped with it; CI has them there too).
PAGES = Path(__file__).resolve().parents[3] / "shared" / "runcomfy-api"


def api(server, method: str, path: str, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {server.token}"}
    return requests.request(method, f"{server.url}{path}", headers=headers, timeout=10, **kwargs)


def test_the_catalog_lists_searches_and_pages(runcomfy_server):
    everything = api(runcomfy_server, "GET", "/v1/models").json()
    ids = [m["model_id"] for m in everything["models"]]
    assert {T2V, I2V, LOCAL_TEXT_TO_IMAGE} <= set(ids) and everything["total"] == len(ids)
    assert all("input_schema" not in m for m in everything["models"])  # only with include_schema
    video = api(runcomfy_server, "GET", "/v1/models", params={"search": "VIDEO", "include_schema": "true"}).json()
    assert T2V in [m["model_id"] for m in video["models"]] and LOCAL_TEXT_TO_IMAGE not in str(video)
    assert all(m["input_schema"]["type"] == "object" for m in video["models"])
    images = api(runcomfy_server, "GET", "/v1/models", params={"category": "text-to-image"}).json()
    assert [m["model_id"] for m in images["models"]] == [LOCAL_TEXT_TO_IMAGE]
    page = api(runcomfy_server, "GET", "/v1/models", params={"limit": 1, "offset": 1}).json()
    assert [m["model_id"] for m in page["models"]] == ids[1:2] and page["total"] == len(ids)
    for model in everything["models"]:
        assert {"display_name", "categories", "base_price_usd", "price_unit", "pricing_note"} <= set(model)
        assert model["price_unit"] in ("second", "output", None)


def test_one_model_and_an_unknown_one(runcomfy_server):
    model = api(runcomfy_server, "GET", f"/v1/models/{T2V}").json()
    assert (model["model_id"], model["price_unit"], model["base_price_usd"]) == (T2V, "second", 0.06)
    assert model["input_schema"]["required"] == ["prompt"]
    missing = api(runcomfy_server, "GET", "/v1/models/acme/none/v1")
    assert missing.status_code == 404 and missing.json()["error"] == "ModelNotFound"
    assert requests.get(f"{runcomfy_server.url}/v1/models", timeout=10).status_code == 401


@pytest.mark.skipif(not PAGES.is_dir(), reason="RunComfy's PixVerse pages are not on this machine")
@pytest.mark.parametrize(("model_id", "page"), [(T2V, "text-to-video"), (I2V, "image-to-video")])
def test_the_pixverse_schemas_are_exactly_runcomfys(runcomfy_server, model_id, page):
    text = (PAGES / f"pixverse-v5.5-{page}.txt").read_text()
    published = json.loads(re.search(r"Input schema\s*(\{.*?\n\})\s*Output schema", text, re.S).group(1))
    assert api(runcomfy_server, "GET", f"/v1/models/{model_id}").json()["input_schema"] == published


def test_submit_checks_catalog_models_against_their_schema(runcomfy_server):
    refused = api(runcomfy_server, "POST", f"/v1/models/{LOCAL_TEXT_TO_IMAGE}", json={"prompt": "x", "num_images": 9})
    assert refused.status_code == 400 and "num_images" in refused.json()["message"]  # the model's own check first
    schema_only = api(runcomfy_server, "POST", "/v1/models/runcomfy-local/test/variable-price-video", json={})
    assert (schema_only.status_code, schema_only.json()["code"]) == (422, 422000)
    assert "'prompt' is a required property" in schema_only.json()["message"]
    wrong = api(runcomfy_server, "POST", "/v1/models/runcomfy-local/test/variable-price-video", json={"prompt": 1})
    assert wrong.status_code == 422 and "prompt: 1 is not of type 'string'" in wrong.json()["message"]
    assert api(runcomfy_server, "POST", "/v1/models/acme/not-listed/v1", json={"any": 1}).status_code == 200
    accepted = api(runcomfy_server, "POST", f"/v1/models/{LOCAL_TEXT_TO_IMAGE}", json={"prompt": "x", "num_images": 2})
    assert accepted.status_code == 200 and runcomfy_server.submits == 2


def test_the_catalog_can_be_made_unavailable_and_the_balance_set(runcomfy_server):
    runcomfy_server.set_catalog_available(False)
    assert api(runcomfy_server, "GET", "/v1/models").status_code == 503
    assert api(runcomfy_server, "GET", f"/v1/models/{T2V}").status_code == 503
    assert api(runcomfy_server, "POST", f"/v1/models/{T2V}", json={"prompt": "x"}).status_code == 200  # submits work
    assert requests.post(f"{runcomfy_server.url}/_control/catalog", json={"available": True}).status_code == 200
    assert api(runcomfy_server, "GET", "/v1/models").status_code == 200
    assert api(runcomfy_server, "GET", "/prod/v2/balance").json() == {
        "balance_usd": 10.0,
        "balance_microdollars": 10_000_000,
        "currency": "USD",
    }
    requests.post(f"{runcomfy_server.url}/_control/balance", json={"balance_usd": 0.25}, timeout=10)
    assert api(runcomfy_server, "GET", "/prod/v2/balance").json()["balance_microdollars"] == 250_000
    runcomfy_server.reset()
    assert api(runcomfy_server, "GET", "/prod/v2/balance").json()["balance_usd"] == 10.0
