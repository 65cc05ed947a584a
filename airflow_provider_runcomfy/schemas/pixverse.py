"""Typed inputs of PixVerse v5.5, field by field as RunComfy's schema pages state them.

``prompt`` (and ``image_url``) are required, as the schemas' ``required`` lists say; the defaults the pages
show for them are the playground's examples and are kept as ``examples``. Beyond the JSON schema, the pages
state in prose: 1080p is limited to 5 or 8 seconds; ``image_url`` is a public http(s) URL (here also an
object-store URI, which the operators sign before the submit); and an empty prompt makes a paid job that cannot
succeed, so it is refused here.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from airflow_provider_runcomfy.io.inputs import UNSIGNABLE_SCHEMES, object_store_scheme

TEXT_TO_VIDEO = "pixverse/pixverse/v5.5/text-to-video"
IMAGE_TO_VIDEO = "pixverse/pixverse/v5.5/image-to-video"

AspectRatio = Literal["16:9", "4:3", "1:1", "3:4", "9:16"]
Resolution = Literal["360p", "540p", "720p", "1080p"]
Duration = Literal[5, 8, 10]
Style = Literal["anime", "3d_animation", "clay", "comic", "cyberpunk"]
ThinkingType = Literal["enabled", "disabled", "auto"]

_T2V_PROMPT = (
    "A girl in a yellow raincoat is walking in the rain while holding an umbrella. She calmly steps over wet "
    "pavement scattered with autumn leaves. The background features a softly blurred street scene with muted "
    "colors. The camera remains fixed, capturing the serene moment steadily."
)
_I2V_NEGATIVE = (
    "blurry, low quality, low resolution, pixelated, noisy, grainy, out of focus, poorly lit, poorly exposed, "
    "poorly composed, poorly framed, poorly cropped, poorly color corrected, poorly color graded"
)
_I2V_IMAGE = "https://playgrounds-storage-public.runcomfy.net/tools/7252/media-files/input-1-1.webp"


class _PixVerseInput(BaseModel):
    """Fields shared by both PixVerse v5.5 models; unknown fields are refused so a typo is not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aspect_ratio: AspectRatio = Field(
        "16:9", title="Aspect Ratio (W:H)", description="The aspect ratio of the generated video."
    )
    resolution: Resolution = Field("720p", title="Resolution", description="The resolution of the generated video.")
    duration: Duration = Field(
        5,
        title="Duration",
        description="The duration of the generated video in seconds. 1080p videos are limited to 5 or 8 seconds.",
    )
    seed: int = Field(0, title="Seed")
    generate_audio_switch: bool = Field(
        False, title="Generate Audio", description="Enable audio generation (BGM, SFX, dialogue)."
    )
    generate_multi_clip_switch: bool = Field(
        False, title="Generate Multi-clip", description="Enable multi-clip generation with dynamic camera changes."
    )
    thinking_type: ThinkingType = Field(
        "auto",
        title="Prompt Optimization Mode",
        description=(
            "Prompt optimization mode: 'enabled' to optimize, 'disabled' to turn off, 'auto' for model decision."
        ),
    )

    @field_validator("duration", mode="before")
    @classmethod
    def _duration_from_text(cls, value: object) -> object:
        # A templated field renders to text ("8"); accept it as the number it names.
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @field_validator("duration")
    @classmethod
    def _1080p_duration(cls, value: int, info: ValidationInfo) -> int:
        if info.data.get("resolution") == "1080p" and value not in (5, 8):
            raise ValueError("with resolution '1080p' the duration must be 5 or 8")
        return value

    @field_validator("prompt", check_fields=False)
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class PixVerseTextToVideoInput(_PixVerseInput):
    """Inputs of ``pixverse/pixverse/v5.5/text-to-video``."""

    # Required by the API although its page shows a default: that default is the playground's example.
    prompt: str = Field(title="Prompt", examples=[_T2V_PROMPT])
    negative_prompt: str = Field(
        "", title="Negative Prompt", description="Negative prompt to be used for the generation."
    )
    style: Style = Field("anime", title="Style", description="The style of the generated video.")


class PixVerseImageToVideoInput(_PixVerseInput):
    """Inputs of ``pixverse/pixverse/v5.5/image-to-video``: the image is the video's first frame."""

    prompt: str = Field(
        title="Prompt",
        description="Text prompt describing the content of the generated video.",
        examples=["the girl is smiling"],
    )
    image_url: str = Field(
        title="Image",
        description="URL of the image to use as the first frame, or an object-store URI to sign (s3://conn@bucket/key).",
        examples=[_I2V_IMAGE],
    )
    negative_prompt: str = Field(
        _I2V_NEGATIVE,
        title="Negative Prompt",
        description="Negative prompt to exclude undesired qualities from the generation output.",
    )
    style: Style = Field("comic", title="Style", description="The style of the generated video.")

    @field_validator("image_url")
    @classmethod
    def _fetchable_url(cls, value: str) -> str:
        value = value.strip()
        scheme = object_store_scheme(value)
        if scheme in UNSIGNABLE_SCHEMES:
            raise ValueError(f"files on {scheme}:// cannot be signed for RunComfy to fetch: use object storage, https")
        parts = urlsplit(value)
        if scheme is None and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError(
                "must be a public http(s) URL that a plain GET can fetch, or an object-store URI such as "
                "s3://conn@bucket/key (signed before the submit)"
            )
        return value
