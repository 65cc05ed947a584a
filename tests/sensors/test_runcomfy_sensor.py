"""RunComfyRequestSensor: the operators' return value, and the same behaviour as an Airflow sensor in every mode."""

from __future__ import annotations

import re
import time
from datetime import UTC

import pytest

from airflow_provider_runcomfy.exceptions import RunComfyInvalidInputError
from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook
from airflow_provider_runcomfy.schemas.pixverse import TEXT_TO_VIDEO
from airflow_provider_runcomfy.sensors.runcomfy import RunComfyRequestSensor
from airflow_provider_runcomfy.version_compat import AIRFLOW_V_3_1_PLUS


def submit() -> str:
    return RunComfyHook().submit(TEXT_TO_VIDEO, {"prompt": "a paper boat"}).request_id


def sensor(request_id: str, **kwargs) -> RunComfyRequestSensor:
    return RunComfyRequestSensor(task_id="s", request_id=request_id, model_id=TEXT_TO_VIDEO, **kwargs)


@pytest.mark.unit
def test_the_sensor_did_not_submit_the_job_so_it_cancels_nothing_by_default():
    assert sensor("r").cancel_on_kill is False
    assert sensor("r", cancel_on_kill=True).cancel_on_kill is True


@pytest.mark.unit
def test_a_bad_hook_parameter_fails_when_the_dag_is_parsed():
    with pytest.raises(RunComfyInvalidInputError, match="unknown parameter 'retry'"):
        sensor("r", hook_params={"retry": 1})


def test_a_poke_returns_what_the_operators_return(runcomfy_connection):
    runcomfy_connection.add_outcomes([{"outcome": "succeeded", "result_lag": 2}])
    request_id = submit()
    watcher = sensor(request_id)
    deadline = time.monotonic() + 30
    ti = _TaskInstance()
    while not (done := watcher.poke({"ti": ti})):  # the two lagging results are two pokes that say "not yet"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert done.xcom_value["request_id"] == request_id
    assert done.xcom_value["model_id"] == TEXT_TO_VIDEO
    assert done.xcom_value["output_urls"][0].endswith(".mp4")
    assert sum(e["fault"] == "result_lag" for e in runcomfy_connection.log) == 2
    assert runcomfy_connection.submits == 1
    # what it watches, in XCom once (as the operators say what they run): the RunComfy page reads it
    assert [key for key, _ in ti.pushed] == ["request_id", "runcomfy_job"]
    assert ti.pushed[1][1]["how"] == "watched" and ti.pushed[1][1]["request_id"] == request_id


class _TaskInstance:
    def __init__(self, start_date=None) -> None:
        self.start_date, self.pushed = start_date, []

    def xcom_push(self, key, value) -> None:
        self.pushed.append((key, value))


def test_a_poke_logs_the_queue_position_and_the_time_waited(runcomfy_connection, capfd):
    from datetime import datetime, timedelta

    runcomfy_connection.set_clock(queue_seconds=60, run_seconds=60)
    request_id = submit()
    ti = _TaskInstance(start_date=datetime.now(UTC) - timedelta(seconds=42))
    assert sensor(request_id).poke({"ti": ti}) is False
    assert re.search(
        rf"RunComfy request {request_id} is in_queue \(queue position 0\) after 4\d\.\ds", capfd.readouterr().out
    )


MODES = ("poke", "reschedule", "deferrable")
# What each situation's request is made of, as a local server outcome rule (None: a request that does not exist).
SITUATIONS = {
    "succeeds": {"outcome": "succeeded", "queue_polls": 1, "run_seconds": 0},
    "timeout": {"outcome": "succeeded", "queue_seconds": 3600},
    "fails_while_watched": {"outcome": "failed", "queue_polls": 1, "run_seconds": 0},
    "failed_before_start": {"outcome": "failed", "queue_seconds": 0, "run_seconds": 0},
    "missing": None,
}
# Wanted in every mode, as Airflow's own sensors behave: (state, tries) without and with soft_fail.
WANTED = {
    "succeeds": (("success", 1), ("success", 1)),
    "timeout": (("failed", 1), ("skipped", 1)),
    "fails_while_watched": (("failed", 1), ("skipped", 1)),
    "failed_before_start": (("failed", 1), ("skipped", 1)),
    "missing": (("failed", 1), ("skipped", 1)),
}


def test_every_mode_behaves_the_same_in_every_situation(sensor_sandbox, runcomfy_connection, capsys):
    hook, conf = RunComfyHook(), {}
    for mode in MODES:
        for situation, rule in SITUATIONS.items():
            for soft in ("hard", "soft"):
                task_id = f"{mode}__{situation}__{soft}"
                if rule is None:
                    conf[task_id] = f"missing-{task_id}"
                    continue
                runcomfy_connection.add_outcomes([rule])
                conf[task_id] = hook.submit(TEXT_TO_VIDEO, {"prompt": task_id}).request_id
    time.sleep(0.2)  # the failed_before_start jobs finish at once; make sure they have

    run = sensor_sandbox.dags_test("sensor_table", runcomfy_connection, conf=conf)

    cancels = {e["request_id"] for e in runcomfy_connection.log if e["call"] == "cancel"}
    table, rows = [], {}
    for situation in SITUATIONS:
        for index, soft in enumerate(("hard", "soft")):
            row = []
            for mode in MODES:
                task_id = f"{mode}__{situation}__{soft}"
                ti = run.task_instance(task_id)
                row.append((ti["state"], ti["try_number"], int(conf[task_id] in cancels)))
            rows[(situation, soft)] = row
            wanted = (*WANTED[situation][index], 0)
            table.append(f"| {situation} | {soft == 'soft'} | " + " | ".join(map(str, row)) + f" | {wanted} |")
    with capsys.disabled():
        print("\n| situation | soft_fail | " + " | ".join(MODES) + " | wanted (state, tries, cancels) |")
        print("\n".join(table))
    for (situation, soft), row in rows.items():
        wanted = (*WANTED[situation][soft == "soft"], 0)
        if not AIRFLOW_V_3_1_PLUS:
            # Airflow 3.0's `dags test` hands a reschedule-mode sensor its first reschedule date as a str, so
            # Airflow's BaseSensorOperator fails on its timeout check with a TypeError (apache/airflow #58679)
            # and the sensor is retried: the reschedule column is Airflow's, not ours, there.
            row = [cell for mode, cell in zip(MODES, row, strict=True) if mode != "reschedule"]
        assert row == [wanted] * len(row), (situation, soft, row, run.output[-3000:])
    assert runcomfy_connection.cancels == 0
    assert runcomfy_connection.submits == len(conf) - len(MODES) * 2  # the sensors themselves submitted nothing
    results = {run.xcom(f"{mode}__succeeds__hard")["output_urls"][0].rsplit("/", 2)[0] for mode in MODES}
    assert len(results) == 1  # all three modes returned the same shape from the same server
