"""The wheel as a user installs it: what it holds, and that its declared dependencies alone import every module.

The suite's own venv has the ``dev`` extra and whatever Airflow brings, where an undeclared import passes
unnoticed. So the wheel is built, installed into an empty venv with Airflow and nothing else but what the wheel
declares (the ``testing`` extra included), and probed there (``packaging_probe.py``); Airflow there lists it as a
provider.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "airflow_provider_runcomfy"
PROBE = Path(__file__).with_name("packaging_probe.py")
# scripts/setup installs uv into the venv; with its shared cache, a venv with Airflow takes seconds.
UV = shutil.which("uv", path=Path(sys.executable).parent) or shutil.which("uv")


def run(*args: object, **kwargs: object) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, check=False, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run(UV, "build", "--wheel", "--quiet", "--out-dir", out, ROOT)
    [path] = out.glob("*.whl")
    return path


def shipped(wheel: Path) -> set[str]:
    """The wheel's files, except its metadata (``*.dist-info``)."""
    return {name for name in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in name}


def test_the_wheel_holds_the_package_and_nothing_else(wheel):
    sources = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }

    files = shipped(wheel)

    assert files == sources
    assert {
        f"{PACKAGE}/hooks/runcomfy.py",
        f"{PACKAGE}/testing/server.py",
        f"{PACKAGE}/testing/pytest_plugin.py",
    } <= files
    harness = {f"{PACKAGE}/testing/deployment.py", f"{PACKAGE}/testing/postgres.py"}
    assert not harness & files, "the deployment harness is this repository's test code: tests/deployment/"


def test_declared_dependencies_alone_import_every_module(wheel, tmp_path):
    python = tmp_path / "venv" / "bin" / "python"
    run(UV, "venv", "--quiet", "--python", sys.executable, python.parent.parent)
    airflow = f"apache-airflow=={metadata.version('apache-airflow')}"
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    modules = {
        name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for name in shipped(wheel)
        if name.endswith(".py")
    }
    requirement = f"airflow-provider-runcomfy[testing] @ {wheel.as_uri()}"
    run(UV, "pip", "install", "--quiet", "--python", python, airflow, requirement)

    probe = run(python, "-I", PROBE, cwd=tmp_path, env=env)

    result = json.loads(probe.stdout.splitlines()[-1])
    assert result["problems"] == [], "\n".join(result["problems"])
    assert sorted(result["checked"]) == sorted(modules)
    home = {**env, "AIRFLOW_HOME": str(tmp_path / "airflow-home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    listed = run(python.parent / "airflow", "providers", "list", "--output", "json", cwd=tmp_path, env=home)
    table = next(line for line in listed.stdout.splitlines() if line.startswith("[{"))  # after any log lines
    providers = {row["package_name"]: row for row in json.loads(table)}
    assert providers["airflow-provider-runcomfy"]["version"] == metadata.version("airflow-provider-runcomfy")
