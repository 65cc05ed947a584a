"""The Celery deployment, as teams run Airflow at scale: Redis as the broker, PostgreSQL as the metadata database
and result backend, two Celery workers of two slots each, two triggerers, scheduler, dag-processor and api-server.

Package-scoped like the LocalExecutor one, and never up at the same time as it: one deployment at a time on a
small machine. Its server's figures go to the report's Celery section, not the LocalExecutor summary.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import TOKEN, Server
from ..harness import AirflowDeployment
from ..report import Report

HERE = Path(__file__).parent
WORKERS, CONCURRENCY, TRIGGERERS = 2, 2, 2
PARALLELISM = 8  # above the workers' 4 slots: the slots are the limit
#: The DAGs of dags/celery_dags.py, and how many mapped tasks each has.
TASKS = {"celery_scale_200": 200, "celery_triggerer_kill": 40, "celery_triggerer_freeze": 40, "celery_timeouts": 20}


@pytest.fixture(scope="package")
def celery_deployment(tmp_path_factory: pytest.TempPathFactory, report: Report) -> Iterator[AirflowDeployment]:
    started = time.monotonic()
    root = tmp_path_factory.mktemp("celery-deployment")
    dags = shutil.copytree(HERE.parent / "dags", root / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    deployment = AirflowDeployment(
        root,
        dags,
        token=TOKEN,
        executor="celery",
        triggerers=TRIGGERERS,
        celery_workers=WORKERS,
        worker_concurrency=CONCURRENCY,
        parallelism=PARALLELISM,
        model_ids=["pixverse/pixverse/v5.5/text-to-video"],
    )
    deployment.start()
    try:
        report.environment["celery_startup_s"] = round(time.monotonic() - started)
        deployment.wait_for_dags([*TASKS, "user_kills", "crash_sigkill"])
        yield deployment
    finally:
        report.environment["celery_suite_s"] = round(time.monotonic() - started)
        deployment.stop()


@pytest.fixture
def celery_server(celery_deployment: AirflowDeployment, report: Report) -> Server:
    """The Celery deployment's RunComfy server, reset to a fast clock, for one test."""
    server = Server(celery_deployment.runcomfy, report, tally=False)
    server.reset()
    return server
