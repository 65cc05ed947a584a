"""What the model operators check with RunComfy's catalog before a paid submit: any model's inputs against its
catalog schema, the job's estimated price against ``max_cost_usd``, and the account's balance.

The catalog is read once per model and process (a mapped task's many tries in one worker ask once). A catalog
that cannot be read does not stop a run unless asked (``catalog_check="fail"``, or a ``max_cost_usd`` that then
cannot be enforced): the job is submitted unchecked, with one warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_runcomfy.exceptions import (
    RunComfyError,
    RunComfyInsufficientBalanceError,
    RunComfyInvalidInputError,
    RunComfyNotFoundError,
)

if TYPE_CHECKING:
    from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook
    from airflow_provider_runcomfy.schemas.catalog import CatalogModel

#: ``warn``: check against the catalog, and submit unchecked with a warning when it cannot be read; ``fail``: refuse
#: then (and refuse a model the catalog does not list); ``off``: no schema check (a price is still asked for when
#: ``max_cost_usd`` or ``check_balance`` needs one).
CATALOG_CHECKS = ("warn", "fail", "off")

#: Why an estimate is unknown when the catalog could not be read: a retry may read it, unlike a price with no rule.
UNREADABLE = "RunComfy's catalog could not be read"
# (API base URL, model id) -> the catalog's entry, or None for a model it does not list. Failures are not kept.
_models: dict[tuple[str, str], CatalogModel | None] = {}


def check_settings(catalog_check: str, max_cost_usd: float | None) -> None:
    """Refuse a bad setting when the DAG is parsed."""
    if catalog_check not in CATALOG_CHECKS:
        raise RunComfyInvalidInputError(f"catalog_check: got {catalog_check!r}; allowed: {', '.join(CATALOG_CHECKS)}")
    if max_cost_usd is not None and (
        isinstance(max_cost_usd, bool) or not isinstance(max_cost_usd, (int, float)) or max_cost_usd < 0
    ):
        raise RunComfyInvalidInputError(f"max_cost_usd: got {max_cost_usd!r}; allowed: a number of USD >= 0, or None")


def catalog_model(hook: RunComfyHook, model_id: str) -> CatalogModel | None:
    """The catalog's entry for ``model_id`` (``None`` when not listed), read once per process."""
    key = (hook.base_url, model_id)
    if key not in _models:
        try:
            _models[key] = hook.get_model(model_id)
        except RunComfyNotFoundError:
            _models[key] = None
    return _models[key]


def estimate_before_submit(
    hook: RunComfyHook, model_id: str, body: dict[str, Any], *, catalog_check: str, validate: bool, log: Any
) -> tuple[float | None, str]:
    """Check ``body`` against the model's catalog schema (when ``validate``) and estimate the job's price.

    Returns the estimate in USD, or ``None`` and why it is unknown.
    """
    try:
        model = catalog_model(hook, model_id)
    except RunComfyError as error:
        if catalog_check == "fail":
            raise RunComfyError(f"RunComfy's catalog could not be read (catalog_check='fail'): {error}") from None
        log.warning(
            "RunComfy's catalog could not be read (%s): %s is submitted without checking its inputs against its "
            "catalog schema and without a price estimate",
            error,
            model_id,
        )
        return None, f"{UNREADABLE} ({error.message})"
    if model is None:
        if catalog_check == "fail":
            refusal = f"model_id {model_id!r} is not in RunComfy's catalog (catalog_check='fail')"
            raise RunComfyInvalidInputError(refusal)
        if catalog_check == "warn":
            log.warning("%s is not in RunComfy's catalog: its inputs are submitted unchecked", model_id)
        return None, "the model is not in RunComfy's catalog"
    if validate and catalog_check != "off" and model.input_schema:
        from airflow_provider_runcomfy.schemas.catalog import check_against_schema  # at run time, not at parse time

        check_against_schema(model_id, model.input_schema, body)
    estimate = model.estimate(body)
    if estimate is None:
        return None, f"its price follows no fixed rule ({model.price})"
    log.info("Estimated cost of this %s job: $%.4f (%s)", model_id, estimate, model.price)
    return estimate, ""


def check_spending(
    hook: RunComfyHook,
    model_id: str,
    estimate: float | None,
    unknown_because: str,
    *,
    max_cost_usd: float | None,
    check_balance: bool,
    log: Any,
) -> None:
    """Refuse a submit whose estimate is over ``max_cost_usd`` (or cannot be made while it is set), or, with
    ``check_balance``, over what the account holds."""
    job = f"The {model_id} job"
    if max_cost_usd is not None:
        if estimate is None:
            refusal = f"{job} has no price estimate ({unknown_because}), so max_cost_usd={max_cost_usd:g} cannot be "
            refusal += "enforced: not submitted"
            # A catalog that could not be read may answer on a retry; a price with no fixed rule will not change.
            kind = RunComfyError if unknown_because.startswith(UNREADABLE) else RunComfyInvalidInputError
            raise kind(refusal)
        if estimate > max_cost_usd:
            raise RunComfyInvalidInputError(
                f"{job} is estimated at ${estimate:.4f}, over max_cost_usd=${max_cost_usd:g}: not submitted"
            )
    if check_balance:
        balance = hook.get_balance()
        needed = estimate if estimate is not None else 0.0
        if balance.balance_usd <= 0 or balance.balance_usd < needed:
            raise RunComfyInsufficientBalanceError(
                f"{job} is estimated at ${needed:.4f} but the account holds ${balance.balance_usd:.4f}: not submitted"
            )
        if estimate is None:
            log.warning(
                "%s has no price estimate (%s): the balance ($%.4f) is not held against it",
                job,
                unknown_because,
                balance.balance_usd,
            )
