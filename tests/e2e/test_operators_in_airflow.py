"""The operators, sensor and trigger inside a real Airflow run (`airflow dags test`), over real HTTP."""

from __future__ import annotations

import hashlib
import re

import pytest

from airflow_provider_runcomfy.testing.server import SAMPLE_SHA256


def test_the_readmes_quick_start_survives_a_flaky_api_and_stores_the_mp4(test_dags_sandbox, runcomfy_server, tmp_path):
    # A gateway that throttles, fails and answers too early: every fault is one the hook retries or waits out.
    runcomfy_server.add_faults(
        [
            {"call": "submit", "fault": "429", "retry_after": 0, "times": 2},  # a 5xx on a submit is not resent
            {"call": "status", "fault": "502", "times": 2},
            {"call": "result", "fault": "500"},
        ]
    )
    runcomfy_server.add_outcomes([{"outcome": "succeeded", "result_lag": 1, "times": 4}])
    run = test_dags_sandbox.dags_test(
        "readme_dag",
        runcomfy_server,
        AIRFLOW_VAR_CLIPS_DIR=tmp_path.as_uri(),
        AIRFLOW_VAR_FIRST_FRAME=f"{runcomfy_server.url}/files/sample.png",
    )

    assert run.returncode == 0, run.output[-4000:]
    faults = {e["fault"] for e in runcomfy_server.log if e["fault"]}
    assert {"429", "502", "500", "result_lag"} <= faults  # every fault really hit
    for task_id in ("clip", "animate", "any_model", "wait", "download"):
        result = run.xcom(task_id)
        assert result["status"] == "succeeded"
        assert result["output_urls"] and result["output_urls"][0].endswith(".mp4")
    for task_id in ("clip", "animate", "any_model", "submit"):
        assert run.xcom(task_id, "request_id")
        assert run.task_instance(task_id)["try_number"] == 1
    assert run.xcom("wait")["request_id"] == run.xcom("download")["request_id"] == run.xcom("submit", "request_id")
    # clip, animate, any_model and submit submit once each, although two submits were refused first.
    assert runcomfy_server.submits == 4
    bodies = [e["body"] for e in runcomfy_server.log if e["call"] == "submit" and not e["fault"]]
    assert {
        "prompt": "A product shot of a red shoe, slow turn, studio light",
        "aspect_ratio": "9:16",
        "resolution": "1080p",
        "duration": 8,
    } in bodies
    [file] = run.xcom("download")["files"]
    assert run.xcom("publish") == file["uri"] == (tmp_path / f"{run.xcom('submit', 'request_id')}_0.mp4").as_uri()
    stored = (tmp_path / file["uri"].rsplit("/", 1)[1]).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == file["sha256"] == SAMPLE_SHA256
    assert [p.name for p in tmp_path.iterdir()] == [file["uri"].rsplit("/", 1)[1]]  # nothing half-written beside it
    assert run.state_variables == []


@pytest.mark.parametrize(
    ("dag_id", "task_ids", "decision"),
    [
        ("crash_while_running_dag", ("generate_sync", "generate_deferrable"), "Reconnecting to existing job"),
        ("crash_when_done_dag", ("generate_after_done",), "Job already completed successfully"),
    ],
)
def test_a_retry_after_a_crash_reattaches_instead_of_paying_twice(
    test_dags_sandbox, runcomfy_server, dag_id, task_ids, decision
):
    # Each job stays queued until its status has been read twice, however slow the machine: a try that died before
    # reading it finds it still queued on retry (the resume check is the first read).
    runcomfy_server.add_outcomes({"outcome": "succeeded", "queue_polls": 2, "times": len(task_ids)})
    run = test_dags_sandbox.dags_test(dag_id, runcomfy_server)

    assert run.returncode == 0, run.output[-4000:]
    assert runcomfy_server.submits == len(task_ids)  # one per task, none for the retries
    submitted = {e["request_id"] for e in runcomfy_server.log if e["call"] == "submit"}
    squeezed = re.sub(r"[\s│]+", "", run.output)  # some minors print the error in a box, wrapped
    assert set(re.findall(r"simulatedcrashaftersubmitting([0-9a-f-]{36})", squeezed)) == submitted
    for task_id in task_ids:
        result = run.xcom(task_id)
        assert result["status"] == "succeeded"
        assert result["request_id"] in submitted
        assert result["output_urls"]
        assert run.xcom(task_id, "request_id") == result["request_id"]
    decided = {rid for rid in submitted if re.search(re.escape(decision) + r"[^\n]*" + rid, run.output)}
    assert decided == submitted  # each retry decided about its own task's request
    assert run.state_variables == []  # before 3.3 the store is a Variable, deleted when the task succeeded


