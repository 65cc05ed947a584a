"""Fixtures of the deployment tests: one real Airflow deployment for this package, the RunComfy server as the
tests drive it, and the reliability report (``docs/reliability.md`` with ``--write-report``).

The deployment is package-scoped: it starts before the first test here and is stopped after the last one, so it
never runs (and eats the CPU) during the rest of the suite. If PostgreSQL cannot be installed, its start raises
and every test here errors: a missing database is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_runcomfy.testing.dag_test import POOL
from airflow_provider_runcomfy.version_compat import AIRFLOW_V_3_1_PLUS

from .harness import AirflowDeployment, RunComfyControl, wait_until
from .report import DOCS, REGENERATE, SECTIONS, Report, write

HERE = Path(__file__).parent
REPORT_NOTES = pytest.StashKey[list[str]]()  # where the report went, for the terminal summary
TOKEN = f"rcf-secret-{uuid.uuid4()}"  # distinctive: the secrets scan looks for this exact string
PARALLELISM = 4
OUTPUT_BUCKET = "runcomfy-outputs"
EXAMPLE_DAGS = HERE.parents[1] / "example_dags"  # parsed beside the test DAGs, as a user's deployment would
EXAMPLE_DAG_IDS = [
    "example_runcomfy_text_to_video",
    "example_runcomfy_image_to_video",
    "example_runcomfy_split_pipeline",
    "example_runcomfy_batch",
    "example_runcomfy_image_chain",  # its image's stored copy, on S3, signed for the video job
    "runcomfy_generate_clip",  # the Asset pipeline; runcomfy_check_clip runs on its Asset event
    *(["example_runcomfy_human_review"] if AIRFLOW_V_3_1_PLUS else []),  # ApprovalOperator: 3.1+
]
DAG_IDS = [
    *(f"fault_{mode}{variant}" for mode in ("sync", "deferrable") for variant in ("", "_noretry", "_timeout")),
    *("crash_sigkill", "triggerer_restart", "user_kills", "scale_100", "bad_input", "bad_connection"),
    *EXAMPLE_DAG_IDS,
    "runcomfy_check_clip",
    "ui_generations",
    "ui_failure",
]
# The UI tests' users: "alice" may read only ui_generations (tests/deployment/runcomfy_test_auth.py).
USERS = {"admin": "admin", "alice": "viewer"}
DAG_ACCESS = {"alice": ["ui_generations"]}
MARKUP_PROMPT = "<script>alert(1)</script> & a lighthouse"  # one of ui_generations' prompts
MARKUP_ERROR = "<b>refused</b> by moderation"  # the error RunComfy fails ui_failure's job with
# Broken connections for the bad-input table; each points at the local server, so a request that should not
# have been sent would be seen there.
BROKEN_CONNECTIONS = {
    "runcomfy_empty_token": {"password": ""},
    "runcomfy_blank_token": {"password": "   "},
    "runcomfy_bad_url": {"host": "http://127.0.0.1:notaport", "password": TOKEN},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the secrets scan after every other deployment test (it scans what they left), still in this package."""
    scan = [item for item in items if item.path.parent == HERE and item.path.name == "test_secrets.py"]
    if not scan:
        return
    rest = [item for item in items if item not in scan]
    last = max((i for i, item in enumerate(rest) if item.path.parent == HERE), default=len(rest) - 1)
    items[:] = rest[: last + 1] + scan + rest[last + 1 :]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say where the report went: output of the fixture's teardown is captured, and shown only on failure."""
    for note in terminalreporter.config.stash.get(REPORT_NOTES, []):
        terminalreporter.write_line(note)


class Server:
    """The local RunComfy server as the tests drive it: reset between cases, totals kept for the report (the
    LocalExecutor deployment's summary; ``tally=False`` for another deployment's server)."""

    def __init__(self, control: RunComfyControl, report: Report, *, tally: bool = True) -> None:
        self.control, self.report, self.counted = control, report, tally

    def reset(self, queue_seconds: float = 0.5, run_seconds: float = 0.5) -> None:
        """Count what the server saw since the last reset (jobs left queued too), then start afresh."""
        if self.counted:
            self.tally()
        self.control.reset()
        self.control.clock(queue_seconds, run_seconds)

    def tally(self) -> None:
        log = self.control.log()
        stats = self.control.stats()
        for name in ("submits", "cancels", "requests"):
            self.report.totals[name] += stats[name]
        self.report.totals["authenticated"] += sum(entry.get("auth") is True for entry in log)
        self.report.totals["queued_left"] += len(self.queued_jobs(log))
        self.report.totals["lost"] += len(self.lost(log))

    def submitted(self, log: list[dict] | None = None) -> list[str]:
        """Request ids of the jobs the server created, in order."""
        return [e["request_id"] for e in log or self.control.log() if e["call"] == "submit" and e["status"] == 200]

    def lost(self, log: list[dict] | None = None) -> list[str]:
        """Jobs created by a submit whose answer was cut off: Airflow never learned their id."""
        return [e["request_id"] for e in log or self.control.log() if e["call"] == "submit" and e["fault"] == "drop"]

    def queued_jobs(self, log: list[dict] | None = None) -> list[str]:
        """Jobs still waiting in the queue that a task knew of: with no task left to wait for them, orphans.
        (A lost job, see :meth:`lost`, is counted apart: no task could ever cancel it.)"""
        log = log or self.control.log()
        lost = set(self.lost(log))
        return [rid for rid in self.submitted(log) if rid not in lost and self.control.status(rid) == "in_queue"]


