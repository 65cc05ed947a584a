"""Debian packages the deployment tests need (PostgreSQL, Redis, Chromium for the browser test), installed with
apt-get when missing."""

from __future__ import annotations

import os
import shutil
import subprocess


class PackageMissingError(RuntimeError):
    """A server the deployment needs is not installed and could not be installed: a test fails, never skips."""


def apt_install(*packages: str) -> None:
    """``apt-get install`` packages, as root; raise :class:`PackageMissingError` with apt's output if it fails."""
    names = " ".join(packages)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PackageMissingError(f"{names} not installed: run `apt-get install -y {names}` as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *packages]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode:
            raise PackageMissingError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def ensure_chromium() -> tuple[str, str]:
    """Debian's Chromium and its ChromeDriver (browsers cannot be downloaded here), installed first if missing."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        apt_install("chromium", "chromium-driver")
    return CHROMIUM, CHROMEDRIVER
