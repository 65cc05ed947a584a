"""What the operators and the sensor share, checked without a server."""

from __future__ import annotations

import inspect

import pytest

from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook
from airflow_provider_runcomfy.utils.mixins import HOOK_PARAMS

pytestmark = pytest.mark.unit


def test_the_hook_params_a_task_accepts_are_the_hooks_keyword_arguments():
    keyword_only = [name for name, p in inspect.signature(RunComfyHook).parameters.items() if p.kind is p.KEYWORD_ONLY]
    assert tuple(keyword_only) == HOOK_PARAMS
