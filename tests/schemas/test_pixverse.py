"""PixVerse v5.5 inputs: the schemas field by field and the rules the pages state in prose; errors name the field."""

from __future__ import annotations

import pytest

from airflow_provider_runcomfy.exceptions import RunComfyInvalidInputError
from airflow_provider_runcomfy.schemas import validate_inputs
from airflow_provider_runcomfy.schemas.pixverse import IMAGE_TO_VIDEO, TEXT_TO_VIDEO, PixVerseTextToVideoInput

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("model_id", "inputs", "field"),
    [
        (TEXT_TO_VIDEO, {"prompt": "x", "aspect_ratio": "2:1"}, "aspect_ratio"),
        (TEXT_TO_VIDEO, {"prompt": "x", "resolution": "1080p", "duration": 10}, "duration"),
        (TEXT_TO_VIDEO, {"prompt": "   "}, "prompt"),
        (TEXT_TO_VIDEO, {}, "prompt"),
        (TEXT_TO_VIDEO, {"prompt": "x", "style": "watercolor"}, "style"),
        (TEXT_TO_VIDEO, {"prompt": "x", "promt": "typo"}, "promt"),
        (IMAGE_TO_VIDEO, {"prompt": "x", "image_url": "not a url"}, "image_url"),
        (IMAGE_TO_VIDEO, {"prompt": "x", "image_url": "file:///etc/passwd"}, "image_url"),
        (IMAGE_TO_VIDEO, {"prompt": "x"}, "image_url"),
        ("../../admin", {"prompt": "x"}, "model_id"),
    ],
)
def test_invalid_inputs_name_the_field(model_id, inputs, field):
    with pytest.raises(RunComfyInvalidInputError) as raised:
        validate_inputs(model_id, inputs)
    assert field in str(raised.value)


def test_an_error_says_the_value_and_what_is_allowed():
    with pytest.raises(RunComfyInvalidInputError) as raised:
        validate_inputs(TEXT_TO_VIDEO, {"prompt": "x", "resolution": "1080p", "duration": 10})
    assert str(raised.value) == (
        f"Invalid inputs for {TEXT_TO_VIDEO}: duration: with resolution '1080p' the duration must be 5 or 8 (got 10)"
    )


def test_only_the_fields_set_are_sent():
    assert validate_inputs(TEXT_TO_VIDEO, {"prompt": "x", "seed": 3}) == {"prompt": "x", "seed": 3}
    assert validate_inputs(TEXT_TO_VIDEO, PixVerseTextToVideoInput(prompt="y")) == {"prompt": "y"}


def test_other_models_pass_a_dict_through():
    assert validate_inputs("acme/any/v1", {"img_url": "x", "n": 2}) == {"img_url": "x", "n": 2}
    with pytest.raises(RunComfyInvalidInputError, match="must be a dict"):
        validate_inputs("acme/any/v1", ["not", "a", "dict"])


def test_templated_fields_are_left_for_later_and_the_others_checked_now():
    assert validate_inputs(TEXT_TO_VIDEO, {"prompt": "{{ x }}", "duration": "{{ d }}"}, unchecked={"duration"})
    with pytest.raises(RunComfyInvalidInputError, match="style"):
        validate_inputs(TEXT_TO_VIDEO, {"prompt": "p", "duration": "{{ d }}", "style": "oil"}, unchecked={"duration"})
