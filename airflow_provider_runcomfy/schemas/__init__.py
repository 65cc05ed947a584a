"""Validation of model inputs before anything is sent: errors name the field, the value and what is allowed."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ValidationError

from airflow_provider_runcomfy.exceptions import RunComfyInvalidInputError
from airflow_provider_runcomfy.schemas.pixverse import (
    IMAGE_TO_VIDEO,
    TEXT_TO_VIDEO,
    PixVerseImageToVideoInput,
    PixVerseTextToVideoInput,
)

#: Input models of the catalog models whose schema this provider ships; other models pass a dict through.
MODEL_INPUTS: dict[str, type[BaseModel]] = {
    TEXT_TO_VIDEO: PixVerseTextToVideoInput,
    IMAGE_TO_VIDEO: PixVerseImageToVideoInput,
}

# Model ids are paths ("pixverse/pixverse/v5.5/text-to-video"): segments of safe characters, none of them "." or "..".
_MODEL_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*")


def check_model_id(model_id: object) -> str:
    """Refuse a model id that cannot name a catalog model, before it is put in a URL."""
    if not isinstance(model_id, str) or not _MODEL_ID.fullmatch(model_id) or ".." in model_id:
        raise RunComfyInvalidInputError(
            f"model_id {model_id!r} is not a RunComfy model id: expected a path such as {TEXT_TO_VIDEO!r}"
        )
    return model_id


def describe_errors(
    error: ValidationError, model: type[BaseModel] | None = None, unchecked: Collection[str] = ()
) -> str:
    """One line per problem: the field, what is wrong with it (pydantic names the allowed values), the value.

    Problems with a field named in ``unchecked`` (a template not yet rendered) are left out.
    """
    lines = []
    for item in error.errors(include_url=False):
        if item["loc"] and item["loc"][0] in unchecked:
            continue
        field = ".".join(str(part) for part in item["loc"]) or "inputs"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden" and model is not None:
            message += f"; known fields: {', '.join(model.model_fields)}"
        got = "" if item["type"] == "missing" else f" (got {item['input']!r})"
        lines.append(f"{field}: {message}{got}")
    return "; ".join(lines)


def validate_inputs(
    model_id: str, inputs: BaseModel | dict[str, Any], *, unchecked: Collection[str] = ()
) -> dict[str, Any]:
    """Check ``inputs`` for ``model_id`` and return the JSON body to send.

    Known models are validated by their input model; only the fields the caller set are sent, so the API applies
    its own defaults. Other models need a JSON object: their schema is not known here. ``unchecked`` names
    fields whose value is a template, at DAG parse time: the other fields are checked already.
    """
    check_model_id(model_id)
    model = MODEL_INPUTS.get(model_id)
    if isinstance(inputs, BaseModel):
        if model is not None and not isinstance(inputs, model):
            raise RunComfyInvalidInputError(
                f"inputs for {model_id!r} must be {model.__name__}, not {type(inputs).__name__}"
            )
        return inputs.model_dump(mode="json", exclude_unset=True)
    if not isinstance(inputs, dict):
        raise RunComfyInvalidInputError(f"inputs must be a dict of the model's inputs, not {type(inputs).__name__}")
    if model is None:
        return inputs
    try:
        return model.model_validate(inputs).model_dump(mode="json", exclude_unset=True)
    except ValidationError as error:
        problems = describe_errors(error, model, unchecked)
        if not problems:
            return inputs
        raise RunComfyInvalidInputError(f"Invalid inputs for {model_id}: {problems}") from None
