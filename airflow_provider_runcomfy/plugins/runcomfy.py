"""The Airflow plugin (the ``airflow.plugins`` entry point): the RunComfy app in the api-server, and on Airflow
3.1+ a "RunComfy" page in the navigation and a "RunComfy" tab on every task instance.

The app is built only in the api-server, as the edge3 provider does: schedulers, workers and triggerers load
plugins too and need none of it. On Airflow 3.0, which has no external views, the routes are served all the same
(``/runcomfy/``, ``/runcomfy/task?dag_id=...``).
"""

from __future__ import annotations

import sys

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_runcomfy.version_compat import AIRFLOW_V_3_1_PLUS


def _in_api_server() -> bool:
    return len(sys.argv) > 1 and sys.argv[1] == "api-server"


def _views() -> list[dict[str, str]]:
    from airflow_provider_runcomfy.plugins.app import PREFIX, airflow_base_path

    base = airflow_base_path() + PREFIX
    task = "dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}&map_index={MAP_INDEX}"
    return [
        {"name": "RunComfy", "href": f"{base}/", "destination": "nav", "category": "browse", "url_route": "runcomfy"},
        {
            "name": "RunComfy",
            "href": f"{base}/task?{task}",
            "destination": "task_instance",
            "url_route": "runcomfy_task",
        },
    ]


class RunComfyPlugin(AirflowPlugin):
    """RunComfy generations in Airflow's UI: what each task made, from which inputs, how it ended, what it cost."""

    name = "runcomfy"
    if _in_api_server():
        from airflow_provider_runcomfy.plugins.app import PREFIX, create_app

        fastapi_apps = [{"app": create_app(), "url_prefix": PREFIX, "name": "RunComfy"}]
        if AIRFLOW_V_3_1_PLUS:
            external_views = _views()
