"""Airflow finds the provider, its connection type and its form through the entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from airflow_provider_runcomfy import __version__


def test_airflow_lists_the_provider():
    airflow = Path(sys.executable).with_name("airflow")
    listed = subprocess.run([airflow, "providers", "list"], capture_output=True, text=True, check=True).stdout
    assert "airflow-provider-runcomfy" in listed
    assert __version__ in listed


def test_the_runcomfy_connection_type_and_its_form():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hook = ProvidersManagerTaskRuntime().hooks["runcomfy"]  # what workers resolve the connection type with
    assert hook.hook_class_name == "airflow_provider_runcomfy.hooks.runcomfy.RunComfyHook"
    assert hook.connection_id_attribute_name == "runcomfy_conn_id"
    assert hook.hook_name == "RunComfy"
    manager = ProvidersManager()  # what the UI builds the connection form from
    form = manager.field_behaviours["runcomfy"]
    assert form["relabeling"]["password"] == "API Token"
    assert {"login", "schema", "port", "extra"} <= set(form["hidden_fields"])
    assert "airflow_provider_runcomfy.triggers.runcomfy" in str(manager.trigger)
