"""The UI tests' auth manager, put in the deployment's plugins folder: Airflow's simple auth manager, except that
a user named in ``RUNCOMFY_TEST_DAG_ACCESS`` (JSON: user name to DAG ids) may read only those DAGs. The simple auth
manager has roles but no per-DAG permissions; Airflow asks ``is_authorized_dag`` for every DAG check, its own
REST API's included."""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


class DagAccessAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        allowed = json.loads(os.environ.get("RUNCOMFY_TEST_DAG_ACCESS", "{}")).get(user.get_name())
        if allowed is not None and (details is None or details.id not in allowed):
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
