"""Test settings: an Airflow home of the test run's own, so tests never touch a user's Airflow, and the one
option that lets a run change a tracked file."""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="runcomfy-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here, not in tests/deployment/conftest.py: pytest reads options only from the conftest files it loads first.
    parser.addoption(
        "--write-report",
        action="store_true",
        help="rewrite docs/reliability.md from this run of tests/deployment/ (every section must pass); "
        "without it the report goes to pytest's temporary directory",
    )


# What a unit test may not use: a server, an Airflow run, a deployment, an object store.
_SLOW_FIXTURES = {"runcomfy_server", "runcomfy_connection", "deployment", "s3_bucket", "server"}


def pytest_collection_modifyitems(items):
    """A test marked ``unit`` that asks for a server or an Airflow run is a mistake: say so at collection."""
    for item in items:
        if item.get_closest_marker("unit") is None:
            continue
        slow = _SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())) | {
            name for name in getattr(item, "fixturenames", ()) if name.endswith("sandbox")
        }
        if slow:
            raise pytest.UsageError(f"{item.nodeid} is marked unit but uses {sorted(slow)}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.requires_airflow("3.3", reason)``: the feature under test does not exist on older minors.

    Each such test names, in its reason, the test that checks what those minors do instead.
    """
    from airflow_provider_runcomfy.version_compat import AIRFLOW_VERSION

    marker = item.get_closest_marker("requires_airflow")
    if marker is not None:
        needed = tuple(int(part) for part in marker.args[0].split("."))
        if AIRFLOW_VERSION[: len(needed)] < needed:
            pytest.skip(f"needs Airflow {marker.args[0]}+: {marker.kwargs['reason']}")
