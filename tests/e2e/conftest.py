"""End-to-end fixtures: one Airflow home for the session, DAGs run with `airflow dags test`."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_runcomfy.testing.dag_test import AirflowSandbox

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def examples_sandbox(tmp_path_factory) -> AirflowSandbox:
    return AirflowSandbox(tmp_path_factory.mktemp("airflow-examples"), ROOT / "example_dags").prepare()


@pytest.fixture(scope="session")
def test_dags_sandbox(tmp_path_factory) -> AirflowSandbox:
    return AirflowSandbox(tmp_path_factory.mktemp("airflow-test-dags"), Path(__file__).parent / "dags").prepare()
