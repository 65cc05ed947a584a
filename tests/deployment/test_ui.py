"""The RunComfy page and task tab (the provider's UI plugin) on the real api-server, after real DAG runs: who may
see what, filters, pages, escaping; then in headless Chromium as a person uses them (tests/deployment/browser.py)."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from airflow_provider_runcomfy.version_compat import AIRFLOW_V_3_1_PLUS

from .conftest import MARKUP_ERROR, MARKUP_PROMPT
from .harness import AirflowDeployment, wait_until

pytestmark = pytest.mark.timeout(600)


class Caller:
    """Someone calling the plugin's routes: a user's JWT, or none."""

    def __init__(self, deployment: AirflowDeployment, user: str | None = None) -> None:
        self.url = deployment.api.url
        self.headers = (
            {"Authorization": f"Bearer {deployment.api.token(user, deployment.passwords[user])}"} if user else {}
        )

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(f"{self.url}/runcomfy{path}", params=params, headers=self.headers, timeout=60)

    def rows(self, **params: Any) -> dict[str, Any]:
        answer = self.get("/api/generations", **params)
        assert answer.status_code == 200, answer.text
        return answer.json()


def test_every_route_refuses_a_caller_without_valid_credentials(deployment, ui_runs):
    paths = ["/", "/api/generations", f"/task?dag_id=ui_generations&run_id={ui_runs['ui_generations']}&task_id=submit"]
    anonymous, forged = Caller(deployment), Caller(deployment)
    forged.headers = {"Authorization": "Bearer not-a-token"}
    for path in paths:
        assert anonymous.get(path).status_code == 401, path
        assert forged.get(path).status_code == 403, path
        cookie = requests.get(f"{deployment.api.url}/runcomfy{path}", cookies={"_token": "forged"}, timeout=60)
        assert cookie.status_code == 403, path


def test_a_user_sees_only_the_dags_they_may_read(deployment, ui_runs):
    admin, alice = Caller(deployment, "admin"), Caller(deployment, "alice")
    assert {r["dag_id"] for r in admin.rows(limit=100)["generations"]} >= {"ui_generations", "ui_failure"}
    seen = alice.rows(limit=100)
    assert {r["dag_id"] for r in seen["generations"]} == {"ui_generations"}
    assert seen["summary"]["jobs"] == len(seen["generations"]) == 5  # 3 mapped, the submit, the sensor
    assert alice.rows(dag_id="ui_failure")["generations"] == []
    failure = f"/task?dag_id=ui_failure&run_id={ui_runs['ui_failure']}&task_id=generate"
    assert alice.get(failure).status_code == 403
    assert admin.get(failure).status_code == 200
    # Airflow's own API answers alice the same: the plugin asks the same auth manager
    own = requests.get(f"{deployment.api.url}/api/v2/dags/ui_failure", headers=alice.headers, timeout=60)
    assert own.status_code == 403


def test_rows_say_what_each_task_made_and_how_its_job_ended(deployment, ui_runs):
    admin = Caller(deployment, "admin")
    rows = admin.rows(dag_id="ui_generations", run_id=ui_runs["ui_generations"])["generations"]
    by_task = {(r["task_id"], r["map_index"]): r for r in rows}
    assert sorted(by_task) == [("generate", 0), ("generate", 1), ("generate", 2), ("submit", -1), ("watch", -1)]
    for index in range(3):
        row = by_task["generate", index]
        assert (row["state"], row["how"]) == ("succeeded", "submitted")
        assert row["model_id"] == "pixverse/pixverse/v5.5/text-to-video"
        assert row["prompt"] in ("a paper boat on a pond", MARKUP_PROMPT, "a kite over the dunes")
        assert row["cost"] is not None and row["cost"] > 0
        assert row["preview"] == {"url": row["output_urls"][0], "kind": "video"}
        [file] = row["files"]
        assert file["uri"].startswith("file://") and len(file["sha256"]) == 64
        assert row["elapsed_seconds"] > 0 and row["finished_at"] >= row["attached_at"]
    assert by_task["submit", -1]["state"] == "submitted"
    assert by_task["submit", -1]["detail"] == "completed"  # RunComfy's live state, asked at page load
    watch = by_task["watch", -1]
    assert (watch["state"], watch["how"]) == ("succeeded", "watched")
    assert watch["request_id"] == by_task["submit", -1]["request_id"]
    assert watch["prompt"] == "a lantern festival, watched by a sensor"  # the submitting task's record
    [failed] = admin.rows(dag_id="ui_failure", run_id=ui_runs["ui_failure"])["generations"]
    assert (failed["state"], failed["task_state"]) == ("failed", "failed")
    assert MARKUP_ERROR in failed["detail"] and failed["preview"] is None


def test_filters_pages_and_the_summary(deployment, ui_runs):
    admin = Caller(deployment, "admin")
    mine = {"dag_id": "ui_generations", "run_id": ui_runs["ui_generations"]}
    assert [r["task_id"] for r in admin.rows(dag_id="ui_failure", state="failed")["generations"]] == ["generate"]
    assert len(admin.rows(**mine, state="succeeded")["generations"]) == 4
    assert len(admin.rows(**mine, state="submitted")["generations"]) == 1
    assert admin.rows(**mine, model_id="runcomfy-local/test/text-to-image")["generations"] == []
    today = datetime.now(UTC).date()
    assert len(admin.rows(**mine, since=today.isoformat())["generations"]) == 5
    assert admin.rows(**mine, until=(today - timedelta(days=1)).isoformat())["generations"] == []
    assert admin.get("/api/generations", state="bogus").status_code == 422

    every = admin.rows(**mine, limit=100)
    pages = [admin.rows(**mine, limit=2, offset=offset)["generations"] for offset in (0, 2, 4)]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [r["request_id"] for page in pages for r in page] == [r["request_id"] for r in every["generations"]]
    attached = [r["attached_at"] for r in every["generations"]]
    assert attached == sorted(attached, reverse=True)  # newest first
    summary = every["summary"]
    assert (summary["jobs"], summary["succeeded"], summary["succeeded_percent"]) == (5, 4, 80.0)
    assert summary["spend_usd"] == pytest.approx(sum(r["cost"] or 0 for r in every["generations"]))


def test_pages_escape_prompts_and_errors_and_hold_no_secret(deployment, ui_runs):
    admin = Caller(deployment, "admin")
    pages = [
        admin.get("/", dag_id="ui_generations"),
        admin.get("/", dag_id="ui_failure"),
        admin.get("/task", dag_id="ui_failure", run_id=ui_runs["ui_failure"], task_id="generate"),
        *(
            admin.get(
                "/task", dag_id="ui_generations", run_id=ui_runs["ui_generations"], task_id="generate", map_index=i
            )
            for i in range(3)
        ),
    ]
    for page in pages:
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert deployment.token not in page.text
    listing, failure, failure_tab = (p.text for p in pages[:3])
    assert html.escape(MARKUP_PROMPT, quote=False) in listing and MARKUP_PROMPT not in listing
    assert html.escape(MARKUP_ERROR, quote=False) in failure and MARKUP_ERROR not in failure
    assert html.escape(MARKUP_ERROR, quote=False) in failure_tab
    tab = next(p.text for p in pages[3:] if html.escape(MARKUP_PROMPT, quote=False) in p.text)
    assert "<video" in tab and "Timeline" in tab and MARKUP_PROMPT not in tab


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="external views (the page in Airflow's UI) need Airflow 3.1+")
def test_airflow_lists_the_page_and_the_task_tab(deployment):
    plugins = deployment.api.request("GET", "/plugins")["plugins"]
    [plugin] = [p for p in plugins if p["name"] == "runcomfy"]
    views = {view["destination"]: view for view in plugin["external_views"]}
    assert views["nav"]["href"] == "/runcomfy/" and views["nav"]["url_route"] == "runcomfy"
    assert views["task_instance"]["href"].startswith("/runcomfy/task?dag_id={DAG_ID}&run_id={RUN_ID}")


def test_a_waiting_task_shows_its_jobs_live_state(deployment, ui_runs):
    # The job waits in RunComfy's queue until released. The server is not reset: the other runs' outputs stay
    # there for the browser test to play.
    server = deployment.runcomfy
    server.clock(queue_seconds=600, run_seconds=0.5)
    admin = Caller(deployment, "admin")
    run_id = deployment.api.trigger("ui_failure")
    mine = {"dag_id": "ui_failure", "run_id": run_id}
    deferred = lambda: [ti for ti in deployment.api.task_instances(**mine) if ti["state"] == "deferred"]  # noqa: E731
    wait_until(deferred, timeout=120, what="the task to defer")
    [row] = admin.rows(**mine)["generations"]
    assert (row["state"], row["detail"], row["finished_at"]) == ("queued", "queue position 0", None)
    assert [r["request_id"] for r in admin.rows(**mine, state="active")["generations"]] == [row["request_id"]]
    try:
        assert server.release() == 1
    finally:
        server.clock(queue_seconds=0.5, run_seconds=0.5)
    assert deployment.api.wait_run(**mine) == "success"
    [row] = admin.rows(**mine)["generations"]
    assert (row["state"], row["how"]) == ("succeeded", "submitted")
