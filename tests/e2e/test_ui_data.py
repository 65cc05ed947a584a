"""The RunComfy page's data, read from a real Airflow run's metadata database: live states of unfinished jobs
are asked of RunComfy for the rows shown only, once per few seconds."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

# In a child process with the sandbox's Airflow home: the page's query twice, the server's status calls counted
# after each (its control log), then once more after the cache has expired.
SCRIPT = """
import json, sys, time, requests
from airflow.utils.session import create_session
from airflow_provider_runcomfy.plugins import generations as g
def status_calls():
    return sum(e["call"] == "status" for e in requests.get(sys.argv[1] + "/_control/log", timeout=30).json())
counts, pages = [status_calls()], []
with create_session() as session:
    for pause in (0, 0, g._LIVE_SECONDS + 0.5):
        time.sleep(pause)
        pages.append(g.generations(session, {"ui_submits"}, limit=25).as_json())
        counts.append(status_calls())
print(json.dumps({"counts": counts, "pages": pages}))
"""


def test_live_states_are_asked_for_the_rows_shown_only_and_cached(test_dags_sandbox, runcomfy_server):
    runcomfy_server.set_clock(queue_seconds=600, run_seconds=1)  # the jobs stay queued while the page is read
    run = test_dags_sandbox.dags_test("ui_submits", runcomfy_server)
    assert run.returncode == 0, run.output[-3000:]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, runcomfy_server.url],
        env=test_dags_sandbox.env(runcomfy_server),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    counts, first = answer["counts"], answer["pages"][0]
    assert [b - a for a, b in itertools.pairwise(counts)] == [25, 0, 25]  # a page's worth, then cached, then again
    assert first["summary"]["jobs"] == 30 and len(first["generations"]) == 25
    assert {row["state"] for row in first["generations"]} == {"submitted"}
    assert all(row["detail"].startswith("in_queue, queue position ") for row in first["generations"])
    assert {row["prompt"] for row in first["generations"]} <= {f"clip {n}" for n in range(30)}
