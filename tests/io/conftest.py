"""A real S3 API (moto's server on loopback) and an Airflow AWS connection to it."""

from __future__ import annotations

import json
import os
import uuid
from unittest import mock

import pytest


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
