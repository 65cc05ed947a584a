"""Run a DAG with ``airflow dags test`` against a local RunComfy server, and read back what it stored.

Used by the README's main command, by the end-to-end tests, and by anyone who wants to try a DAG offline:
the DAG runs in a real Airflow (its own ``AIRFLOW_HOME``, a real metadata database, the triggerer run inline),
over real HTTP, against :class:`~airflow_provider_runcomfy.testing.server.RunComfyTestServer`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_runcomfy.testing.server import RunComfyTestServer

POOL = ("runcomfy", "4", "RunComfy jobs (example DAGs)")


@dataclass
class DagTestRun:
    """The outcome of one ``airflow dags test``: its exit code, its output, the XComs it left, its task
    instances (``task_id``, ``map_index``, ``state``, ``try_number``, ``rendered_fields``), and the keys of the
    task state Variables (Airflow < 3.3) its tasks left behind."""

    dag_id: str
    returncode: int
    output: str
    xcoms: list[dict[str, Any]]
    task_instances: list[dict[str, Any]]
    state_variables: list[str]

    def state(self, task_id: str, map_index: int = -1) -> str | None:
        return self.task_instance(task_id, map_index)["state"]

    def task_instance(self, task_id: str, map_index: int = -1) -> dict[str, Any]:
        for row in self.task_instances:
            if (row["task_id"], row["map_index"]) == (task_id, map_index):
                return row
        raise KeyError(f"no task instance {task_id!r} (map index {map_index}) in {self.dag_id}")

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        for row in self.xcoms:
            if (row["task_id"], row["key"], row["map_index"]) == (task_id, key, map_index):
                return row["value"]
        raise KeyError(f"no XCom {key!r} for task {task_id!r} (map index {map_index}) in {self.dag_id}")


class AirflowSandbox:
    """An ``AIRFLOW_HOME`` of its own with a migrated database, DAGs from ``dags_folder``, and the ``runcomfy`` pool."""

    def __init__(self, home: Path, dags_folder: Path) -> None:
        self.home = Path(home).resolve()
        self.dags_folder = Path(dags_folder).resolve()

    def env(self, server: RunComfyTestServer | None = None, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            **extra,
        }
        if server is not None:
            env["AIRFLOW_CONN_RUNCOMFY_DEFAULT"] = server.connection_json()
            env["AIRFLOW__RUNCOMFY__ALLOW_LOOPBACK_HTTP"] = "True"  # the local server's outputs are http
        return env

    def airflow(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "airflow_provider_runcomfy.testing.airflow_cli", *args]
        return subprocess.run(
            command, env=env or self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )

    def prepare(self) -> AirflowSandbox:
        """Migrate the metadata database (quick when already done) and create the pool the examples use."""
        self.home.mkdir(parents=True, exist_ok=True)
        for args in (("db", "migrate"), ("pools", "set", *POOL)):
            done = self.airflow(*args)
            if done.returncode:
                raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return self

    def dags_test(
        self, dag_id: str, server: RunComfyTestServer, *, conf: dict[str, Any] | None = None, **env: str
    ) -> DagTestRun:
        args = ["dags", "test", dag_id, *(["--conf", json.dumps(conf)] if conf else [])]
        done = self.airflow(*args, env=self.env(server, **env))
        xcoms, task_instances, state_variables = self.latest_run(dag_id)
        return DagTestRun(dag_id, done.returncode, done.stdout + done.stderr, xcoms, task_instances, state_variables)

    def latest_run(self, dag_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
        """The XComs, task instances and left-over task state Variables of the DAG's latest run, read from the
        metadata database in a child process (this one may have imported another Airflow home's settings)."""
        script = (
            "import json, sys\n"
            "from airflow.models import DagRun, TaskInstance, Variable\n"
            "from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF\n"
            "from airflow.models.xcom import XComModel\n"
            "from airflow.utils.session import create_session\n"
            "with create_session() as s:\n"
            "    run = s.query(DagRun).filter(DagRun.dag_id == sys.argv[1]).order_by(DagRun.id.desc()).first()\n"
            "    of_run = lambda model: [] if run is None else s.query(model).filter(\n"
            "        model.dag_id == run.dag_id, model.run_id == run.run_id).all()\n"
            "    xcoms = [{'task_id': r.task_id, 'key': r.key, 'map_index': r.map_index,\n"
            "        'value': XComModel.deserialize_value(r)} for r in of_run(XComModel)]\n"
            "    rendered = {(r.task_id, r.map_index): r.rendered_fields for r in of_run(RTIF)}\n"
            "    tis = [{'task_id': t.task_id, 'map_index': t.map_index, 'state': t.state,\n"
            "        'try_number': t.try_number, 'rendered_fields': rendered.get((t.task_id, t.map_index))}\n"
            "        for t in of_run(TaskInstance)]\n"
            "    left = [] if run is None else [v.key for v in s.query(Variable).filter(\n"
            "        Variable.key.like('runcomfy_task_state_%')).all()\n"
            "        if f'of {run.dag_id}.' in v.description and f'run {run.run_id}:' in v.description]\n"
            "    print(json.dumps([xcoms, tis, left], default=str))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, dag_id], env=self.env(), capture_output=True, text=True, check=True
        )
        xcoms, task_instances, state_variables = json.loads(done.stdout.strip().splitlines()[-1])
        return xcoms, task_instances, state_variables

    def answer_approvals(self, chosen: str, *, by: str = "reviewer") -> int:
        """Answer every pending human-in-the-loop request as a person would; returns how many were answered.

        Does in the metadata database what Airflow's HITL REST endpoint does: record the response, then resume a
        task parked in ``awaiting_input`` with it.
        """
        script = (
            "import sys\n"
            "from airflow.models.hitl import HITLDetail\n"
            "from airflow.models.taskinstance import TaskInstance\n"
            "from airflow.models.trigger import handle_event_submit\n"
            "from airflow.triggers.base import TriggerEvent\n"
            "from airflow.utils import timezone\n"
            "from airflow.utils.session import create_session\n"
            "from airflow.utils.state import TaskInstanceState as S\n"
            "with create_session() as s:\n"
            "    pending = s.query(HITLDetail).filter(HITLDetail.responded_at.is_(None)).all()\n"
            "    for detail in pending:\n"
            "        detail.chosen_options = [sys.argv[1]]\n"
            "        detail.responded_by = {'id': sys.argv[2], 'name': sys.argv[2]}\n"
            "        detail.responded_at = timezone.utcnow()\n"
            "        ti = s.get(TaskInstance, detail.ti_id)\n"
            "        if ti is not None and ti.state in (S.AWAITING_INPUT, S.DEFERRED):\n"
            "            event = TriggerEvent(detail.as_resume_event_payload())\n"
            "            handle_event_submit(event, task_instance=ti, session=s)\n"
            "    print(len(pending))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, chosen, by], env=self.env(), capture_output=True, text=True, check=True
        )
        return int(done.stdout.strip().splitlines()[-1])
