"""Test settings: an Airflow home of the test run's own, so tests never touch a user's Airflow; the one option
that lets a run change a tracked file; a real S3 API (moto's server on loopback) with an Airflow connection to it."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import uuid
from unittest import mock

import pytest

if "AIRFLOW_HOME" not in os.environ:  # made for this run, and removed when it ends
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="runcomfy-airflow-home-")
    atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here, not in tests/deployment/conftest.py: pytest reads options only from the conftest files it loads first.
    parser.addoption(
        "--write-report",
        action="store_true",
        help="rewrite docs/reliability.md from this run of tests/deployment/ (every section must pass); "
        "without it the report goes to pytest's temporary directory",
    )


@pytest.fixture(scope="session")
def moto_s3():
    """One moto S3 server for the session: Airflow caches a filesystem per connection, so its endpoint must stay."""
    import boto3
    from moto.server import ThreadedMotoServer

    from airflow_provider_runcomfy.testing.ports import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    connection = {"conn_type": "aws", "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with mock.patch.dict(os.environ, {**env, "AIRFLOW_CONN_AWS_MOTO": json.dumps(connection)}):
        yield boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    server.stop()


@pytest.fixture
def s3_bucket(moto_s3):
    """A new, empty bucket: ``ObjectStoragePath(f"s3://aws_moto@{name}/...")`` reaches it. Yields (client, name)."""
    name = f"clips-{uuid.uuid4().hex[:8]}"
    moto_s3.create_bucket(Bucket=name)
    return moto_s3, name


# What a unit test may not use: a server, an Airflow run, a deployment, an object store.
_SLOW_FIXTURES = {"runcomfy_server", "runcomfy_connection", "deployment", "s3_bucket", "moto_s3", "server"}


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