@pytest.fixture(scope="package")
def report(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Report]:
    """The figures of every deployment test here (both deployments); written once the last of them has run."""
    report = Report()
    yield report
    _write_report(report, tmp_path_factory.getbasetemp(), pytestconfig)


@pytest.fixture(scope="package")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, report: Report, pytestconfig: pytest.Config, moto_s3
) -> Iterator[AirflowDeployment]:
    started = time.monotonic()
    root = tmp_path_factory.mktemp("deployment")
    dags = shutil.copytree(HERE / "dags", root / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    for example in EXAMPLE_DAGS.glob("*.py"):
        shutil.copy(example, dags)
    # The examples store their outputs on S3 (moto's server, in this process), as a real pipeline would; the
    # image-to-video example's first frame is the local server's public sample image.
    moto_s3.create_bucket(Bucket=OUTPUT_BUCKET)
    outputs = {
        "AIRFLOW_CONN_AWS_MOTO": os.environ["AIRFLOW_CONN_AWS_MOTO"],
        "AIRFLOW_VAR_RUNCOMFY_OUTPUT_DIR": f"s3://aws_moto@{OUTPUT_BUCKET}/outputs",
        "AIRFLOW_VAR_RUNCOMFY_FIRST_FRAME": "{server_url}/files/sample.png",
    }
    access = {
        "AIRFLOW__CORE__AUTH_MANAGER": "runcomfy_test_auth.DagAccessAuthManager",
        "RUNCOMFY_TEST_DAG_ACCESS": json.dumps(DAG_ACCESS),
    }
    deployment = AirflowDeployment(
        root,
        dags,
        token=TOKEN,
        parallelism=PARALLELISM,
        connections=BROKEN_CONNECTIONS,
        extra_env={**outputs, **access},
        users=USERS,
        plugins=[HERE / "runcomfy_test_auth.py"],
        model_ids=["pixverse/pixverse/v5.5/text-to-video"],  # PixVerse only: another model meets a 400, as on RunComfy
    )
    deployment.start()
    try:
        deployment.airflow("pools", "set", *POOL)  # the batch example's pool
        report.environment["startup_s"] = round(time.monotonic() - started)
        deployment.wait_for_dags(DAG_IDS)
        yield deployment
    finally:
        try:
            _count_run(deployment, report, started)
        finally:
            deployment.stop()


def _count_run(deployment: AirflowDeployment, report: Report, started: float) -> None:
    import airflow

    Server(deployment.runcomfy, report).tally()
    [(tasks, tries)] = deployment.sql("SELECT count(*), coalesce(sum(try_number), 0) FROM task_instance")
    [(version,)] = deployment.sql("SHOW server_version")
    report.environment.update(
        airflow=airflow.__version__,
        postgres=f"PostgreSQL {version.split()[0]}",
        parallelism=PARALLELISM,
        cpus=os.cpu_count(),
        task_instances=tasks,
        task_tries=tries,
        suite_s=round(time.monotonic() - started),
    )


def _write_report(report: Report, base: Path, config: pytest.Config) -> None:
    notes = config.stash.setdefault(REPORT_NOTES, [])
    if not report.complete:
        missing = [name for name in SECTIONS if name not in report.sections]
        partial = base / "reliability.partial.md"
        partial.write_text(repr(report))
        notes.append(f"reliability report incomplete (missing {', '.join(missing)}); partial figures in {partial}")
        if config.getoption("write_report"):
            pytest.fail(f"--write-report: the report is incomplete (missing {', '.join(missing)}); {DOCS} not written")
    elif config.getoption("write_report"):
        notes.append(f"reliability report: wrote {write(report, DOCS)}")
    else:
        target = write(report, base / "reliability.md")
        notes.append(f"reliability report: {target} ({DOCS} left as it was; `{REGENERATE}` rewrites it)")


@pytest.fixture
def server(deployment: AirflowDeployment, report: Report) -> Server:
    """The server, reset to a fast clock, for one test."""
    server = Server(deployment.runcomfy, report)
    server.reset()
    return server


@pytest.fixture(scope="package")
def ui_runs(deployment: AirflowDeployment, report: Report) -> dict[str, str]:
    """One failed run (RunComfy fails its job with markup in the error), then one run of every other kind."""
    server = Server(deployment.runcomfy, report)
    server.reset()
    error = {"code": "CONTENT_MODERATION", "message": MARKUP_ERROR}
    server.control.outcomes({"outcome": "failed", "error": error})
    runs = {"ui_failure": deployment.api.trigger("ui_failure")}
    wait_until(lambda: server.submitted(), timeout=120, what="ui_failure's submit")
    runs["ui_generations"] = deployment.api.trigger("ui_generations")
    states = {dag_id: deployment.api.wait_run(dag_id, run_id) for dag_id, run_id in runs.items()}
    assert states == {"ui_failure": "failed", "ui_generations": "success"}
    return runs
