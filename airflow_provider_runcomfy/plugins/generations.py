"""The RunComfy page's data: one row per task try that submitted or reattached to a RunComfy request, read from
Airflow's own metadata (task instances and their XCom: ``request_id``, the job record, the outcome, the return
value). Live states of unfinished jobs come from RunComfy's status call (free, never a paid call), at most one per
row shown, cached a few seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit

from cachetools import TTLCache
from sqlalchemy import Float, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session, aliased

from airflow_provider_runcomfy.utils.mixins import JOB_XCOM_KEY, OUTCOME_XCOM_KEY

#: The states a row can be in, and what the page's state filter offers.
STATES = ("active", "submitted", "succeeded", "failed", "cancelled", "timed_out")
PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
# Task instance states in which the job may still be running: its live state is asked of RunComfy.
_ACTIVE_TI_STATES = ("running", "deferred", "queued", "scheduled", "up_for_retry", "up_for_reschedule", "restarting")
_FAILED_TI_STATES = ("failed", "upstream_failed")
_VIDEO = (".mp4", ".webm", ".mov", ".m4v")
_IMAGE = (".png", ".jpg", ".jpeg", ".webp", ".gif")
_LIVE_NAMES = {"in_queue": "queued", "in_progress": "running"}  # RunComfy's live status, as a row's state
_LIVE_SECONDS = 5  # how long a live state is reused: a page reload within this asks RunComfy nothing
_live: TTLCache[tuple[str, str], tuple[str, str | None]] = TTLCache(maxsize=4096, ttl=_LIVE_SECONDS)
_live_lock = threading.Lock()


@dataclass(frozen=True)
class Filters:
    """What the page's form narrows the rows to; every field is optional."""

    dag_id: str | None = None
    state: str | None = None
    model_id: str | None = None
    since: date | None = None  # the day the try attached to its job, from (inclusive) ...
    until: date | None = None  # ... to (inclusive), in UTC
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None


