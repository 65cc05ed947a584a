"""`python -m airflow_provider_runcomfy.catalog` against the local server, through the Airflow connection."""

from __future__ import annotations

import json
import subprocess
import sys

from airflow_provider_runcomfy.catalog import main

T2V = "pixverse/pixverse/v5.5/text-to-video"


def test_search_lists_ids_names_and_prices(runcomfy_connection, capsys):
    assert main(["search", "video"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["MODEL", "ID", "NAME", "PRICE"]
    assert f"{T2V}      PixVerse 5.5 Text to Video" in out and "$0.06/second" in out
    assert "Priced by resolution and length: no fixed price" in out and "text-to-image" not in out
    assert main(["search", "nothing like this"]) == 0 and "No model matches." in capsys.readouterr().out


def test_search_as_json(runcomfy_connection, capsys):
    assert main(["search", "--category", "text-to-image", "--json"]) == 0
    [model] = json.loads(capsys.readouterr().out)
    assert (model["model_id"], model["base_price_usd"], model["price_unit"]) == (
        "runcomfy-local/test/text-to-image",
        0.02,
        "output",
    )


def test_show_prints_the_input_schema_as_a_table(runcomfy_connection, capsys):
    assert main(["show", T2V]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [f"{T2V}: PixVerse 5.5 Text to Video", "price: $0.06/second"]
    rows = {line.split()[0]: line for line in lines[5:]}
    assert lines[3].split() == ["INPUT", "TYPE", "ALLOWED", "DEFAULT", "REQUIRED"]
    assert rows["duration"].split() == ["duration", "integer", "5,", "8,", "10", "5"]
    assert rows["prompt"].rstrip().endswith("yes") and "'anime'" in rows["style"]


def test_an_unknown_model_or_a_refused_token_fails_without_showing_the_token(runcomfy_connection, capsys, monkeypatch):
    assert main(["show", "acme/none/v1"]) == 1
    assert "unknown model 'acme/none/v1' (HTTP 404" in capsys.readouterr().err
    conn = json.loads(runcomfy_connection.connection_json())
    monkeypatch.setenv("AIRFLOW_CONN_RUNCOMFY_OTHER", json.dumps({**conn, "password": "a-secret-token"}))
    assert main(["--conn-id", "runcomfy_other", "search"]) == 1
    err = capsys.readouterr().err
    assert "refused the API token of connection 'runcomfy_other'" in err and "a-secret-token" not in err


def test_it_runs_as_a_module_with_the_connection_from_the_environment(runcomfy_connection):
    command = [sys.executable, "-m", "airflow_provider_runcomfy.catalog", "show", T2V, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout)["input_schema"]["required"] == ["prompt"]
