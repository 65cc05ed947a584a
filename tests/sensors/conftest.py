"""Sensor fixtures: an Airflow home whose DAGs folder is this package's ``dags/``."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_runcomfy.testing.dag_test import AirflowSandbox


@pytest.fixture(scope="session")
def sensor_sandbox(tmp_path_factory) -> AirflowSandbox:
    return AirflowSandbox(tmp_path_factory.mktemp("airflow-sensors"), Path(__file__).parent / "dags").prepare()