def test_every_path_waits_out_a_result_that_lags_the_status(test_dags_sandbox, runcomfy_server):
    # Each job's first two result calls after it finished still say in_progress (the status says completed).
    runcomfy_server.add_outcomes([{"outcome": "succeeded", "result_lag": 2, "times": 3}])
    run = test_dags_sandbox.dags_test("four_paths_dag", runcomfy_server)

    assert run.returncode == 0, run.output[-4000:]
    tasks = ("sync_operator", "deferrable_operator", "poke_sensor", "deferrable_sensor")
    assert {task_id: run.state(task_id) for task_id in tasks} == dict.fromkeys(tasks, "success")
    submitted = [e["request_id"] for e in runcomfy_server.log if e["call"] == "submit"]
    assert len(submitted) == 3  # one per operator; the sensors watch the one of `submit`
    lagged = {e["request_id"] for e in runcomfy_server.log if e["fault"] == "result_lag"}
    assert lagged == set(submitted)  # every job's result really lagged
    for task_id in tasks:
        assert run.xcom(task_id)["status"] == "succeeded"
        assert run.task_instance(task_id)["try_number"] == 1
    watched = run.xcom("submit", "request_id")
    assert run.xcom("poke_sensor")["request_id"] == run.xcom("deferrable_sensor")["request_id"] == watched


def test_a_failure_that_would_recur_is_not_retried(test_dags_sandbox, runcomfy_server):
    runcomfy_server.add_faults([{"call": "submit", "fault": "400"}, {"call": "submit", "fault": "422"}])
    run = test_dags_sandbox.dags_test("deterministic_failures_dag", runcomfy_server)

    tasks = {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in run.task_instances}
    assert tasks == dict.fromkeys(tasks, ("failed", 1)) and len(tasks) == 8, tasks  # retries=2 left unused
    submits = [e for e in runcomfy_server.log if e["call"] == "submit"]
    assert sorted(e["model_id"] for e in submits) == ["acme/rejected_inputs/v1", "acme/unknown_model/v1"]
    assert runcomfy_server.submits == 0  # no job was created, so nothing was paid
    assert not [e for e in runcomfy_server.log if e["call"] not in ("submit", "catalog")]  # "None" never asked for
    for says in ("duration", "prompt", "would leave output_dir", "nosuchscheme", "rendered to nothing"):
        assert says in run.output, says


def test_a_job_that_fails_on_the_server_fails_its_task(test_dags_sandbox, runcomfy_server):
    runcomfy_server.add_outcomes([{"outcome": "failed", "times": 2}])  # the status call says "completed"
    run = test_dags_sandbox.dags_test("single_clip_dag", runcomfy_server)

    assert run.returncode != 0
    assert (run.state("clip_sync"), run.state("clip_deferrable")) == ("failed", "failed")
    submitted = [e["request_id"] for e in runcomfy_server.log if e["call"] == "submit"]
    assert len(submitted) == 2
    squeezed = re.sub(r"[\s│]+", "", run.output)  # some minors print the error in a box, wrapped
    for request_id in submitted:
        assert f"request_id{request_id}" in squeezed
    assert "RunComfyrequestfailed" in squeezed
    assert not [r for r in run.xcoms if r["key"] == "return_value"]
    assert run.state_variables == []  # deleted: no retry is left to read it


def test_a_download_broken_half_way_leaves_no_file_and_the_retry_stores_it(
    test_dags_sandbox, runcomfy_server, tmp_path
):
    runcomfy_server.add_faults([{"call": "file", "fault": "drop"}])
    run = test_dags_sandbox.dags_test(
        "storage_retry_dag", runcomfy_server, AIRFLOW_VAR_RUNCOMFY_OUTPUT_DIR=tmp_path.as_uri()
    )

    assert run.returncode == 0, run.output[-4000:]
    assert "IncompleteRead" in run.output  # the first try really was cut off
    assert runcomfy_server.submits == 1  # the retry reattached to the finished job
    assert sum(e["call"] == "file" for e in runcomfy_server.log) == 2
    [file] = run.xcom("clip")["files"]
    assert [p.name for p in tmp_path.iterdir()] == [file["uri"].rsplit("/", 1)[1]]  # no partial file anywhere
    assert hashlib.sha256((tmp_path / file["uri"].rsplit("/", 1)[1]).read_bytes()).hexdigest() == file["sha256"]
    assert file["sha256"] == SAMPLE_SHA256
