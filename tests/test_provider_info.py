"""Airflow finds the provider, its connection type and its form through the entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_runcomfy import __version__


def test_airflow_lists_the_provider():
    airflow = Path(sys.executable).with_name("airflow")
    listed = subprocess.run([airflow, "providers", "list"], capture_output=True, text=True, check=True).stdout
    assert "airflow-provider-runcomfy" in listed
    assert __version__ in listed


def test_the_runcomfy_connection_type_and_its_form():
    from airflow.providers_manager import ProvidersManager

    try:  # what workers resolve the connection type with (Airflow 3.2+; before, the one providers manager)
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        hooks = ProvidersManagerTaskRuntime().hooks
    except ImportError:
        hooks = ProvidersManager().hooks
    hook = hooks["runcomfy"]
    assert hook.hook_class_name == "airflow_provider_runcomfy.hooks.runcomfy.RunComfyHook"
    assert hook.connection_id_attribute_name == "runcomfy_conn_id"
    assert hook.hook_name == "RunComfy"
    assert "airflow_provider_runcomfy.triggers.runcomfy" in str(ProvidersManager().trigger)


def test_the_form_of_older_minors_passes_airflows_own_schema():
    """Before 3.2 Airflow asks the hook (``get_ui_field_behaviour``) and validates the answer against this schema."""
    from airflow.providers_manager import ProvidersManager

    from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook

    form = RunComfyHook.get_ui_field_behaviour()
    ProvidersManager()._customized_form_fields_schema_validator.validate(form)
    assert form["relabeling"] == {"password": "API Token", "host": "Base URL"}


@pytest.mark.requires_airflow("3.2", reason="before 3.2 every provider's form needs wtforms (FAB brings it)")
def test_the_connection_form_the_api_server_serves():
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    [form] = [meta for meta in HookMetaService.hook_meta_data() if meta.connection_type == "runcomfy"]
    fields = form.standard_fields
    assert (fields.password.title, fields.password.hidden) == ("API Token", False)
    assert (fields.host.title, fields.host.hidden) == ("Base URL", False)
    assert fields.login.hidden and fields.port.hidden and fields.url_schema.hidden


@pytest.mark.requires_airflow("3.2", reason="before 3.2 Airflow reads no conn-fields from the provider info")
def test_the_connection_form_has_the_balance_url():
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    [form] = [meta for meta in HookMetaService.hook_meta_data() if meta.connection_type == "runcomfy"]
    [field] = [f for name, f in form.extra_fields.items() if name.endswith("balance_url")]
    assert field["schema"]["title"] == "Balance URL" and "api.runcomfy.net" in field["description"]
