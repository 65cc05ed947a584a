"""The catalog's schemas and prices: the typed PixVerse models agree with what the catalog serves, any model's
inputs are checked against its schema with errors a person can act on, and estimates follow the price unit."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_runcomfy.exceptions import RunComfyInvalidInputError
from airflow_provider_runcomfy.schemas import MODEL_INPUTS
from airflow_provider_runcomfy.schemas.catalog import CatalogModel, check_against_schema

# The pages show an example value as the default of these required inputs: the typed models keep it as an example.
EXAMPLES_AS_DEFAULTS = {"prompt", "image_url"}


@pytest.mark.parametrize("model_id", sorted(MODEL_INPUTS))
def test_the_typed_pixverse_models_agree_with_the_catalog_schema(runcomfy_server, model_id):
    served = requests.get(
        f"{runcomfy_server.url}/v1/models/{model_id}",
        headers={"Authorization": f"Bearer {runcomfy_server.token}"},
        timeout=10,
    ).json()["input_schema"]
    typed = MODEL_INPUTS[model_id].model_json_schema()
    assert set(typed["properties"]) == set(served["properties"])
    assert sorted(typed["required"]) == sorted(served["required"])
    for name, spec in served["properties"].items():
        ours = typed["properties"][name]
        assert ours.get("type", spec["type"]) == spec["type"], name
        assert ours.get("enum") == spec.get("enum"), name
        if name in EXAMPLES_AS_DEFAULTS:
            assert ours["examples"] == [spec["default"]], name
        else:
            assert ours["default"] == spec["default"], name


SCHEMA = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string", "minLength": 1},
        "duration": {"type": "integer", "enum": [5, 10], "default": 5},
        "num_images": {"type": "integer", "minimum": 1, "maximum": 4},
    },
}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        ({}, "prompt: required, missing"),
        ({"prompt": ""}, "prompt: got ''; allowed: string length >= 1"),
        ({"prompt": "x", "duration": 7}, "duration: got 7; allowed: one of 5, 10"),
        ({"prompt": "x", "num_images": 9}, "num_images: got 9; allowed: integer >= 1 <= 4"),
        ({"prompt": "x", "sead": 3}, "sead: unknown field (got 3); known fields: prompt, duration, num_images"),
    ],
)
def test_any_models_inputs_are_checked_against_its_schema(inputs, says):
    with pytest.raises(RunComfyInvalidInputError, match="Invalid inputs for acme/m/v1 \\(its catalog schema\\)") as e:
        check_against_schema("acme/m/v1", SCHEMA, inputs)
    assert says in str(e.value)


@pytest.mark.unit
def test_a_schema_that_allows_extra_fields_takes_them():
    check_against_schema("acme/m/v1", {**SCHEMA, "additionalProperties": True}, {"prompt": "x", "extra": 1})


@pytest.mark.unit
@pytest.mark.parametrize(
    ("price", "inputs", "estimate"),
    [
        ({"base_price_usd": 0.06, "price_unit": "second"}, {"duration": 10}, 0.6),
        ({"base_price_usd": 0.06, "price_unit": "second"}, {"duration": "10"}, 0.6),  # a rendered template
        ({"base_price_usd": 0.06, "price_unit": "second"}, {}, 0.3),  # the schema's default duration
        ({"base_price_usd": 0.02, "price_unit": "output"}, {}, 0.02),
        ({"base_price_usd": 0.02, "price_unit": "output"}, {"num_images": 3}, 0.06),
        ({"base_price_usd": None, "price_unit": None, "pricing_note": "by resolution"}, {}, None),
        ({"base_price_usd": 0.5, "price_unit": "megapixel"}, {}, None),  # a unit no estimate can be made from
    ],
)
def test_estimates_follow_the_price_unit(price, inputs, estimate):
    model = CatalogModel(model_id="acme/m/v1", input_schema=SCHEMA, **price)
    assert model.estimate(inputs) == (pytest.approx(estimate) if estimate is not None else None)
