"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_runcomfy import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-runcomfy",
        "name": "RunComfy",
        "description": "Run RunComfy's hosted generative models (PixVerse v5.5 video and any catalog model).",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "RunComfy",
                "external-doc-url": "https://www.runcomfy.com/models",
                "tags": ["service"],
            }
        ],
        "operators": [
            {"integration-name": "RunComfy", "python-modules": ["airflow_provider_runcomfy.operators.runcomfy"]}
        ],
        "sensors": [{"integration-name": "RunComfy", "python-modules": ["airflow_provider_runcomfy.sensors.runcomfy"]}],
        "hooks": [{"integration-name": "RunComfy", "python-modules": ["airflow_provider_runcomfy.hooks.runcomfy"]}],
        "triggers": [
            {"integration-name": "RunComfy", "python-modules": ["airflow_provider_runcomfy.triggers.runcomfy"]}
        ],
        "extra-links": ["airflow_provider_runcomfy.links.runcomfy.RunComfyOutputLink"],
        "plugins": [{"name": "runcomfy", "plugin-class": "airflow_provider_runcomfy.plugins.runcomfy.RunComfyPlugin"}],
        "config": {
            "runcomfy": {
                "description": "Settings of the RunComfy provider.",
                "options": {
                    "allow_loopback_http": {
                        "description": (
                            "Also download outputs over plain http when the host is a loopback address "
                            "(127.0.0.0/8, ::1, localhost), as the local RunComfy server serves them. "
                            "Any other output is fetched over https only."
                        ),
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": "True",
                        "default": "False",
                    }
                },
            }
        },
        "connection-types": [
            {
                "connection-type": "runcomfy",
                "hook-class-name": "airflow_provider_runcomfy.hooks.runcomfy.RunComfyHook",
                "hook-name": "RunComfy",
                # Airflow 3.2+ shows these under the form's extra fields; older minors read the extra JSON alone.
                "conn-fields": {
                    "balance_url": {
                        "label": "Balance URL",
                        "description": (
                            "The account balance endpoint, read by check_balance=True (RunComfy serves it on "
                            "another host than the Model API). Leave empty for https://api.runcomfy.net/prod/v2/balance"
                        ),
                        "schema": {"type": ["string", "null"]},
                    }
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port", "extra"],
                    "relabeling": {"password": "API Token", "host": "Base URL"},
                    "placeholders": {
                        "password": "RunComfy API token (Profile > API keys)",
                        "host": "https://model-api.runcomfy.net (leave empty for the default)",
                    },
                },
            }
        ],
    }
