"""Catalog checks and prices inside a real Airflow run (`airflow dags test`) against the local server."""

from __future__ import annotations

import re


def test_budget_and_schema_refusals_send_no_submit_and_a_priced_job_reports_both_costs(
    test_dags_sandbox, runcomfy_server
):
    run = test_dags_sandbox.dags_test("catalog_dag", runcomfy_server)

    assert (run.state("over_budget"), run.state("bad_inputs"), run.state("priced")) == ("failed", "failed", "success")
    submits = [e for e in runcomfy_server.log if e["call"] == "submit"]
    assert [e["model_id"] for e in submits] == ["runcomfy-local/test/text-to-image"]  # only the priced job's
    squeezed = re.sub(r"[\s│]+", " ", run.output)  # some minors print the error in a box, wrapped
    assert "estimated at $0.4800, over max_cost_usd=$0.1: not submitted" in squeezed
    assert "num_images: got 'two'; allowed: integer >= 1 <= 4" in squeezed
    assert "colour: unknown field (got 1)" in squeezed
    priced = run.xcom("priced")
    assert priced["estimated_cost"] == 0.04 and priced["cost"] == 0.35 and len(priced["output_urls"]) == 2
    assert [e["call"] for e in runcomfy_server.log].count("balance") == 1


def test_with_the_catalog_down_the_run_proceeds_with_one_warning(test_dags_sandbox, runcomfy_server):
    runcomfy_server.set_catalog_available(False)
    run = test_dags_sandbox.dags_test("catalog_down_dag", runcomfy_server)

    assert run.returncode == 0, run.output[-4000:]
    assert run.xcom("unchecked")["status"] == "succeeded" and "estimated_cost" not in run.xcom("unchecked")
    # One warning: a record is one line (Airflow 3.0's `dags test` prints each twice, in two formats, same instant)
    warnings = {
        re.search(r"\d\d:\d\d:\d\d[.,]\d{3}", line).group().replace(",", ".")
        for line in run.output.splitlines()
        if "catalog could not be read" in line
    }
    assert len(warnings) == 1, warnings
    assert runcomfy_server.submits == 1
