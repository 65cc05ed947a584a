"""A private PostgreSQL cluster for a test deployment: Debian's server binaries, a temp data dir, a free port.

Why not the system's cluster: tests must not depend on (or damage) a database someone else runs, and must work
on a fresh machine. The cluster lives in its own directory, listens on loopback only, runs as the ``postgres``
user when started by root (``initdb`` refuses root), and is deleted by :meth:`PrivateCluster.stop`. Durability is
switched off (``fsync=off``): the data is thrown away anyway, and a 2-core box needs the speed.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from airflow_provider_runcomfy.testing.ports import free_port

from .debian import PackageMissingError, apt_install


def find_bindir() -> Path | None:
    """The newest Debian server bindir (``/usr/lib/postgresql/<v>/bin``), or the one ``initdb`` is in."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4] or 0))
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def ensure_installed() -> Path:
    """Return the server bindir, installing Debian's ``postgresql`` with apt-get first if it is missing (as root)."""
    bindir = find_bindir()
    if bindir is not None:
        return bindir
    apt_install("postgresql")
    bindir = find_bindir()
    if bindir is None:
        raise PackageMissingError("apt-get installed postgresql, but no initdb was found")
    return bindir


class PrivateCluster:
    """One throw-away cluster with a database and a password-authenticated user for Airflow."""

    def __init__(self, *, database: str = "airflow", user: str = "airflow") -> None:
        self.database, self.user = database, user
        self.password = secrets.token_hex(12)
        self.port = 0
        self.root: Path | None = None
        self.bindir: Path | None = None
        self._os_user = "postgres" if os.geteuid() == 0 else None
        self._started = False

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "postgres.log"

    def url(self, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def dsn(self) -> dict[str, object]:
        """Keyword arguments for ``psycopg2.connect``."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "dbname": self.database,
            "user": self.user,
            "password": self.password,
        }

    def start(self) -> PrivateCluster:
        self.bindir = ensure_installed()
        # Outside pytest's 0700 temp dirs: the postgres user must be able to reach its data dir.
        self.root = Path(tempfile.mkdtemp(prefix="runcomfy-pg-"))
        if self._os_user:
            entry = pwd.getpwnam(self._os_user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.port = free_port()
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        )
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options, "-w", "-t", "60", "start"
        )
        self._started = True
        statements = (
            f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'",
            f"CREATE DATABASE {self.database} OWNER {self.user}",
        )
        for statement in statements:
            self._run(
                "psql",
                "-h",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-qc",
                statement,
            )
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown, then immediate) and delete the cluster; safe to call twice."""
        if self._started:
            self._started = False
            for mode in ("fast", "immediate"):
                done = self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30", "stop", check=False)
                if done.returncode == 0:
                    break
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def pg_dump(self) -> str:
        """The whole database as SQL text (data only): what a secrets scan reads."""
        done = subprocess.run(
            [
                str(self.bindir / "pg_dump"),
                "--data-only",
                "--no-owner",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                self.database,
            ],
            env={**os.environ, "PGPASSWORD": self.password},
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return done.stdout

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        assert self.bindir is not None
        binary = self.bindir / program
        if not binary.exists():  # psql lives in the client package's bindir, and on PATH
            binary = Path(shutil.which(program) or program)
        done = subprocess.run(
            [str(binary), *args],
            user=self._os_user,
            group=self._os_user,
            extra_groups=[] if self._os_user else None,
            cwd=str(self.root),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and done.returncode:
            log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise RuntimeError(f"{program} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{log}")
        return done
