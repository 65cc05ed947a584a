"""Pytest fixtures that run a local RunComfy-compatible server (registered as the ``runcomfy`` pytest11 plugin).

Installed packages' plugins load in every pytest session, so the server module (Starlette, uvicorn) is imported
only when a fixture is used: projects without the ``testing`` extra still run their tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_runcomfy.testing.server import RunComfyTestServer


@pytest.fixture
def runcomfy_server() -> Iterator[RunComfyTestServer]:
    """A fresh server on a free loopback port, stopped after the test; no state leaks between tests."""
    from airflow_provider_runcomfy.testing.server import RunComfyTestServer

    with RunComfyTestServer() as server:
        yield server


@pytest.fixture
def runcomfy_connection(
    runcomfy_server: RunComfyTestServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunComfyTestServer]:
    """The server, with ``AIRFLOW_CONN_RUNCOMFY_DEFAULT`` pointing at it (inherited by subprocesses too).

    Outputs of the local server are plain http on loopback, so ``[runcomfy] allow_loopback_http`` is set as well.
    """
    monkeypatch.setenv("AIRFLOW_CONN_RUNCOMFY_DEFAULT", runcomfy_server.connection_json())
    monkeypatch.setenv("AIRFLOW__RUNCOMFY__ALLOW_LOOPBACK_HTTP", "True")
    yield runcomfy_server
