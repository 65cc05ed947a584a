"""Debian packages a test deployment needs (PostgreSQL, Redis), installed with apt-get when missing."""

from __future__ import annotations

import os
import shutil
import subprocess


class PackageMissingError(RuntimeError):
    """A server the deployment needs is not installed and could not be installed: a test fails, never skips."""


def apt_install(package: str) -> None:
    """``apt-get install`` one package, as root; raise :class:`PackageMissingError` with apt's output if it fails."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PackageMissingError(f"{package} is not installed: run `apt-get install -y {package}` as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", package]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode:
            raise PackageMissingError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
