"""A real Airflow deployment for tests: PostgreSQL, scheduler (LocalExecutor), triggerer, dag-processor and
api-server, plus the local RunComfy server, each a process group of its own. With ``executor="celery"``: Redis as
the broker, PostgreSQL as the result backend too, Celery workers and several triggerers, as teams run Airflow at
scale.

Why: unit tests and ``airflow dags test`` run Airflow in one process. What this provider promises (a retry
reattaches after a SIGKILL, a triggerer restart resubmits nothing, a killed task cancels its job, deferral frees
worker slots) only holds or breaks across processes, as users run Airflow. Everything listens on 127.0.0.1, is
tuned for quick turnarounds on a small machine, and is stopped (process groups, then any stray descendant) by
:meth:`AirflowDeployment.stop`, also when the start fails half-way.

It lives under ``tests/``, not in the wheel: it installs PostgreSQL with apt-get and drives a whole deployment,
which is this project's test set-up, not a kit for users' tests. ``scripts/deployment up [--dags DIR]`` (that is,
``python -m tests.deployment.harness up`` from the repository root) starts one and keeps it up until Ctrl-C;
``--executor celery`` starts the Celery one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil
import requests

from airflow_provider_runcomfy.testing.dag_test import POOL
from airflow_provider_runcomfy.testing.ports import free_port
from airflow_provider_runcomfy.version_compat import AIRFLOW_V_3_1_PLUS

from .debian import ensure_chromium
from .postgres import PrivateCluster, ensure_installed
from .redis import PrivateRedis
from .redis import ensure_installed as ensure_redis

# Airflow 3.0 leaves uvicorn's worker health check at its 5 s default, shorter than an api-server worker takes to
# start on a busy machine: the workers are killed and restarted without end. 3.1 sets it to the worker timeout.
API_WORKERS = 2 if AIRFLOW_V_3_1_PLUS else 1

EXECUTORS = {"local": "LocalExecutor", "celery": "airflow.providers.celery.executors.celery_executor.CeleryExecutor"}


def wait_until(condition: Callable[[], Any], *, timeout: float, interval: float = 0.5, what: str = "condition"):
    """Poll ``condition`` until it returns something truthy (returned), or raise TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Service:
    """One long-running process, started in a new session (its own process group), output to a log file."""

    def __init__(self, name: str, command: list[str], log_path: Path) -> None:
        self.name, self.command, self.log_path = name, command, log_path
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self, env: dict[str, str], cwd: Path) -> Service:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n==== start #{self.starts + 1}: {' '.join(self.command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.starts += 1
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group (the component and the children it forked)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def kill_tree(self) -> None:
        """SIGKILL the group and every descendant, also those in groups of their own (a worker's task processes):
        what a lost machine does to them."""
        if self.process is None:
            return
        with contextlib.suppress(psutil.NoSuchProcess):
            for member in psutil.Process(self.process.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    member.kill()
        self.kill(signal.SIGKILL)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the group, wait, then SIGKILL the group and any descendant that left it (setsid children)."""
        if self.process is None:
            return
        try:
            family = [self.process, *psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        self.kill(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        self.kill(signal.SIGKILL)
        for member in family:
            try:
                if isinstance(member, psutil.Process) and member.is_running():
                    member.kill()
            except psutil.NoSuchProcess:
                pass
        self.process.wait(timeout=10)
        self.process = None


class StateSampler:
    """Counts a DAG run's task instances by state in the metadata database every ``every`` s, in a thread, for as
    long as the ``with`` block lasts: ``with StateSampler(deployment, dag_id, run_id) as sampler: ...``."""

    def __init__(self, deployment: AirflowDeployment, dag_id: str, run_id: str, every: float = 0.5) -> None:
        self.deployment, self.dag_id, self.run_id, self.every = deployment, dag_id, run_id, every
        self.samples: list[dict[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="state-sampler", daemon=True)

    def _run(self) -> None:
        query = "SELECT state, count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s GROUP BY state"
        while not self._stop.is_set():
            rows = self.deployment.sql(query, self.dag_id, self.run_id)
            self.samples.append({str(state): count for state, count in rows})
            self._stop.wait(self.every)

    def most(self, *states: str) -> int:
        """The most task instances seen at once in any of ``states``."""
        return max((sum(sample.get(state, 0) for state in states) for sample in self.samples), default=0)

    def __enter__(self) -> StateSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class RunComfyControl:
    """The local RunComfy server's ``/_control`` API, and its public API with the deployment's token."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.http = requests.Session()

    def _post(self, action: str, body: Any = None) -> dict[str, Any]:
        answer = self.http.post(f"{self.url}/_control/{action}", json=body, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def faults(self, *rules: dict[str, Any]) -> None:
        self._post("faults", list(rules))

    def outcomes(self, *rules: dict[str, Any]) -> None:
        self._post("outcomes", list(rules))

    def status_values(self, *rules: dict[str, Any]) -> None:
        self._post("faults", [{"status_value": rule} if isinstance(rule, str) else rule for rule in rules])

    def clock(self, queue_seconds: float, run_seconds: float) -> None:
        self._post("clock", {"queue_seconds": queue_seconds, "run_seconds": run_seconds})

    def reset(self) -> None:
        self._post("reset")

    def release(self) -> int:
        """Start every queued job now (they were held by a long clock); returns how many."""
        return self._post("release")["released"]

    def log(self) -> list[dict[str, Any]]:
        answer = self.http.get(f"{self.url}/_control/log", timeout=60)
        answer.raise_for_status()
        return answer.json()

    def stats(self) -> dict[str, int]:
        answer = self.http.get(f"{self.url}/_control/stats", timeout=30)
        answer.raise_for_status()
        return answer.json()

    def status(self, request_id: str) -> str:
        """What the server says about a job now, asked as the job's owner would."""
        answer = self.http.get(
            f"{self.url}/v1/requests/{request_id}/status", headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )
        answer.raise_for_status()
        return answer.json()["status"]


class AirflowApi:
    """The api-server's public REST API (``/api/v2``), authenticated as the simple auth manager's admin."""

    def __init__(self, url: str, credentials: tuple[str, str] | None = None) -> None:
        self.url, self.credentials = url, credentials
        self.http = requests.Session()

    def login(self) -> None:
        self.http.headers["Authorization"] = f"Bearer {self.token(*(self.credentials or ()))}"

    def token(self, username: str | None = None, password: str | None = None) -> str:
        """A JWT for the user (the simple auth manager's login), or the all-admins token when no user is named."""
        if username is None:
            answer = requests.get(f"{self.url}/auth/token", timeout=30)
        else:
            answer = requests.post(
                f"{self.url}/auth/token", json={"username": username, "password": password}, timeout=30
            )
        answer.raise_for_status()
        return answer.json()["access_token"]

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        for _ in range(2):  # a token can expire during a long session: log in again once
            answer = self.http.request(method, f"{self.url}/api/v2{path}", timeout=60, **kwargs)
            if answer.status_code != 401:
                break
            self.login()
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> HTTP {answer.status_code}: {answer.text[:1000]}")
        return answer.json() if answer.content else None

    def dag_ids(self) -> set[str]:
        return {dag["dag_id"] for dag in self.request("GET", "/dags", params={"limit": 1000})["dags"]}

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None) -> str:
        body = {"logical_date": None, "conf": conf or {}, "dag_run_id": run_id or f"{dag_id}-{uuid.uuid4().hex[:8]}"}
        return self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        """Wait until the DAG run is finished; return its state."""
        return wait_until(
            lambda: (state := self.run_state(dag_id, run_id)) in ("success", "failed") and state,
            timeout=timeout,
            what=f"DAG run {dag_id}/{run_id} to finish",
        )

    def run(self, dag_id: str, conf: dict[str, Any] | None = None, timeout: float = 300) -> tuple[str, str]:
        """Trigger a DAG run and wait for it: ``(run_id, state)``."""
        run_id = self.trigger(dag_id, conf)
        return run_id, self.wait_run(dag_id, run_id, timeout)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return self.request("GET", path, params={"limit": 1000})["task_instances"]

    def set_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> Any:
        """Mark a task instance as a user does in the UI (``Mark as failed`` / ``success``)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        return self.request("PATCH", path, json={"new_state": state})

    def clear(self, dag_id: str, run_id: str, task_ids: list[str], *, only_failed: bool = False) -> Any:
        """Clear task instances (and, with ``only_failed``, only the failed ones and what they failed downstream)
        as a user does in the UI: they run again."""
        body: dict[str, Any] = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": task_ids,
            "only_failed": only_failed,
        }
        if only_failed:
            body["include_downstream"] = True
        return self.request("POST", f"/dags/{dag_id}/clearTaskInstances", json=body)

    def import_errors(self) -> list[dict[str, Any]]:
        return self.request("GET", "/importErrors", params={"limit": 1000})["import_errors"]


class AirflowDeployment:
    """Airflow + PostgreSQL + the local RunComfy server, under ``root``; ``with AirflowDeployment(...) as d: ...``.

    :param root: Where the Airflow home, the component logs and the state files of test DAGs go.
    :param dags_folder: The DAGs the dag-processor parses.
    :param token: The RunComfy API token in the connection; a distinctive one makes a secrets scan meaningful.
    :param parallelism: ``[core] parallelism``: how many task instances run at once.
    :param executor: ``local`` (the LocalExecutor) or ``celery`` (Redis broker, ``celery_workers`` workers of
        ``worker_concurrency`` slots each).
    :param triggerers: How many triggerer processes share the triggers; with more than one they are named
        ``triggerer-1``, ``triggerer-2``..., else ``triggerer``.
    :param queue_seconds, run_seconds: The RunComfy server's default job clock.
    :param model_ids: The only model ids the server serves (besides PixVerse's), refusing others with 400001 as
        RunComfy does; by default it serves any well-formed id.
    :param connections: More ``runcomfy`` connections by id, e.g. ``{"runcomfy_empty": {"password": ""}}``;
        each points at the local server unless it names a ``host``.
    :param extra_env: More ``AIRFLOW__...`` settings, or variables the DAGs read; ``{server_url}`` in a value is
        the local RunComfy server's URL.
    :param users: The simple auth manager's users, name to role (``admin``, ``op``, ``user``, ``viewer``), each
        with a generated password (``passwords``); the first admin is the one ``api`` logs in as. Without users,
        every caller is an admin (``simple_auth_manager_all_admins``).
    :param plugins: Python files put in Airflow's plugins folder, which every component has on ``sys.path`` (e.g.
        an auth manager that ``extra_env`` names: ``{"AIRFLOW__CORE__AUTH_MANAGER": "module.Class"}``).
    """

    def __init__(
        self,
        root: Path,
        dags_folder: Path,
        *,
        token: str | None = None,
        parallelism: int = 4,
        queue_seconds: float = 0.5,
        model_ids: list[str] | None = None,
        run_seconds: float = 0.5,
        connections: dict[str, dict[str, Any]] | None = None,
        extra_env: dict[str, str] | None = None,
        executor: str = "local",
        triggerers: int = 1,
        celery_workers: int = 2,
        worker_concurrency: int = 2,
        users: dict[str, str] | None = None,
        plugins: Iterable[Path] = (),
    ) -> None:
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {sorted(EXECUTORS)} (got {executor!r})")
        self.root = Path(root).resolve()
        self.dags_folder = Path(dags_folder).resolve()
        self.home = self.root / "airflow-home"
        self.component_logs = self.root / "component-logs"
        self.state_dir = self.root / "state"  # test DAGs write what the test needs to see (e.g. task PIDs)
        self.token = token or f"rcf-secret-{uuid.uuid4()}"
        self.parallelism = parallelism
        self.clock = (queue_seconds, run_seconds)
        self.model_ids = model_ids
        self.connections = {"runcomfy_default": {"password": self.token}, **(connections or {})}
        self.extra_env = extra_env or {}
        self.users = dict(users or {})
        self.passwords = {name: secrets.token_urlsafe(12) for name in self.users}
        self.plugins = [Path(p) for p in plugins]
        self.executor, self.worker_concurrency = executor, worker_concurrency
        self.triggerers = ["triggerer"] if triggerers == 1 else [f"triggerer-{n}" for n in range(1, triggerers + 1)]
        self.workers = [f"worker-{n}" for n in range(1, celery_workers + 1)] if executor == "celery" else []
        self.postgres = PrivateCluster()
        self.redis = PrivateRedis() if executor == "celery" else None
        self.api_port = self.server_port = 0
        self.services: dict[str, Service] = {}
        self.api: AirflowApi | None = None
        self.runcomfy: RunComfyControl | None = None
        self.env: dict[str, str] = {}

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self, *, timeout: float = 300) -> AirflowDeployment:
        """Start everything; return once the API answers and the scheduler, triggerer and dag-processor heartbeat."""
        try:
            for path in (self.home, self.component_logs, self.state_dir):
                path.mkdir(parents=True, exist_ok=True)
            self.postgres.start()
            if self.redis is not None:
                self.redis.start()
            self.api_port, self.server_port = free_port(), free_port()
            self.env = self._environment()
            (self.home / "plugins").mkdir(exist_ok=True)
            for plugin in self.plugins:
                shutil.copy(plugin, self.home / "plugins")
            (self.home / "passwords.json").write_text(json.dumps(self.passwords))
            self._start_runcomfy_server()
            self.airflow("db", "migrate", timeout=timeout)
            for name in self.components:
                self.services[name] = Service(name, self._command(name), self.component_logs / f"{name}.log")
                self.services[name].start(self.env, self.root)
            admin = next((name for name, role in self.users.items() if role == "admin"), None)
            credentials = (admin, self.passwords[admin]) if admin else None
            self.api = AirflowApi(f"http://127.0.0.1:{self.api_port}", credentials)
            wait_until(self._api_up, timeout=timeout, interval=1, what="the api-server")
            self.wait_for_jobs(("SchedulerJob", "TriggererJob", "DagProcessorJob"), timeout=timeout)
            wait_until(
                lambda: len(self.triggerer_jobs()) >= len(self.triggerers), timeout=timeout, what="every triggerer"
            )
            if self.workers:
                wait_until(self._workers_up, timeout=timeout, interval=1, what="every Celery worker")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process this deployment started and delete the database; safe to call twice."""
        for service in reversed(list(self.services.values())):
            service.stop()
        if self.redis is not None:
            self.redis.stop()
        self.postgres.stop()

    def __enter__(self) -> AirflowDeployment:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def restart(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill a component's process group with ``sig`` (default: no chance to clean up) and start it again."""
        service = self.services[name]
        service.kill(sig)
        service.process.wait(timeout=60)
        service.stop(timeout=5)
        service.start(self.env, self.root)

    def start_component(self, name: str) -> None:
        """Start a component that was stopped (or killed) again; a Celery worker is waited for until ready."""
        service = self.services[name]
        if service.process is not None:
            service.process.wait(timeout=60)
            service.stop(timeout=5)
        ready = self.tail(name, 10_000_000).count(f"{name}@127.0.0.1 ready.")
        service.start(self.env, self.root)
        if name in self.workers:
            wait_until(
                lambda: self.tail(name, 10_000_000).count(f"{name}@127.0.0.1 ready.") > ready,
                timeout=180,
                what=f"the Celery {name}",
            )

    def component_of(self, pid: int) -> str | None:
        """Which component's process tree ``pid`` (a task process, say) belongs to."""
        try:
            ancestors = {parent.pid for parent in psutil.Process(pid).parents()}
        except psutil.NoSuchProcess:
            return None
        return next((n for n, s in self.services.items() if s.process and s.process.pid in ancestors), None)

    # -- configuration --------------------------------------------------------------------------------------

    @property
    def components(self) -> list[str]:
        return ["scheduler", *self.triggerers, "dag-processor", "api-server", *self.workers]

    def _environment(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
        connections = {
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps({"conn_type": "runcomfy", "host": self.server_url, **fields})
            for conn_id, fields in self.connections.items()
        }
        settings = {
            "AIRFLOW_HOME": str(self.home),
            # The plugins folder, on sys.path from the start: Airflow 3.0's api-server workers import the auth
            # manager before they add it themselves.
            "PYTHONPATH": os.pathsep.join(p for p in (str(self.home / "plugins"), os.environ.get("PYTHONPATH")) if p),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": EXECUTORS[self.executor],
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "256",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": str(not self.users),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{n}:{r}" for n, r in self.users.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url(),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "AIRFLOW__API__WORKERS": str(API_WORKERS),
            "AIRFLOW__API__MAXIMUM_PAGE_LIMIT": "1000",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            # Quick turnarounds: the scheduler loops and heartbeats every second, the triggerer too.
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            # A task whose worker died is noticed after 15 s without a heartbeat (default: 5 min).
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__RUNCOMFY__ALLOW_LOOPBACK_HTTP": "True",
            "RUNCOMFY_DEPLOYMENT_STATE": str(self.state_dir),
            "RUNCOMFY_SERVER_URL": self.server_url,
        }
        if self.redis is not None:
            settings |= {
                "AIRFLOW__CELERY__BROKER_URL": self.redis.url(),
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.postgres.url(),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
            }
        extra = {name: value.replace("{server_url}", self.server_url) for name, value in self.extra_env.items()}
        return {**inherited, **settings, **connections, **extra}

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def _command(self, name: str) -> list[str]:
        airflow = str(Path(sys.executable).with_name("airflow"))
        if name == "api-server":
            workers = str(API_WORKERS)
            return [airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.api_port), "--workers", workers]
        if name == "scheduler" or name in self.triggerers:
            return [airflow, name.split("-")[0], "--skip-serve-logs"]
        if name in self.workers:  # each its own node name and PID file: they share one Airflow home
            worker = ["celery", "worker", "--concurrency", str(self.worker_concurrency), "--skip-serve-logs"]
            return [airflow, *worker, "--celery-hostname", f"{name}@127.0.0.1", "--pid", str(self.root / f"{name}.pid")]
        return [airflow, name]

    def airflow(self, *args: str, timeout: float = 300) -> str:
        """Run an ``airflow`` CLI command against this deployment; raise with its output if it fails."""
        command = [str(Path(sys.executable).with_name("airflow")), *args]
        done = subprocess.run(command, env=self.env, cwd=self.root, capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def _start_runcomfy_server(self) -> None:
        command = [sys.executable, "-m", "airflow_provider_runcomfy.testing.server", "--port", str(self.server_port)]
        command += ["--queue-seconds", str(self.clock[0]), "--run-seconds", str(self.clock[1])]
        command += ["--fetch-inputs"]  # as RunComfy does: an input it cannot fetch fails the job
        for model_id in self.model_ids or ():
            command += ["--model-id", model_id]
        # The token goes in the server's environment: not on a command line (`ps`, the log's header).
        env = {**self.env, "RUNCOMFY_TEST_SERVER_TOKEN": self.token}
        self.services["runcomfy-server"] = Service("runcomfy-server", command, self.component_logs / "runcomfy.log")
        self.services["runcomfy-server"].start(env, self.root)
        self.runcomfy = RunComfyControl(self.server_url, self.token)
        wait_until(self._server_up, timeout=60, interval=0.2, what="the RunComfy server")

    def _server_up(self) -> bool:
        try:
            self.runcomfy.stats()
        except requests.RequestException:
            return False
        return True

    def _api_up(self) -> bool:
        if not self.services["api-server"].alive:
            raise RuntimeError(f"the api-server exited:\n{self.tail('api-server')}")
        try:
            self.api.login()
        except requests.RequestException:
            return False
        return True

    # -- what tests read ------------------------------------------------------------------------------------

    def sql(self, query: str, *params: Any) -> list[tuple]:
        """Run one query on the metadata database and return its rows."""
        import psycopg2

        with psycopg2.connect(**self.postgres.dsn()) as connection, connection.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def wait_for_jobs(self, job_types: Iterable[str], *, timeout: float = 120) -> None:
        """Wait until each job type has a running job that heartbeat within the last 10 s."""
        query = (
            "SELECT DISTINCT job_type FROM job WHERE state = 'running' "
            "AND latest_heartbeat > now() - interval '10 seconds'"
        )
        wanted = set(job_types)
        wait_until(
            lambda: wanted <= {row[0] for row in self.sql(query)}, timeout=timeout, what=f"jobs {sorted(wanted)}"
        )

    def triggerer_jobs(self) -> list[int]:
        """Ids of the triggerer jobs that heartbeat within the last 10 s, oldest first."""
        query = (
            "SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running' "
            "AND latest_heartbeat > now() - interval '10 seconds' ORDER BY id"
        )
        return [row[0] for row in self.sql(query)]

    def _workers_up(self) -> bool:
        """Every Celery worker has connected to the broker and said it is ready (Celery's own start-up line)."""
        for name in self.workers:
            if not self.services[name].alive:
                raise RuntimeError(f"the Celery {name} exited:\n{self.tail(name)}")
        return all(f"{name}@127.0.0.1 ready." in self.tail(name, 100_000) for name in self.workers)

    def trigger_owners(self, dag_id: str, run_id: str, task_id: str, count: int, try_number: int = 1) -> list[set[int]]:
        """Per map index (0 to ``count`` - 1): the triggerer job ids whose trigger log for the try says it polled
        (``in_queue``). Each triggerer writes ``attempt=N.log.trigger.<its job id>.log``."""
        owners = []
        for index in range(count):
            folder = self.log_dir(dag_id, run_id, task_id, index)
            logs = folder.glob(f"attempt={try_number}.log.trigger.*.log")
            owners.append({int(p.name.split(".")[-2]) for p in logs if "in_queue" in p.read_text(errors="replace")})
        return owners

    def wait_for_dags(self, dag_ids: Iterable[str], *, timeout: float = 180) -> None:
        wanted = set(dag_ids)
        wait_until(lambda: wanted <= self.api.dag_ids(), timeout=timeout, interval=1, what=f"DAGs {sorted(wanted)}")

    def log_dir(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Path:
        """Where the task's logs are: ``attempt=N.log`` from the worker, ``attempt=N.log.trigger.<job>.log``
        from each triggerer (``<job>`` is that triggerer's job id) that ran the try's trigger."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return folder / f"map_index={map_index}" if map_index >= 0 else folder

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        """The task's log file for one try (JSON lines), as the worker wrote it."""
        path = self.log_dir(dag_id, run_id, task_id, map_index) / f"attempt={try_number}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def trigger_logs(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        """What the task's triggers logged in the triggerer for one try (one file per triggerer)."""
        folder = self.log_dir(dag_id, run_id, task_id, map_index)
        return "".join(
            p.read_text(errors="replace") for p in sorted(folder.glob(f"attempt={try_number}.log.trigger.*"))
        )

    def task_errors(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> list[str]:
        """The exceptions a try failed with, as ``Type: message``, read from its JSON log lines."""
        errors = []
        for line in self.task_log(dag_id, run_id, task_id, try_number, map_index).splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            for detail in entry.get("error_detail") or []:
                errors.append(f"{detail.get('exc_type')}: {detail.get('exc_value')}")
        return errors

    def raced_tasks(self, dag_id: str, run_id: str) -> set[str]:
        """Tasks of the run that the scheduler failed because it handled the executor's report of a deferral only
        after the trigger had resumed the task (apache/airflow #67287, seen on 3.1 to 3.3.2: "finished with state
        success, but the task instance's state attribute is queued"): Airflow's race, not the task's failure."""
        found = re.finditer(
            rf"<TaskInstance: {re.escape(dag_id)}\.(\S+) {re.escape(run_id)}(?: map_index=\d+)? \[queued\][^>]*> "
            r"finished with state success, but the task instance's state attribute is queued",
            self.tail("scheduler", 10_000_000),
        )
        return {match.group(1) for match in found}

    def tail(self, name: str, chars: int = 4000) -> str:
        path = self.component_logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def log_files(self) -> list[Path]:
        """Every log this deployment wrote: task and trigger logs, component output, PostgreSQL's log."""
        files = [p for p in (self.home / "logs").rglob("*") if p.is_file()]
        files += [p for p in self.component_logs.rglob("*") if p.is_file()]
        if self.postgres.root is not None and self.postgres.log_path.exists():
            files.append(self.postgres.log_path)
        return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A real Airflow deployment with the local RunComfy server.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "install-servers",
        help="install Debian's postgresql, redis-server, chromium and chromium-driver if missing (root)",
    )
    up = commands.add_parser("up", help="start a deployment and keep it up until Ctrl-C")
    up.add_argument("--dags", type=Path, default=Path("example_dags"), help="the DAGs folder (default: %(default)s)")
    up.add_argument("--parallelism", type=int, default=4)
    up.add_argument("--executor", choices=sorted(EXECUTORS), default="local", help="default: %(default)s")
    up.add_argument("--triggerers", type=int, help="triggerer processes (default: 1; 2 with --executor celery)")
    args = parser.parse_args(argv)
    if args.command == "install-servers":
        chromium, _ = ensure_chromium()
        print(f"PostgreSQL server binaries: {ensure_installed()}; Redis: {ensure_redis()}; Chromium: {chromium}")
        return
    root = Path(tempfile.mkdtemp(prefix="runcomfy-deployment-"))
    stop: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, _frame: stop.append(signum))
    triggerers = args.triggerers or (2 if args.executor == "celery" else 1)
    deployment = AirflowDeployment(
        root, args.dags, parallelism=args.parallelism, executor=args.executor, triggerers=triggerers
    )
    with deployment:
        deployment.airflow("pools", "set", *POOL)
        print(f"Airflow UI and API: {deployment.api.url} (every user is admin)")
        print(f"RunComfy server:    {deployment.server_url} (token in AIRFLOW_CONN_RUNCOMFY_DEFAULT)")
        if deployment.workers:
            print(f"Celery:             {len(deployment.workers)} workers, broker {deployment.redis.url()}")
        print(f"Logs:               {root}   -- Ctrl-C stops everything", flush=True)
        while not stop:
            time.sleep(0.5)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
