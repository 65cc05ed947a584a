"""The model operators before a paid submit: inputs against the catalog schema, the price, max_cost_usd, balance."""

from __future__ import annotations

import pytest
from test_runcomfy_operators import _context  # a task instance and store, in memory (same folder)

from airflow_provider_runcomfy.exceptions import (
    RunComfyError,
    RunComfyInsufficientBalanceError,
    RunComfyInvalidInputError,
)
from airflow_provider_runcomfy.operators.runcomfy import RunComfyModelOperator, RunComfyTextToVideoOperator
from airflow_provider_runcomfy.testing.server import LOCAL_TEXT_TO_IMAGE

VARIABLE_PRICE = "runcomfy-local/test/variable-price-video"


def catalog_calls(server) -> int:
    return sum(entry["call"] == "catalog" for entry in server.log)


def _image(**kwargs) -> RunComfyModelOperator:
    inputs = kwargs.pop("inputs", {"prompt": "a red shoe"})
    return RunComfyModelOperator(task_id="t", model_id=LOCAL_TEXT_TO_IMAGE, inputs=inputs, poll_interval=0.05, **kwargs)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"catalog_check": "strict"}, "catalog_check: got 'strict'; allowed: warn, fail, off"),
        ({"max_cost_usd": -1}, "max_cost_usd"),
    ],
)
def test_bad_settings_fail_when_the_dag_is_parsed(kwargs, says):
    with pytest.raises(RunComfyInvalidInputError, match=says):
        _image(**kwargs)


def test_a_wrong_type_and_an_unknown_field_are_refused_naming_both_before_the_submit(runcomfy_connection):
    op = _image(inputs={"prompt": "shoe", "num_images": "two", "colour": "red"})
    with pytest.raises(RunComfyInvalidInputError) as refused:
        op.execute(_context())
    message = str(refused.value)
    assert "num_images: got 'two'; allowed: integer >= 1 <= 4" in message
    assert "colour: unknown field (got 'red'); known fields: prompt, seed, num_images" in message
    assert runcomfy_connection.submits == 0


def test_the_catalog_is_read_once_per_model_and_the_estimate_returned_beside_the_cost(runcomfy_connection):
    first = _image(inputs={"prompt": "shoe", "num_images": 3}, include_cost=True).execute(_context())
    second = _image(include_cost=True).execute(_context())
    assert (first["estimated_cost"], second["estimated_cost"]) == (pytest.approx(0.06), pytest.approx(0.02))
    assert first["cost"] == second["cost"] == 0.35  # the local server's real cost
    assert len(first["output_urls"]) == 3 and runcomfy_connection.submits == 2
    assert catalog_calls(runcomfy_connection) == 1


def test_max_cost_usd_refuses_a_job_estimated_above_it_with_no_submit(runcomfy_connection):
    op = RunComfyTextToVideoOperator(task_id="t", prompt="hi", duration=8, max_cost_usd=0.10)
    with pytest.raises(RunComfyInvalidInputError, match=r"estimated at \$0\.4800, over max_cost_usd=\$0\.1"):
        op.execute(_context())
    assert runcomfy_connection.submits == 0
    within = RunComfyTextToVideoOperator(task_id="t", prompt="hi", max_cost_usd=0.30, poll_interval=0.05)
    assert within.execute(_context())["estimated_cost"] == pytest.approx(0.30)


def test_max_cost_usd_refuses_a_job_that_cannot_be_estimated(runcomfy_connection):
    op = RunComfyModelOperator(task_id="t", model_id=VARIABLE_PRICE, inputs={"prompt": "x"}, max_cost_usd=5)
    with pytest.raises(RunComfyInvalidInputError, match="no fixed rule"):
        op.execute(_context())
    runcomfy_connection.set_catalog_available(False)
    with pytest.raises(RunComfyError, match="catalog could not be read") as down:
        _image(max_cost_usd=5, hook_params={"max_retries": 0}).execute(_context())
    assert not isinstance(down.value, RunComfyInvalidInputError)  # a retry may find the catalog back
    assert runcomfy_connection.submits == 0


def test_a_catalog_down_warns_once_and_submits_unless_told_to_fail(runcomfy_connection, capfd):
    runcomfy_connection.set_catalog_available(False)
    result = _image(hook_params={"max_retries": 0}).execute(_context())
    assert result["status"] == "succeeded" and "estimated_cost" not in result
    assert capfd.readouterr().out.count("catalog could not be read") == 1  # Airflow's task log goes to stdout
    with pytest.raises(RunComfyError, match="catalog_check='fail'"):
        _image(catalog_check="fail", hook_params={"max_retries": 0}).execute(_context())
    assert runcomfy_connection.submits == 1


def test_a_model_the_catalog_does_not_list(runcomfy_connection, capfd):
    op = RunComfyModelOperator(task_id="t", model_id="acme/unlisted/v1", inputs={"x": 1}, poll_interval=0.05)
    assert "estimated_cost" not in op.execute(_context())
    assert "not in RunComfy's catalog: its inputs are submitted unchecked" in capfd.readouterr().out
    strict = RunComfyModelOperator(task_id="t", model_id="acme/unlisted/v1", inputs={"x": 1}, catalog_check="fail")
    with pytest.raises(RunComfyInvalidInputError, match="not in RunComfy's catalog"):
        strict.execute(_context())
    assert runcomfy_connection.submits == 1


def test_catalog_check_off_asks_nothing(runcomfy_connection):
    assert "estimated_cost" not in _image(catalog_check="off").execute(_context())
    assert catalog_calls(runcomfy_connection) == 0


def test_check_balance_refuses_a_job_the_account_cannot_pay(runcomfy_connection):
    runcomfy_connection.set_balance(0.01)
    with pytest.raises(RunComfyInsufficientBalanceError, match=r"estimated at \$0\.0200 but the account holds \$0\.01"):
        _image(check_balance=True).execute(_context())
    assert runcomfy_connection.submits == 0
    runcomfy_connection.set_balance(1.0)
    assert _image(check_balance=True).execute(_context())["estimated_cost"] == pytest.approx(0.02)
