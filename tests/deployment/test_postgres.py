"""The private PostgreSQL cluster of the deployment tests: a missing server is an error, never a silent skip."""

from __future__ import annotations

import pytest

from . import debian, postgres


def test_a_missing_server_that_cannot_be_installed_raises(monkeypatch):
    monkeypatch.setattr(postgres, "find_bindir", lambda: None)
    monkeypatch.setattr(postgres.os, "geteuid", lambda: 1000)  # not root: apt-get is not an option

    with pytest.raises(debian.PackageMissingError, match="apt-get install -y postgresql"):
        postgres.ensure_installed()


def test_a_missing_server_is_installed_with_apt_get_as_root(monkeypatch):
    found = iter([None, postgres.Path("/usr/lib/postgresql/15/bin")])
    commands = []
    monkeypatch.setattr(postgres, "find_bindir", lambda: next(found))
    monkeypatch.setattr(postgres.os, "geteuid", lambda: 0)
    monkeypatch.setattr(postgres.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(
        postgres.subprocess,
        "run",
        lambda command, **kwargs: commands.append(command) or postgres.subprocess.CompletedProcess(command, 0, "", ""),
    )

    assert postgres.ensure_installed() == postgres.Path("/usr/lib/postgresql/15/bin")
    assert commands == [["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]]
