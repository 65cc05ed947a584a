"""The plugin's FastAPI app, mounted in the api-server at ``/runcomfy``: the RunComfy page, the task instance tab
and their JSON.

Plugin apps are not behind Airflow's login: every route asks the api-server who is calling (the UI's session
cookie or a Bearer token) and Airflow's auth manager which DAGs that user may read; rows of other DAGs are never
read. Pages are rendered on the server by Jinja with autoescaping (a prompt is text, never markup), and a strict
Content-Security-Policy allows only this app's own script and style.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape

from airflow_provider_runcomfy.plugins.generations import MAX_PAGE_SIZE, PAGE_SIZE, STATES, Filters, generations
from airflow_provider_runcomfy.version_compat import api_user_dependency

PREFIX = "/runcomfy"
_HERE = Path(__file__).parent
_HEADERS = {
    # Outputs are RunComfy's URLs (or the local server's): media and images from anywhere, nothing else.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src http: https: data:; "
    "media-src http: https:; form-action 'self'; frame-ancestors 'self'; base-uri 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_templates = Environment(
    loader=PackageLoader("airflow_provider_runcomfy.plugins", "templates"), autoescape=select_autoescape(["html"])
)


def airflow_base_path() -> str:
    """The path Airflow's UI is served under (``[api] base_url``), for links into it."""
    from airflow.providers.common.compat.sdk import conf

    base = conf.get("api", "base_url", fallback="/") or "/"
    return (urlsplit(base).path if "://" in base else base).rstrip("/")


def task_instance_url(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    """The task instance's page in Airflow's UI."""
    parts = ["dags", dag_id, "runs", run_id, "tasks", task_id, *(["mapped", str(map_index)] if map_index >= 0 else [])]
    return airflow_base_path() + "/" + "/".join(quote(part, safe="") for part in parts)


_get_user = api_user_dependency()


def readable_dag_ids(user: Annotated[Any, Depends(_get_user)]) -> set[str]:
    """The DAGs the caller may read, as Airflow's auth manager says."""
    from airflow.api_fastapi.app import get_auth_manager

    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


def chosen_filters(
    dag_id: str | None = None,
    state: str | None = None,
    model_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    map_index: int | None = None,
) -> Filters:
    if state and state not in STATES:
        raise HTTPException(422, f"state must be one of {', '.join(STATES)} (got {state!r})")
    return Filters(dag_id or None, state or None, model_id or None, since, until, run_id, task_id, map_index)


Readable = Annotated[set[str], Depends(readable_dag_ids)]
Chosen = Annotated[Filters, Depends(chosen_filters)]
Offset = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]


def create_app() -> FastAPI:
    app = FastAPI(title="RunComfy", description="Generations of the RunComfy provider's tasks", docs_url=None)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")

    @app.get("/api/generations")
    def generations_json(readable: Readable, chosen: Chosen, offset: Offset = 0, limit: Limit = PAGE_SIZE):
        with _session() as session:
            page = generations(session, readable, chosen, offset=offset, limit=limit)
        return JSONResponse(page.as_json(), headers=_HEADERS)

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request, readable: Readable, chosen: Chosen, offset: Offset = 0, limit: Limit = PAGE_SIZE):
        with _session() as session:
            found = generations(session, readable, chosen, offset=offset, limit=limit)
        shown = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit") and v}

        def page_url(at: int) -> str:
            return "?" + urlencode({**shown, "offset": at, "limit": limit})

        html = _render(
            "generations.html",
            page=found,
            filters=chosen,
            states=STATES,
            dag_ids=sorted(readable),
            newer=page_url(max(0, offset - limit)) if offset else None,
            older=page_url(offset + limit) if offset + limit < found.total else None,
        )
        return HTMLResponse(html, headers=_HEADERS)

    @app.get("/task", response_class=HTMLResponse)
    def task_tab(readable: Readable, dag_id: str, run_id: str, task_id: str, map_index: int = -1):
        if dag_id not in readable:
            raise HTTPException(403, "You may not read this DAG")
        chosen = Filters(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index)
        with _session() as session:
            found = generations(session, readable, chosen, limit=1)
            tries = _tries(session, dag_id, run_id, task_id, map_index)
        row = found.rows[0] if found.rows else None
        html = _render("task.html", row=row, tries=tries, task=(dag_id, run_id, task_id, map_index))
        return HTMLResponse(html, headers=_HEADERS)

    return app


def _render(template: str, **values: Any) -> str:
    return _templates.get_template(template).render(
        prefix=airflow_base_path() + PREFIX, task_url=task_instance_url, when=_when, **values
    )


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _session() -> Any:
    from airflow.utils.session import create_session

    return create_session()


def _tries(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[dict[str, Any]]:
    """Every try of the task instance, oldest first: Airflow keeps the earlier ones in its task instance history."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.taskinstancehistory import TaskInstanceHistory as TIH
    from sqlalchemy import select

    tries = []
    for model in (TIH, TI):
        query = select(model.try_number, model.state, model.start_date, model.end_date).where(
            model.dag_id == dag_id, model.run_id == run_id, model.task_id == task_id, model.map_index == map_index
        )
        for number, state, start, end in session.execute(query):
            tries.append({"try": number, "state": getattr(state, "value", state), "start": start, "end": end})
    return sorted(tries, key=lambda t: t["try"])
