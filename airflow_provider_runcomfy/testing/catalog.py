"""The local server's catalog, prices and balance: ``GET /v1/models``, ``GET /v1/models/{model_id}`` and the
balance endpoint, as RunComfy's own CLI and MCP server see them.

``catalog.json`` holds the models: the two PixVerse v5.5 ones with their input schemas exactly as RunComfy's pages
state them, and the local test models. Prices are the local server's own, for tests of estimates and limits.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

BALANCE_PATH = "/prod/v2/balance"  # RunComfy serves it on another host (api.runcomfy.net); here on the same one


@cache
def _models() -> dict[str, dict[str, Any]]:
    """The catalog's entries by model id, in catalog.json's order (read once; never handed out to be changed)."""
    models = json.loads(Path(__file__).with_name("catalog.json").read_text())["models"]
    return {model["model_id"]: model for model in models}


def model_ids() -> list[str]:
    """The ids of the models the local catalog lists."""
    return list(_models())


def input_schema(model_id: str) -> dict[str, Any] | None:
    """The input schema of a model in the local catalog, or ``None`` for a model it does not list."""
    model = _models().get(model_id)
    return None if model is None else copy.deepcopy(model["input_schema"])


def schema_errors(model_id: str, body: Any) -> list[str] | None:
    """What the catalog schema of ``model_id`` refuses in ``body`` (as RunComfy words it), or ``None`` when the
    model is not in the catalog."""
    from jsonschema import Draft202012Validator

    schema = input_schema(model_id)
    if schema is None:
        return None
    errors = Draft202012Validator(schema).iter_errors(body)
    return [f"{'.'.join(map(str, error.path)) or 'body'}: {error.message}" for error in errors]


def _entry(model: dict[str, Any], include_schema: bool) -> dict[str, Any]:
    return model if include_schema else {k: v for k, v in model.items() if k != "input_schema"}


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("true", "1", "yes")


async def list_models(request: Request) -> Response:
    """``GET /v1/models?search=&category=&limit=&offset=&include_schema=``: ``{models, total}``."""
    search = request.query_params.get("search", "").lower()
    category = request.query_params.get("category")
    try:
        limit = int(request.query_params.get("limit", 50))
        offset = int(request.query_params.get("offset", 0))
    except ValueError:
        return JSONResponse({"code": 400000, "error": "InvalidInput", "message": "limit and offset are numbers"}, 400)
    found = [
        model
        for model in _models().values()
        if (not search or search in f"{model['model_id']} {model['display_name']} {model['description']}".lower())
        and (not category or category in model["categories"])
    ]
    page = [_entry(model, _flag(request, "include_schema")) for model in found[offset : offset + max(limit, 0)]]
    return JSONResponse({"models": page, "total": len(found)})


async def get_model(request: Request) -> Response:
    """``GET /v1/models/{model_id}``: the model with its input schema; 404 for a model the catalog lacks."""
    model_id = request.path_params["model_id"]
    model = _models().get(model_id)
    if model is None:
        return JSONResponse({"code": 404002, "error": "ModelNotFound", "message": f"unknown model {model_id!r}"}, 404)
    return JSONResponse(_entry(model, True))


def balance_body(balance_usd: float) -> dict[str, Any]:
    return {"balance_usd": balance_usd, "balance_microdollars": round(balance_usd * 1e6), "currency": "USD"}
