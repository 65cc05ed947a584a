"""Secrets: after every other deployment test, the API token, and the signature of any signed input URL, must
appear nowhere Airflow keeps text: task and trigger logs, component output, XCom, rendered template fields,
exception text, the whole metadata database.
A canary proves the scan sees a leak when there is one. It needs what the other tests left, so it runs last
(see ``conftest.pytest_collection_modifyitems``) and fails if run alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import TOKEN

pytestmark = pytest.mark.timeout(600)


# The token, and what every signed S3 URL carries (SigV2 and SigV4): the examples sign their inputs.
SECRETS = re.compile(rf"{re.escape(TOKEN)}|Signature=|X-Amz-Signature|X-Amz-Credential")


def count(text: str) -> int:
    return len(SECRETS.findall(text))


def scan_files(paths: list[Path]) -> tuple[int, int, dict[str, int]]:
    """Bytes read and occurrences per file (only files with any)."""
    total, hits = 0, {}
    for path in paths:
        text = path.read_text(errors="replace")
        total += len(text)
        if found := count(text):
            hits[str(path)] = found
    return len(paths), total, hits


def test_the_api_token_appears_nowhere(deployment, report):
    # The canary: a leak planted where task logs live is found by the same scan, then removed.
    canary = deployment.home / "logs" / "canary.log"
    canary.write_text(f"leaked: {TOKEN}\n")
    assert scan_files(deployment.log_files())[2] == {str(canary): 1}
    canary.unlink()

    files, read, file_hits = scan_files(deployment.log_files())
    task_logs = [p for p in deployment.log_files() if "/dag_id=" in str(p)]
    trigger_logs = [p for p in task_logs if ".trigger." in p.name]
    exceptions = [
        detail.get("exc_value", "")
        for path in task_logs
        for line in path.read_text(errors="replace").splitlines()
        if line.startswith("{") and '"error_detail"' in line
        for detail in json.loads(line).get("error_detail") or []
    ]
    xcoms = deployment.sql("SELECT value::text FROM xcom")
    rendered = deployment.sql("SELECT rendered_fields::text FROM rendered_task_instance_fields")
    import_errors = deployment.sql("SELECT stacktrace FROM import_error")
    dump = deployment.postgres.pg_dump()
    request_ids = [value for (value,) in xcoms if re.fullmatch(r'"[0-9a-f-]{36}"', value or "")]

    # The scan reads what it claims to: XCom request ids and rendered prompts are in the dump it searches.
    assert len(xcoms) >= 100 and len(rendered) >= 100 and len(exceptions) >= 20 and trigger_logs
    assert request_ids and all(value.strip('"') in dump for value in request_ids[:50])
    assert "a fox in the snow" in dump and "product shot number 99" in dump
    hits = {
        "files": sum(file_hits.values()),
        "xcom": sum(count(value or "") for (value,) in xcoms),
        "rendered": sum(count(value or "") for (value,) in rendered),
        "exceptions": sum(count(text) for text in exceptions),
        "import_errors": sum(count(text or "") for (text,) in import_errors),
        "dump": count(dump),
    }
    assert file_hits == {}
    assert hits == dict.fromkeys(hits, 0)
    report.record(
        "secrets",
        hits=sum(hits.values()),
        rows=[
            [
                "log files: task, trigger, dag-processor logs; scheduler, triggerer, dag-processor, api-server, "
                "RunComfy server and PostgreSQL output",
                f"{files} files, {read / 1e6:.1f} MB",
                hits["files"],
            ],
            ["  of which task logs / trigger logs", f"{len(task_logs)} / {len(trigger_logs)} files", hits["files"]],
            ["exception text in task logs", f"{len(exceptions)} exceptions", hits["exceptions"]],
            ["XCom values", f"{len(xcoms)} rows", hits["xcom"]],
            ["rendered template fields", f"{len(rendered)} rows", hits["rendered"]],
            ["DAG import errors", f"{len(import_errors)} rows", hits["import_errors"]],
            ["the whole metadata database (`pg_dump --data-only`)", f"{len(dump) / 1e6:.1f} MB", hits["dump"]],
        ],
    )
