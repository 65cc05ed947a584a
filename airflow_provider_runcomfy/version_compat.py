"""The one place that knows which Airflow minor is running and what differs between them.

Names that moved between minors come from ``airflow.providers.common.compat.sdk``; what that package does not
cover is here, including a task state store for the minors before 3.3, so that a retry reattaches on every minor.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
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


def mask_secret(secret: str) -> None:
    """Airflow's ``mask_secret``: hidden in this process's logs and in the supervisor's.

    On Airflow 3.0 the in-process supervisor of ``airflow dags test`` logs each message it is sent at debug level,
    a secret to mask included. It runs in this process, so there the secret is masked here only.
    """
    from airflow.sdk.log import mask_secret as airflow_mask_secret

    if not AIRFLOW_V_3_1_PLUS:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.secrets_masker import _secrets_masker

        if type(getattr(task_runner, "SUPERVISOR_COMMS", None)).__name__ == "InProcessSupervisorComms":
            _secrets_masker().add_mask(secret)
            return
    airflow_mask_secret(secret)


async def aget_connection(conn_id: str) -> Any:
    """``BaseHook.aget_connection`` (Airflow 3.1+), or the sync lookup in a thread where it is missing (3.0)."""
    from airflow.providers.common.compat.sdk import BaseHook

    if hasattr(BaseHook, "aget_connection"):
        return await BaseHook.aget_connection(conn_id)
    from asgiref.sync import sync_to_async  # one thread for every sync lookup, as Airflow 3.0's docs ask

    return await sync_to_async(BaseHook.get_connection)(conn_id)


async def deferral_is_current(ti: Any, key: str, deferral_id: str) -> bool | None:
    """From a trigger's ``on_kill`` (Airflow 3.3+) or ``cleanup`` (before): whether the try that deferred with
    ``deferral_id`` is still deferred, i.e. the trigger only moved to another triggerer; ``None`` when Airflow cannot
    be asked.

    The try pushed ``deferral_id`` to XCom ``key`` when it deferred. A new try (after a clear) starts with its XCom
    cleared, so a task deferred again by another try holds another id. The triggerer answers both queries.
    """
    try:
        from airflow.providers.common.compat.sdk import XCom
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.comms import GetTaskStates

        answer = await task_runner.SUPERVISOR_COMMS.asend(
            GetTaskStates(dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index)
        )
        label = ti.task_id if ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
        state = (answer.task_states.get(ti.run_id) or {}).get(label)
        if str(getattr(state, "value", state)) != "deferred":  # marked, or cleared and not deferred again yet
            return False
        where = {"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id, "map_index": ti.map_index}
        if hasattr(XCom, "aget_one"):
            return await XCom.aget_one(key=key, **where) == deferral_id
        from asgiref.sync import sync_to_async  # before 3.3: the sync call, in a thread, as for connections

        return await sync_to_async(XCom.get_one)(key=key, **where) == deferral_id
    except Exception:  # no triggerer to ask (a trigger run on its own), or it failed: unknown
        return None


class VariableStateStore:
    """Before Airflow 3.3: the task state store's ``get``/``set`` for one task instance of one DAG run, kept in one
    Airflow Variable (a JSON object), so that a retry finds the request of an earlier try.

    The Variable's name is a digest (run ids can outgrow a Variable key); its description names the task. It is
    read once per try: only the task's own tries write it, one at a time.
    """

    def __init__(self, ti: Any) -> None:
        scope = f"{ti.dag_id}\0{ti.run_id}\0{ti.task_id}\0{ti.map_index}"
        self.key = "runcomfy_task_state_" + hashlib.sha256(scope.encode()).hexdigest()[:32]
        mapped = f"[{ti.map_index}]" if ti.map_index >= 0 else ""
        self.description = (
            f"airflow-provider-runcomfy: task state of {ti.dag_id}.{ti.task_id}{mapped}, run {ti.run_id}: what its "
            "retries need (Airflow < 3.3 has no task state store); deleted when the task ends"
        )
        self._state: dict[str, Any] | None = None  # None: not read yet

    def _load(self) -> dict[str, Any]:
        from airflow.providers.common.compat.sdk import Variable

        if self._state is None:
            self._state = Variable.get(self.key, default=None, deserialize_json=True) or {}
        return self._state

    def get(self, key: str) -> Any:
        return self._load().get(key)

    def set(self, key: str, value: Any) -> None:
        from airflow.providers.common.compat.sdk import Variable

        self._state = {**self._load(), key: value}
        Variable.set(self.key, self._state, description=self.description, serialize_json=True)

    def delete_all(self) -> None:
        from airflow.providers.common.compat.sdk import Variable

        if self._state != {}:  # read empty and never set: there is nothing to delete
            Variable.delete(self.key)
            self._state = {}


@contextmanager
def task_state(context: Any) -> Iterator[None]:
    """Give a try a task state store on every minor: Airflow's (3.3+), else a :class:`VariableStateStore`,
    deleted once the task has ended (succeeded, or failed with no retry left); a deferral has not ended it."""
    ti = context.get("ti")
    if AIRFLOW_V_3_3_PLUS or context.get("task_state_store") is not None or ti is None:  # None: not run by Airflow
        yield
        return
    from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException, TaskDeferred

    store = context["task_state_store"] = VariableStateStore(ti)
    try:
        yield
    except TaskDeferred:
        raise
    except Exception as error:
        if isinstance(error, (AirflowFailException, AirflowSkipException)) or ti.try_number > ti.max_tries:
            store.delete_all()  # no retry will read it
        raise
    store.delete_all()


if AIRFLOW_V_3_3_PLUS:
    from airflow.sdk import ResumableJobMixin
else:

    class ResumableJobMixin:  # type: ignore[no-redef]
        """Airflow < 3.3: the SDK mixin's resume rule (3.3) over the store :func:`task_state` provides.

        A stored request that is still running is reattached to, one that succeeded is returned, any other is
        submitted afresh. ``durable=False`` submits on every try.
        """

        external_id_key = "remote_job_id"
        log: Any

        def __init__(self, *, durable: bool = True, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.durable = durable

        def execute_resumable(self, context: Any) -> Any:
            store = context.get("task_state_store") if self.durable else None
            stored = store.get(self.external_id_key) if store is not None else None
            if stored:
                status = self.get_job_status(stored, context)
                if self.is_job_active(status):
                    self.log.info("Reconnecting to existing job %s (status %s)", stored, status)
                    return self.poll_until_complete(stored, context)
                if self.is_job_succeeded(status):
                    self.log.info("Job already completed successfully, skipping resubmission: %s", stored)
                    return self.get_job_result(stored, context)
            external_id = self.submit_job(context)
            if store is not None and external_id is not None:
                store.set(self.external_id_key, external_id)
            self.poll_until_complete(external_id, context)
            return self.get_job_result(external_id, context)


def api_user_dependency() -> Any:
    """The api-server's FastAPI dependency that says who is calling: the JWT of the ``Authorization`` header, else
    the UI's session cookie. Airflow 3.1+ has one (it honours the UI's token refresh); 3.0's reads the header only.
    """
    if AIRFLOW_V_3_1_PLUS:
        from airflow.api_fastapi.core_api.security import get_user

        return get_user
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from fastapi import HTTPException, Request
    from jwt import ExpiredSignatureError, InvalidTokenError

    async def get_user(request: Request) -> Any:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        token = credentials if scheme.lower() == "bearer" else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
        if not token:
            raise HTTPException(401, "Not authenticated")
        try:
            return await get_auth_manager().get_user_from_token(token)
        except ExpiredSignatureError:
            raise HTTPException(401, "Token Expired") from None
        except InvalidTokenError:
            raise HTTPException(403, "Invalid JWT token") from None

    # FastAPI reads annotations as this module's globals name them, and Request is imported here only.
    get_user.__annotations__["request"] = Request
    return get_user
