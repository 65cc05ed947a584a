"""The one place that knows which Airflow minor is running and what differs between them.

Names that moved between minors come from ``airflow.providers.common.compat.sdk``; what that package does not
cover is here.
"""

from __future__ import annotations

import re
from typing import Any


def _airflow_version() -> tuple[int, int, int]:
    from airflow import __version__

    major, minor, micro = re.match(r"(\d+)\.(\d+)\.(\d+)", __version__).groups()  # "3.1.8", "3.2.0rc1"
    return int(major), int(minor), int(micro)


AIRFLOW_VERSION = _airflow_version()
AIRFLOW_V_3_1_PLUS = AIRFLOW_VERSION >= (3, 1, 0)
#: The task state store (a retry reattaches to the request of an earlier try) and trigger ``on_kill`` (marking or
#: clearing a deferred task cancels its queued job) arrived in Airflow 3.3.
AIRFLOW_V_3_3_PLUS = AIRFLOW_VERSION >= (3, 3, 0)


async def aget_connection(conn_id: str) -> Any:
    """``BaseHook.aget_connection`` (Airflow 3.1+), or the sync lookup in a thread where it is missing (3.0)."""
    from airflow.providers.common.compat.sdk import BaseHook

    if hasattr(BaseHook, "aget_connection"):
        return await BaseHook.aget_connection(conn_id)
    from asgiref.sync import sync_to_async  # one thread for every sync lookup, as Airflow 3.0's docs ask

    return await sync_to_async(BaseHook.get_connection)(conn_id)
