"""The fault matrix: every fault the RunComfy API (or a proxy in front of it) can throw, met by a real task in a
real deployment, in deferrable and in sync mode. Each case is one DAG run of a one-task DAG: the server's rules
are global and consumed in order, so they meet exactly that task.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(600)

MODES = ("deferrable", "sync")
ROWS: dict[tuple[str, str], list[Any]] = {}


def retry_after_was_honoured(seconds: float) -> Callable[..., str]:
    """Each call after a 429 came at least ``Retry-After`` seconds later (the hook's backoff would be ~1 s)."""

    def check(deployment, dag_id, run_id, log) -> str:
        gaps = [
            later["time"] - entry["time"]
            for i, entry in enumerate(log)
            if entry["fault"] == "429"
            for later in log[i + 1 :][:1]
        ]
        assert gaps and min(gaps) >= seconds - 0.05, gaps
        return f"next call >= Retry-After ({min(gaps):.1f} s)"

    return check


def statuses_seen(*values: str) -> Callable[..., str]:
    """The undocumented status values reached the poller: it logged each, and kept waiting."""

    def check(deployment, dag_id, run_id, log) -> str:
        text = deployment.task_log(dag_id, run_id, "clip") + deployment.trigger_logs(dag_id, run_id, "clip")
        for value in values:
            assert f"is {value}" in text, f"no poll saw {value!r}"
        return "poller logged " + ", ".join(repr(v) for v in values)

    return check


def reattached(deployment, dag_id, run_id, log) -> str:
    text = deployment.task_log(dag_id, run_id, "clip", 2)
    assert "Reconnecting to existing job" in text or "Job already completed successfully" in text
    return "try 2 reattached to the same request"


@dataclass(frozen=True)
class Case:
    name: str
    faults: tuple[dict[str, Any], ...] = ()
    outcomes: tuple[dict[str, Any], ...] = ()
    variant: str = ""  # the DAG: "" retries once, "_noretry" never, "_timeout" gives up after 4 s
    clock: tuple[float, float] = (0.5, 0.5)
    state: str = "success"
    tries: int = 1
    submits: int = 1
    cancels: int = 0
    lost: int = 0  # jobs created by a submit whose answer never arrived
    error: str | None = None  # in the exception of the last try
    first_error: str | None = None  # in the exception of a first try that failed and was retried
    check: Callable[..., str] | None = field(default=None, compare=False)

    @property
    def hits(self) -> Counter:
        """How often the server must have applied each fault."""
        counts: Counter = Counter()
        for rule in self.faults:
            if "fault" in rule:
                counts[rule["fault"]] += rule.get("times", 1)
        return counts


CASES = [
    Case(
        "429 with Retry-After on polls",
        ({"call": "status", "fault": "429", "retry_after": 2, "times": 2, "skip": 1},),
        check=retry_after_was_honoured(2),
    ),
    Case(
        "429 with Retry-After on the submit (no job created: sent again)",
        ({"call": "submit", "fault": "429", "retry_after": 1},),
        check=retry_after_was_honoured(1),
    ),
    Case(
        "5xx burst on polls (500, 502 HTML, 503 HTML)",
        (
            {"call": "status", "fault": "500", "skip": 1},
            {"call": "status", "fault": "502"},
            {"call": "status", "fault": "503"},
        ),
    ),
    Case("5xx burst on the result (500 x2)", ({"call": "result", "fault": "500", "times": 2},)),
    Case("503 on the submit", ({"call": "submit", "fault": "503"},), tries=2, first_error="RunComfyServerError"),
    Case("dropped connection on polls (x2)", ({"call": "status", "fault": "drop", "times": 2, "skip": 1},)),
    Case("dropped connection on the result", ({"call": "result", "fault": "drop"},)),
    Case(
        "dropped connection on the submit (answer lost)",
        ({"call": "submit", "fault": "drop"},),
        variant="_noretry",
        state="failed",
        lost=1,
        error="the request may have reached the server",
    ),
    Case(
        "slow answers on polls (3 s, x2)",
        ({"call": "status", "fault": "slow", "delay": 3, "times": 2, "skip": 1},),
        clock=(10, 1),  # still queued after the first slow answer, so a second poll follows
    ),
    Case("slow submit (3 s)", ({"call": "submit", "fault": "slow", "delay": 3},)),
    Case(
        "unknown status values (pending, processing)",
        ({"status_value": "pending", "times": 2}, {"status_value": "processing"}),
        clock=(3, 1),
        check=statuses_seen("pending", "processing"),
    ),
    Case(
        "error code in a 200 answer on a poll",
        ({"call": "status", "fault": "http200_error", "skip": 1},),
        clock=(3, 1),
        tries=2,
        first_error="RunComfy answered: Simulated",
        check=reattached,
    ),
    Case(
        "job completed, but its result says failed",
        outcomes=({"outcome": "failed"},),
        variant="_noretry",
        state="failed",
        error="RunComfy request failed",
    ),
    Case(
        "job still queued at the task's timeout (4 s)",
        variant="_timeout",
        clock=(30, 1),
        state="failed",
        cancels=1,
        error="it was still queued and has been cancelled",
    ),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_fault_case_ends_in_the_right_state_with_one_submit(deployment, server, case, mode):
    server.reset(*case.clock)
    if case.faults:
        server.control.faults(*case.faults)
    if case.outcomes:
        server.control.outcomes(*case.outcomes)
    dag_id = f"fault_{mode}{case.variant}"
    started = time.monotonic()

    run_id, run_state = deployment.api.run(dag_id, timeout=240)

    seconds = time.monotonic() - started
    [ti] = deployment.api.task_instances(dag_id, run_id)
    log, stats = server.control.log(), server.control.stats()
    assert (run_state, ti["state"], ti["try_number"]) == (case.state, case.state, case.tries)
    assert (stats["submits"], stats["cancels"]) == (case.submits, case.cancels)
    assert Counter(entry["fault"] for entry in log if entry["fault"]) == case.hits  # every fault really happened
    assert server.queued_jobs(log) == []
    assert len(server.lost(log)) == case.lost
    errors = deployment.task_errors(dag_id, run_id, "clip", case.tries)
    if case.error:
        assert any(case.error in error for error in errors), errors
    else:
        assert errors == []
    notes = []
    if case.first_error:
        first = deployment.task_errors(dag_id, run_id, "clip", 1)
        assert any(case.first_error in error for error in first), first
        notes.append(f"try 1 failed: {case.first_error}")
    if case.check:
        notes.append(case.check(deployment, dag_id, run_id, log))
    if case.lost:
        notes.append(f"{case.lost} job created whose id never reached Airflow")
    if case.error:
        notes.append(f"error: {case.error}")
    injected = ", ".join(_describe(rule) for rule in case.faults + case.outcomes) or f"clock {case.clock[0]:g} s queue"
    ROWS[case.name, mode] = [
        case.name,
        mode,
        injected,
        ti["state"],
        ti["try_number"],
        stats["submits"],
        stats["cancels"],
        f"{seconds:.1f}",
        "; ".join(notes) or "-",
    ]


def test_fault_matrix_is_complete(report):
    """Every case ran in both modes and passed; the report gets the matrix (runs after the cases above)."""
    missing = [(case.name, mode) for case in CASES for mode in MODES if (case.name, mode) not in ROWS]
    assert missing == []
    rows = [ROWS[case.name, mode] for case in CASES for mode in MODES]
    report.record("faults", cases=len(CASES), rows=rows, checked=len(rows), duplicates=0)


def test_a_lost_submit_answer_is_not_retried_even_with_retries(deployment, server, report):
    """A submit whose answer was lost may have created a paid job: the task fails at once instead of retrying."""
    server.control.faults({"call": "submit", "fault": "drop"})
    run_id, state = deployment.api.run("fault_sync", timeout=240)
    [ti] = deployment.api.task_instances("fault_sync", run_id)
    submits = server.control.stats()["submits"]
    assert (state, ti["state"], ti["try_number"]) == ("failed", "failed", 1)  # retries=1, yet no second try
    assert submits == 1
    report.environment["lost_answer_jobs"] = submits


def _describe(rule: dict[str, Any]) -> str:
    kind = rule.get("fault") or rule.get("outcome") or f"status {rule['status_value']!r}"
    parts = [f"{rule.get('call', 'job')} {kind}"]
    if rule.get("times", 1) > 1:
        parts.append(f"x{rule['times']}")
    if "retry_after" in rule:
        parts.append(f"Retry-After {rule['retry_after']}")
    if "delay" in rule:
        parts.append(f"{rule['delay']} s")
    if rule.get("skip"):
        parts.append(f"skip {rule['skip']}")
    return " ".join(parts)
