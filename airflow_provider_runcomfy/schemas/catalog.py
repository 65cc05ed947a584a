"""RunComfy's catalog and balance answers, the check of any model's inputs against its catalog schema, and the
price estimate of a job: everything that can be known before a paid submit.

The catalog endpoints are undocumented (RunComfy's own CLI and MCP server use them): unknown fields are kept, and
a model whose price follows no fixed rule has no estimate (``None``), never an estimate of zero.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from airflow_provider_runcomfy.exceptions import RunComfyInvalidInputError
from airflow_provider_runcomfy.schemas.api import _Answer

#: The price units an estimate can be made from: USD per second of video (``duration``), or per output.
PRICE_UNITS = ("second", "output")
#: Inputs that say how many outputs a job makes (each is paid when the price is per output).
OUTPUT_COUNT_INPUTS = ("num_images", "num_outputs", "num_videos", "batch_size", "n")


class CatalogModel(_Answer):
    """One model of ``GET /v1/models`` or ``GET /v1/models/{model_id}``."""

    model_id: str
    display_name: str | None = None
    description: str | None = None
    categories: list[str] = Field(default_factory=list)
    input_schema: dict[str, Any] | None = None
    base_price_usd: float | None = None
    price_unit: str | None = None
    pricing_note: str | None = None
    model_url: str | None = None

    @property
    def price(self) -> str:
        """The price as a person reads it: ``$0.06/second``, or the note when no fixed price is known."""
        if self.base_price_usd is None or self.price_unit not in PRICE_UNITS:
            return self.pricing_note or "price unknown"
        return f"${self.base_price_usd:g}/{self.price_unit}"

    def estimate(self, inputs: dict[str, Any]) -> float | None:
        """USD the job should cost, or ``None`` when the catalog gives no fixed rule (then it is unknown, not 0).

        ``second``: price x ``duration`` (the input, else the schema's default); ``output``: price x the number of
        outputs the inputs ask for (``num_images`` and the like, else their default, else 1).
        """
        if self.base_price_usd is None or self.price_unit not in PRICE_UNITS:
            return None
        if self.price_unit == "second":
            units = _number(inputs, ("duration",), self._defaults())
        else:
            units = _number(inputs, OUTPUT_COUNT_INPUTS, self._defaults(), fallback=1)
        return None if units is None else round(self.base_price_usd * units, 6)

    def _defaults(self) -> dict[str, Any]:
        properties = (self.input_schema or {}).get("properties") or {}
        return {name: spec["default"] for name, spec in properties.items() if "default" in (spec or {})}


class ModelPage(_Answer):
    """One page of ``GET /v1/models``."""

    models: list[CatalogModel] = Field(default_factory=list)
    total: int | None = None


class Balance(_Answer):
    """``GET https://api.runcomfy.net/prod/v2/balance``: what the account can still spend."""

    balance_usd: float
    balance_microdollars: int | None = None
    currency: str = "USD"


def _number(
    inputs: dict[str, Any], names: tuple[str, ...], defaults: dict[str, Any], fallback: float | None = None
) -> float | None:
    for source in (inputs, defaults):
        for name in names:
            value = source.get(name)
            if isinstance(value, str) and value.strip().isdigit():  # a rendered template: "8"
                value = int(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
    return fallback


def check_against_schema(model_id: str, schema: dict[str, Any], inputs: dict[str, Any]) -> None:
    """Refuse inputs the model's catalog schema refuses, naming every field, its value and what is allowed.

    jsonschema is imported here, not at module import: a DAG file that imports an operator stays cheap.
    """
    from jsonschema import Draft202012Validator

    # A field the schema does not name is refused unless the schema allows extras: RunComfy would ignore a typo
    # silently and the paid job would run without the input the author meant.
    if "properties" in schema and "additionalProperties" not in schema:
        schema = {**schema, "additionalProperties": False}
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(inputs), key=lambda e: list(map(str, e.path)))
    problems = list(dict.fromkeys(_describe(error, schema) for error in errors))  # type and enum say it once
    if problems:
        raise RunComfyInvalidInputError(f"Invalid inputs for {model_id} (its catalog schema): {'; '.join(problems)}")


def _describe(error: Any, schema: dict[str, Any]) -> str:
    """``field: got VALUE; allowed: ...`` from one jsonschema error."""
    properties = schema.get("properties") or {}
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(properties))
        known = ", ".join(properties)
        return "; ".join(
            f"{name}: unknown field (got {error.instance[name]!r}); known fields: {known}" for name in extra
        )
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        return "; ".join(f"{name}: required, missing" for name in missing)
    field = ".".join(str(part) for part in error.path) or "inputs"
    return f"{field}: got {error.instance!r}; allowed: {_allowed(error.schema)}"


def _allowed(spec: dict[str, Any]) -> str:
    """What a property's schema accepts, as a person reads it."""
    if "enum" in spec:
        return "one of " + ", ".join(repr(value) for value in spec["enum"])
    parts = [str(spec.get("type", "any value"))]
    bounds = (("minimum", ">="), ("maximum", "<="), ("minLength", "length >="), ("maxLength", "length <="))
    parts += [f"{sign} {spec[key]}" for key, sign in bounds if key in spec]
    if "pattern" in spec:
        parts.append(f"matching {spec['pattern']!r}")
    return " ".join(parts)