@dataclass
class Generation:
    """One row: a task try and the RunComfy job it ran."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    task_state: str | None
    request_id: str
    model_id: str | None
    prompt: str | None
    inputs: dict[str, Any] | None
    state: str  # one of STATES (an active one as RunComfy says: queued, running), or the task's own (skipped...)
    detail: str | None  # queue position, RunComfy's error, why the task failed
    how: str | None  # submitted, reattached (to an earlier try's job) or watched (a sensor)
    attached_at: datetime | None
    finished_at: datetime | None
    elapsed_seconds: float | None
    cost: float | None
    output_urls: list[str] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    preview: dict[str, str] | None = None  # {"url", "kind": "video" | "image"}
    conn_id: str | None = None  # the connection the live state is asked through

    def as_json(self) -> dict[str, Any]:
        value = asdict(self)
        for name in ("attached_at", "finished_at"):
            value[name] = value[name].isoformat() if value[name] else None
        return value


@dataclass
class Page:
    rows: list[Generation]
    total: int
    succeeded: int
    spend: float
    offset: int
    limit: int

    @property
    def succeeded_percent(self) -> float | None:
        return round(100 * self.succeeded / self.total, 1) if self.total else None

    def as_json(self) -> dict[str, Any]:
        summary = {"jobs": self.total, "succeeded": self.succeeded, "succeeded_percent": self.succeeded_percent}
        return {
            "generations": [row.as_json() for row in self.rows],
            "summary": {**summary, "spend_usd": round(self.spend, 6)},
            "offset": self.offset,
            "limit": self.limit,
        }


def generations(
    session: Session,
    readable_dag_ids: Collection[str],
    filters: Filters = Filters(),
    *,
    offset: int = 0,
    limit: int = PAGE_SIZE,
    live: bool = True,
) -> Page:
    """The rows the user may read (``readable_dag_ids``: the auth manager's answer), newest first."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel

    if not readable_dag_ids:
        return Page([], 0, 0, 0.0, offset, limit)
    # Every row starts from its ``request_id`` XCom (the anchor); the task instance and the other XCom rows are
    # joined on unique keys (the task instance's, XCom's primary key), outer, so that PostgreSQL leaves out each
    # join a query does not use: the count joins only what it sums, the page's sort reads the anchors alone
    # unless a filter needs more, and the rows shown get their values after the offset and limit. (XCom's foreign
    # key to its task instance makes the outer join to it an inner one.)
    anchor, job, outcome, result = (aliased(XComModel) for _ in range(4))

    def same_ti(model: Any, on: Any) -> Any:
        return and_(
            model.dag_id == on.dag_id,
            model.run_id == on.run_id,
            model.task_id == on.task_id,
            model.map_index == on.map_index,
        )

    def same_try(xcom: Any, key: str, on: Any) -> Any:
        return and_(
            xcom.dag_run_id == on.dag_run_id,
            xcom.task_id == on.task_id,
            xcom.map_index == on.map_index,
            xcom.key == key,
        )

    outcome_status = outcome.value["status"].as_string()
    submit_only = result.value["status"].as_string() == "submitted"  # wait_for_completion=False: the job goes on
    state_of = {
        "submitted": and_(TI.state == "success", submit_only),
        "succeeded": and_(TI.state == "success", or_(result.value["status"].as_string().is_(None), ~submit_only)),
        "failed": and_(TI.state.in_(_FAILED_TI_STATES), or_(outcome_status.is_(None), outcome_status == "failed")),
        "cancelled": and_(TI.state.in_(_FAILED_TI_STATES), outcome_status.in_(("cancelled", "canceled"))),
        "timed_out": and_(TI.state.in_(_FAILED_TI_STATES), outcome_status == "timed_out"),
        "active": or_(TI.state.in_(_ACTIVE_TI_STATES), TI.state.is_(None)),
    }
    where = [anchor.key == "request_id", anchor.dag_id.in_(list(readable_dag_ids))]
    if filters.dag_id:
        where.append(anchor.dag_id == filters.dag_id)
    if filters.run_id:
        where.append(anchor.run_id == filters.run_id)
    if filters.task_id:
        where.append(anchor.task_id == filters.task_id)
    if filters.map_index is not None:
        where.append(anchor.map_index == filters.map_index)
    if filters.state:
        where.append(state_of[filters.state])
    if filters.model_id:
        where.append(job.value["model_id"].as_string() == filters.model_id)
    if filters.since:
        where.append(anchor.timestamp >= datetime.combine(filters.since, time(), UTC))
    if filters.until:
        where.append(anchor.timestamp < datetime.combine(filters.until + timedelta(days=1), time(), UTC))

    # A state filter starts from the task instances in that state (their index): joined inner, they can lead.
    joined = (
        select(anchor)
        .join(TI, same_ti(TI, anchor), isouter=not filters.state)
        .outerjoin(job, same_try(job, JOB_XCOM_KEY, anchor))
        .outerjoin(outcome, same_try(outcome, OUTCOME_XCOM_KEY, anchor))
        .outerjoin(result, same_try(result, "return_value", anchor))
        .where(*where)
    )
    summary = joined.with_only_columns(
        func.count(),
        func.coalesce(func.sum(case((state_of["succeeded"], 1), else_=0)), 0),
        func.coalesce(func.sum(cast(result.value["cost"].as_string(), Float)), 0.0),
    )
    total, succeeded, spend = session.execute(summary).one()
    keys = (
        joined.with_only_columns(
            anchor.dag_run_id,
            anchor.dag_id,
            anchor.run_id,
            anchor.task_id,
            anchor.map_index,
            anchor.value,
            anchor.timestamp,
        )
        .order_by(anchor.timestamp.desc(), anchor.map_index)
        .offset(offset)
        .limit(limit)
        .subquery()
    )
    shown_ti = aliased(TI)
    shown_job, shown_outcome, shown_result = (aliased(XComModel) for _ in range(3))
    page = (
        select(
            keys.c.dag_id,
            keys.c.run_id,
            keys.c.task_id,
            keys.c.map_index,
            shown_ti.try_number,
            shown_ti.state,
            shown_ti.start_date,
            shown_ti.end_date,
            keys.c.value,
            keys.c.timestamp,
            shown_job.value,
            shown_outcome.value,
            shown_result.value,
        )
        .join(shown_ti, same_ti(shown_ti, keys.c))
        .outerjoin(shown_job, same_try(shown_job, JOB_XCOM_KEY, keys.c))
        .outerjoin(shown_outcome, same_try(shown_outcome, OUTCOME_XCOM_KEY, keys.c))
        .outerjoin(shown_result, same_try(shown_result, "return_value", keys.c))
        .order_by(keys.c.timestamp.desc(), keys.c.map_index)
    )
    rows = [_row(*values) for values in session.execute(page)]
    _fill_watched_inputs(session, rows, readable_dag_ids)
    if live:
        _fill_live_states(rows)
    return Page(rows, total, int(succeeded), float(spend), offset, limit)


def _row(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    try_number: int,
    task_state: Any,
    started: datetime | None,
    ended: datetime | None,
    request_id: Any,
    attached: datetime | None,
    job: Any,
    outcome: Any,
    result: Any,
) -> Generation:
    job, outcome, result = (v if isinstance(v, dict) else {} for v in (job, outcome, result))
    task_state = str(getattr(task_state, "value", task_state)) if task_state is not None else None
    attached_at = attached or started  # when the try recorded its request: what the rows are sorted by
    finished_at = ended if task_state not in _ACTIVE_TI_STATES else None
    if task_state == "success":
        state, detail = ("submitted", None) if result.get("status") == "submitted" else ("succeeded", None)
    elif task_state in _FAILED_TI_STATES:
        status = outcome.get("status") or "failed"
        state = {"canceled": "cancelled", "error": "failed"}.get(status, status)
        detail = outcome.get("error") or ("the task failed before the job ended" if not outcome else None)
    elif task_state in _ACTIVE_TI_STATES or task_state is None:
        state, detail = "active", task_state
    else:
        state, detail = task_state, None
    end = finished_at or (datetime.now(UTC) if state == "active" else None)
    inputs = job.get("inputs") if isinstance(job.get("inputs"), dict) else None
    output_urls = [u for u in result.get("output_urls") or [] if isinstance(u, str)]
    return Generation(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=map_index,
        try_number=try_number,
        task_state=task_state,
        request_id=str(request_id),
        model_id=job.get("model_id") or result.get("model_id"),
        prompt=_prompt(inputs),
        inputs=inputs,
        state=state,
        detail=detail,
        how=job.get("how"),
        attached_at=attached_at,
        finished_at=finished_at,
        elapsed_seconds=round((end - attached_at).total_seconds(), 1) if end and attached_at else None,
        cost=result.get("cost") if isinstance(result.get("cost"), (int, float)) else None,
        output_urls=output_urls,
        files=[f for f in result.get("files") or [] if isinstance(f, dict)],
        preview=_preview(output_urls, result.get("output")),
        conn_id=job.get("conn_id"),
    )


def _prompt(inputs: dict[str, Any] | None) -> str | None:
    prompt = (inputs or {}).get("prompt")
    return prompt if isinstance(prompt, str) else None


def _preview(urls: list[str], output: Any) -> dict[str, str] | None:
    """What the page can play or show: the first output, a video or an image (by its extension, else the key the
    model put it under)."""
    if not urls:
        return None
    url = urls[0]
    path = urlsplit(url).path.lower()
    keys = set(output) if isinstance(output, dict) else set()
    if path.endswith(_VIDEO) or (not path.endswith(_IMAGE) and keys & {"video", "videos"}):
        return {"url": url, "kind": "video"}
    if path.endswith(_IMAGE) or keys & {"image", "images"}:
        return {"url": url, "kind": "image"}
    return None


def _fill_watched_inputs(session: Session, rows: Iterable[Generation], readable_dag_ids: Collection[str]) -> None:
    """A sensor watches a request that another task submitted: show that task's model and prompt."""
    from airflow.models.xcom import XComModel

    wanted = {row.request_id: row for row in rows if row.inputs is None}
    if not wanted:
        return
    query = select(XComModel.value).where(
        XComModel.key == JOB_XCOM_KEY,
        XComModel.dag_id.in_(list(readable_dag_ids)),
        XComModel.value["request_id"].as_string().in_(list(wanted)),
    )
    for (job,) in session.execute(query):
        row = wanted.get(job.get("request_id")) if isinstance(job, dict) else None
        if row is not None and isinstance(job.get("inputs"), dict):
            row.inputs, row.prompt = job["inputs"], _prompt(job["inputs"])
            row.model_id = row.model_id or job.get("model_id")


def _fill_live_states(rows: list[Generation]) -> None:
    """Ask RunComfy how each unfinished job on the page stands (one status call per job, in parallel, cached)."""
    active = [row for row in rows if row.state in ("active", "submitted")]
    if not active:
        return
    with ThreadPoolExecutor(max_workers=min(8, len(active))) as pool:
        for row, (status, detail) in zip(active, pool.map(_live_state, active), strict=True):
            if row.state == "active" and status in _LIVE_NAMES:  # the task waits: say how the job stands
                row.state, row.detail = _LIVE_NAMES[status], detail
            else:
                row.detail = f"{status}, {detail}" if detail else status


def _live_state(row: Generation) -> tuple[str, str | None]:
    conn_id = row.conn_id or "runcomfy_default"
    key = (conn_id, row.request_id)
    with _live_lock:
        if key in _live:
            return _live[key]
    try:
        status = _hook(conn_id).get_status(row.request_id)
    except Exception as error:  # the page shows the rest; the reason is the error's kind, never its text
        answer: tuple[str, str | None] = ("status unavailable", type(error).__name__)
    else:
        position = status.queue_position
        answer = (status.status, f"queue position {position}" if position is not None else None)
    with _live_lock:
        _live[key] = answer
    return answer


_hooks: dict[str, Any] = {}


def _hook(conn_id: str) -> Any:
    """One hook per connection for the api-server's life: no retries, short calls (a page load must not wait)."""
    from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook

    if conn_id not in _hooks:
        _hooks[conn_id] = RunComfyHook(conn_id, timeout=5, max_retries=0)
    return _hooks[conn_id]
