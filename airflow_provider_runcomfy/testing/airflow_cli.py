"""The ``airflow`` command as :class:`~airflow_provider_runcomfy.testing.dag_test.AirflowSandbox` runs it:
Airflow's own CLI, with one in-process execution API per process for ``airflow dags test`` on every minor.

Airflow 3.3 builds that API once per process (apache/airflow#65235); before, every task of a ``dags test`` built a
new FastAPI app and started its event-loop thread, which cost more CPU than the task itself. Caching it as 3.3 does
changes nothing a task sees: the same API, built once.
"""

from __future__ import annotations

import functools
import sys

from airflow.sdk.execution_time import supervisor

if not hasattr(supervisor.in_process_api_server, "cache_info"):  # Airflow < 3.3
    supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(supervisor.in_process_api_server)

if __name__ == "__main__":
    from airflow.__main__ import main

    sys.exit(main())
