"""A private Redis server for a Celery test deployment's broker: Debian's ``redis-server``, a temp dir, a free
port on loopback, nothing saved to disk; :meth:`PrivateRedis.stop` kills it and deletes the dir.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from airflow_provider_runcomfy.testing.ports import free_port

from .debian import PackageMissingError, apt_install


def ensure_installed() -> str:
    """The ``redis-server`` binary, installed with apt-get first if it is missing (as root)."""
    if (binary := shutil.which("redis-server")) is None:
        apt_install("redis-server")
        if (binary := shutil.which("redis-server")) is None:
            raise PackageMissingError("apt-get installed redis-server, but no redis-server was found")
    return binary


class PrivateRedis:
    def __init__(self) -> None:
        self.port = 0
        self.root: Path | None = None
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "redis.log"

    def start(self) -> PrivateRedis:
        binary = ensure_installed()
        self.root = Path(tempfile.mkdtemp(prefix="runcomfy-redis-"))
        self.port = free_port()
        options = ["--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.root), "--save", ""]
        options += ["--appendonly", "no", "--daemonize", "no", "--logfile", str(self.log_path)]
        self.process = subprocess.Popen([binary, *options], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
                self.stop()
                raise RuntimeError(f"redis-server did not start:\n{log}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Kill the server and delete its dir; safe to call twice."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
