"""Operators that run a RunComfy model: any catalog model, or PixVerse v5.5 with typed, templated inputs.

A run submits once, pushes the ``request_id`` to XCom and the task state store before any waiting, then waits
on the worker or in the triggerer. A retry reattaches to a request that is still running or already
succeeded, so a crash after the submit does not pay twice (before Airflow 3.3 the store is an Airflow Variable).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator, conf
from pydantic import BaseModel

from airflow_provider_runcomfy.exceptions import RunComfyConnectionError, RunComfyJobError, RunComfyNotFoundError
from airflow_provider_runcomfy.io.inputs import as_references, prepare_inputs
from airflow_provider_runcomfy.io.storage import DEFAULT_MAX_BYTES, DEFAULT_NAME, check_destination, check_name
from airflow_provider_runcomfy.links.runcomfy import RunComfyOutputLink
from airflow_provider_runcomfy.schemas import MODEL_INPUTS, validate_inputs
from airflow_provider_runcomfy.schemas.api import FINISHED_RESULT_STATUSES, RequestEvent, RequestResult
from airflow_provider_runcomfy.schemas.pixverse import (
    IMAGE_TO_VIDEO,
    TEXT_TO_VIDEO,
    PixVerseImageToVideoInput,
    PixVerseTextToVideoInput,
)
from airflow_provider_runcomfy.utils.mixins import RunComfyTaskMixin, check_hook_params
from airflow_provider_runcomfy.utils.precheck import check_settings
from airflow_provider_runcomfy.version_compat import ResumableJobMixin, task_state

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

ESTIMATE_XCOM_KEY = "estimated_cost"  # the catalog's estimate of the job's price, pushed before the submit
_GONE = "expired"  # a stored request that RunComfy no longer knows: submit afresh
_STALE = "inputs_changed"  # a stored request made from other inputs (the DAG changed, then was cleared): submit afresh


class _EarlierRequestCancelled(Exception):
    """The earlier try's request, which this try reattached to, was cancelled while this try waited for it."""


class RunComfyModelOperator(RunComfyTaskMixin, ResumableJobMixin, BaseOperator):
    """Run any RunComfy model and return its outputs (see the XCom contract in the README).

    :param model_id: Catalog id, e.g. ``pixverse/pixverse/v5.5/text-to-video``. (templated)
    :param inputs: The model's inputs: a dict, or the model's pydantic input model. Known models are validated
        at DAG parse time when literal, after rendering otherwise, and always before the submit. A file input
        (a name ending in ``_url`` or ``_urls``) may also be an ``ObjectStoragePath`` or an object-store URI
        (``s3://conn@bucket/key``: signed for the job just before the submit), or the return value of an earlier
        RunComfy task (its stored file, else its output URL). (templated)
    :param runcomfy_conn_id: Connection of type ``runcomfy``.
    :param wait_for_completion: Wait for the job; ``False`` returns right after the submit.
    :param deferrable: Wait in the triggerer instead of holding a worker slot.
    :param poll_interval: Seconds per status read: one per interval, on a fixed cadence from the first.
    :param timeout: How long to wait for the job (seconds or timedelta); then a queued job is cancelled
        and the task fails.
    :param cancel_on_kill: Cancel the queued job when the task is killed, marked or cleared.
    :param include_cost: Ask RunComfy for the job's cost (USD); it is returned as ``cost``.
    :param durable: Reattach a retry to the request of an earlier try (Airflow's task state store; before 3.3
        an Airflow Variable per task instance, deleted when the task ends).
    :param output_dir: Copy the outputs here (any ``ObjectStoragePath``: ``file://``, ``s3://conn@bucket/...``);
        the return value then lists them under ``files``. (templated)
    :param output_name: File name template under ``output_dir``: ``{request_id}``, ``{map_index}``, ``{index}``,
        ``{ext}``. (templated)
    :param max_output_bytes: Refuse to copy an output larger than this.
    :param check_inputs: Before the submit, fetch every URL input as RunComfy will (no credentials): it must
        answer, be of the input's kind (``image_url``: an image) and within ``max_input_bytes``.
    :param max_input_bytes: Size limits of file inputs by kind; default RunComfy's ``{"image": 50 MB, "video":
        100 MB}``, and what is given here replaces those kinds' limits.
    :param allow_loopback_http: Also fetch outputs over plain http from a loopback host (the local server), and
        accept inputs there; default: ``[runcomfy] allow_loopback_http``. Anything else is fetched over https only.
    :param hook_params: Keyword arguments of :class:`RunComfyHook` for the worker and the trigger: ``timeout``
        (of one HTTP call), ``max_retries``, ``retry_min_wait``, ``retry_max_wait``.
    :param catalog_check: Before the submit, read the model from RunComfy's catalog (once per process) to check
        the inputs of a model without a typed input model against its schema, and to estimate the price:
        ``"warn"`` (default) submits unchecked with one warning when the catalog cannot be read; ``"fail"``
        refuses then, and refuses a model the catalog does not list; ``"off"`` skips the schema check.
    :param max_cost_usd: Refuse to submit a job whose estimated price is over this (USD), or cannot be estimated
        (a price with no fixed rule, a catalog that cannot be read). The estimate is returned as ``estimated_cost``.
    :param check_balance: Refuse to submit when the account's balance is below the estimate (one more call, to
        the connection's ``balance_url``).
    """

    template_fields: Sequence[str] = ("model_id", "inputs", "output_dir", "output_name")
    template_fields_renderers = {"inputs": "json"}
    operator_extra_links = (RunComfyOutputLink(),)
    external_id_key = "request_id"
    ui_color = "#f3e8ff"

    def __init__(
        self,
        *,
        model_id: str,
        inputs: dict[str, Any] | BaseModel | None = None,
        runcomfy_conn_id: str = "runcomfy_default",
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        timeout: float | timedelta = timedelta(hours=1),
        cancel_on_kill: bool = True,
        include_cost: bool = False,
        output_dir: str | ObjectStoragePath | None = None,
        output_name: str = DEFAULT_NAME,
        max_output_bytes: int = DEFAULT_MAX_BYTES,
        check_inputs: bool = True,
        max_input_bytes: dict[str, int] | None = None,
        allow_loopback_http: bool | None = None,
        hook_params: dict[str, Any] | None = None,
        catalog_check: str = "warn",
        max_cost_usd: float | None = None,
        check_balance: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hook_params = check_hook_params(hook_params)
        check_settings(catalog_check, max_cost_usd)
        self.catalog_check = catalog_check
        self.max_cost_usd = max_cost_usd
        self.check_balance = check_balance
        self._unpriced = ""  # why the estimate is unknown, when it is
        self.check_inputs = check_inputs
        self.max_input_bytes = dict(max_input_bytes or {})
        self.output_dir = output_dir
        self.output_name = output_name
        self.max_output_bytes = max_output_bytes
        self.allow_loopback_http = allow_loopback_http
        self.model_id = model_id
        self.inputs = inputs.model_dump(mode="json", exclude_unset=True) if isinstance(inputs, BaseModel) else inputs
        self.runcomfy_conn_id = runcomfy_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        self.cancel_on_kill = cancel_on_kill
        self.include_cost = include_cost
        self.request_id: str | None = None
        self._submitted: str | None = None  # the request this try submitted, if any
        self._final: RequestResult | None = None  # the finished result the wait returned
        self._outcome: dict[str, Any] | None = None
        self._validate_literal_inputs()
        _check_output_name(self.output_name)

    def _validate_literal_inputs(self) -> None:
        """At DAG parse time, check every input that is not a template: fail now, not after a paid submit."""
        inputs = self.request_inputs()
        if _has_template(self.model_id) or not isinstance(inputs, dict):
            return
        templated = {name for name, value in inputs.items() if _has_template(value)}
        validate_inputs(self.model_id, inputs, unchecked=templated)

    def request_inputs(self) -> dict[str, Any]:
        """The inputs to send, as the operator holds them (after rendering, at run time)."""
        return self.inputs or {}

    def execute(self, context: Context) -> Any:
        # Rendered now: checked again before anything is paid (a bad value fails without a retry).
        with task_state(context):
            self._body = validate_inputs(self.model_id, as_references(self.request_inputs()))
            if self.output_dir:
                check_destination(self.output_dir, self.output_name, map_index=context["ti"].map_index)
            self._check_with_catalog()
            if self.estimated_cost is not None:  # in XCom before paying; and the way across a deferral (below)
                context["ti"].xcom_push(key=ESTIMATE_XCOM_KEY, value=self.estimated_cost)
            try:
                with self.recording_outcome(context):
                    return self.execute_resumable(context)
            except _EarlierRequestCancelled as cancelled:
                # Clearing a deferred task starts the next try at once, while the old trigger's on_kill is still
                # cancelling the queued job: the try can reattach to it and then see it cancelled. A cancelled
                # request of an earlier try is submitted afresh (the mixin does so: the store holds a cancelled one).
                self.log.warning("%s; submitting afresh", cancelled)
                self._final = None
                return self.execute_resumable(context)

    def _check_with_catalog(self) -> None:
        """Check the inputs against the model's catalog schema and estimate the job's price (before any submit)."""
        from airflow_provider_runcomfy.utils.precheck import estimate_before_submit

        if self.catalog_check == "off" and self.max_cost_usd is None and not self.check_balance:
            self.estimated_cost, self._unpriced = None, "catalog_check='off'"
            return
        # A model with a typed input model (PixVerse) was checked by it already, more strictly than its schema.
        validate = self.model_id not in MODEL_INPUTS
        self.estimated_cost, self._unpriced = estimate_before_submit(
            self.hook, self.model_id, self._body, catalog_check=self.catalog_check, validate=validate, log=self.log
        )

    @property
    def _fingerprint(self) -> str:
        """Names the model and inputs of a request, so a retry reattaches only to a request made from them."""
        canonical = json.dumps({"model_id": self.model_id, "inputs": self._body}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    # -- ResumableJobMixin: how to submit, reattach and wait. The stored id is {request_id, inputs}. -------------

    def submit_job(self, context: Context) -> dict[str, str]:
        from airflow_provider_runcomfy.utils.precheck import check_spending

        check_spending(
            self.hook,
            self.model_id,
            self.estimated_cost,
            self._unpriced,
            max_cost_usd=self.max_cost_usd,
            check_balance=self.check_balance,
            log=self.log,
        )
        body = prepare_inputs(
            self.hook,
            self._body,
            expires_in=self.timeout,
            check=self.check_inputs,
            limits=self.max_input_bytes,
            allow_loopback_http=self.loopback_http_allowed(),
        )
        try:
            request_id = self.hook.submit(self.model_id, body).request_id
        except RunComfyConnectionError as error:
            if error.never_sent:
                raise
            # The job may exist and be paid for, but its id never arrived: a task retry would pay again.
            raise AirflowFailException(
                f"{error} — not retried: RunComfy may have created (and billed) this job, and a new try would pay "
                "for a second one. Check your RunComfy requests before re-running the task."
            ) from error
        self.log.info("Submitted RunComfy request %s for model %s", request_id, self.model_id)
        self._submitted = self._attach(context, request_id, how="submitted")
        return {"request_id": request_id, "inputs": self._fingerprint}

    def get_job_status(self, external_id: Any, context: Context) -> str:
        """Whether the stored request of an earlier try can be reattached to; the reason is logged when not."""
        if not isinstance(external_id, dict) or external_id.get("inputs") != self._fingerprint:
            self.log.warning(
                "The stored RunComfy request %s was made from other inputs (the DAG or its rendered values changed): "
                "submitting a new request",
                external_id.get("request_id") if isinstance(external_id, dict) else external_id,
            )
            return _STALE
        request_id = external_id["request_id"]
        try:
            status = self.hook.get_result(request_id).status
        except RunComfyNotFoundError:
            self.log.warning("RunComfy no longer knows the stored request %s: submitting a new request", request_id)
            return _GONE
        if status in FINISHED_RESULT_STATUSES and status != "succeeded":
            self.log.warning("The stored RunComfy request %s ended %s: submitting a new request", request_id, status)
        return status

    def is_job_active(self, status: str) -> bool:
        return status not in (_GONE, _STALE) and status not in FINISHED_RESULT_STATUSES

    def is_job_succeeded(self, status: str) -> bool:
        return status == "succeeded"

    def poll_until_complete(self, external_id: Any, context: Context) -> dict[str, Any]:
        request_id = self._attach(context, external_id["request_id"])
        if self.wait_for_completion:
            if not self.deferrable:
                self._final = self.hook.wait_for_request(
                    request_id, timeout=self.timeout, poll_interval=self.poll_interval, include_cost=self.include_cost
                )
            else:
                self._final = self.hook.poll_request(request_id, include_cost=self.include_cost)
                if self._final is None:  # a finished job does not defer
                    trigger = self.request_trigger(
                        context,
                        request_id,
                        timeout=self.timeout,
                        poll_interval=self.poll_interval,
                        cancel_on_timeout=True,
                        cancel_on_kill=self.cancel_on_kill,
                    )
                    kwargs: dict[str, Any] = {"estimated_cost": self.estimated_cost}  # the resumed task has no other
                    if request_id != self._submitted:
                        kwargs["reattached"] = True
                    self.defer(trigger=trigger, method_name="execute_complete", kwargs=kwargs)
        # ResumableJobMixin returns this value when it reattaches to a running job (it asks get_job_result
        # only after a fresh submit), so both paths must yield the task's result.
        return self.get_job_result(external_id, context)

    def get_job_result(self, external_id: Any, context: Context) -> dict[str, Any]:
        if self._outcome is None:
            request_id = self._attach(context, external_id["request_id"])
            if not self.wait_for_completion:
                self._outcome = {"request_id": request_id, "model_id": self.model_id, "status": "submitted"}
                if self.estimated_cost is not None:
                    self._outcome["estimated_cost"] = self.estimated_cost
            else:
                result = self._final or self.hook.get_result(request_id, include_cost=self.include_cost)
                if result.cancelled and request_id != self._submitted:
                    raise _EarlierRequestCancelled(f"RunComfy request {request_id} of an earlier try was cancelled")
                self._outcome = self.task_result(context, result, self.request_inputs())
        return self._outcome

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any],
        reattached: bool = False,
        estimated_cost: float | None = None,
    ) -> dict[str, Any]:
        # The defer kwargs carry it in a deployment; `airflow dags test` resumes with the event alone (Airflow 3.3).
        self.estimated_cost = estimated_cost if estimated_cost is not None else _pushed_estimate(context, self.task_id)
        with self.recording_outcome(context):
            result = RequestEvent.model_validate(event).outcome()
        if reattached and result.cancelled:
            self.log.warning("RunComfy request %s of an earlier try was cancelled", result.request_id)
            return self.execute(context)  # the store holds the cancelled request: the mixin submits afresh
        with task_state(context), self.recording_outcome(context):
            return self.task_result(context, result, self.request_inputs())

    def on_kill(self) -> None:
        if self.cancel_on_kill and self.request_id:
            answer = self.hook.cancel(self.request_id)
            self.log.info("Cancel of RunComfy request %s on kill: %s", self.request_id, answer.outcome)

    def _attach(self, context: Context, request_id: str, *, how: str = "reattached") -> str:
        if self.request_id != request_id:
            self.request_id = request_id
            context["ti"].xcom_push(key="request_id", value=request_id)
            self.record_job(context, request_id, self._body, how=how)
        return request_id


class _PixVerseOperator(RunComfyModelOperator):
    """The PixVerse v5.5 inputs both models share, as named, templated parameters.

    ``None`` leaves an input to the API's default. Explicit parameters (not ``**inputs``) let ``partial()`` /
    ``expand()`` check their names, and IDEs show them.
    """

    input_model: type[BaseModel]

    def __init__(
        self,
        *,
        prompt: str,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        duration: int | str | None = None,
        negative_prompt: str | None = None,
        style: str | None = None,
        seed: int | str | None = None,
        generate_audio_switch: bool | None = None,
        generate_multi_clip_switch: bool | None = None,
        thinking_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.prompt = prompt
        self.aspect_ratio = aspect_ratio
        self.resolution = resolution
        self.duration = duration
        self.negative_prompt = negative_prompt
        self.style = style
        self.seed = seed
        self.generate_audio_switch = generate_audio_switch
        self.generate_multi_clip_switch = generate_multi_clip_switch
        self.thinking_type = thinking_type
        super().__init__(**kwargs)

    def request_inputs(self) -> dict[str, Any]:
        named = {name: getattr(self, name, None) for name in self.input_model.model_fields}
        return {**(self.inputs or {}), **{name: value for name, value in named.items() if value is not None}}


class RunComfyTextToVideoOperator(_PixVerseOperator):
    """Generate a video from a prompt with PixVerse v5.5 text-to-video.

    Takes ``prompt``, ``aspect_ratio``, ``resolution``, ``duration``, ``negative_prompt``, ``style``, ``seed``,
    ``generate_audio_switch``, ``generate_multi_clip_switch`` and ``thinking_type`` (named as in the API,
    templated), and every parameter of :class:`RunComfyModelOperator`.
    """

    input_model = PixVerseTextToVideoInput
    template_fields = (*RunComfyModelOperator.template_fields, *PixVerseTextToVideoInput.model_fields)

    def __init__(self, *, model_id: str = TEXT_TO_VIDEO, **kwargs: Any) -> None:
        super().__init__(model_id=model_id, **kwargs)


class RunComfyImageToVideoOperator(_PixVerseOperator):
    """Animate an image with PixVerse v5.5 image-to-video: ``image_url`` is the first frame.

    ``image_url`` is a public http(s) URL, an object-store URI or ``ObjectStoragePath`` (signed for the job), or
    the return value of an earlier RunComfy task (``image_url=make_image.output``). Takes ``image_url`` and the
    inputs of :class:`RunComfyTextToVideoOperator` (templated), and every parameter
    of :class:`RunComfyModelOperator`.
    """

    input_model = PixVerseImageToVideoInput
    template_fields = (*RunComfyModelOperator.template_fields, *PixVerseImageToVideoInput.model_fields)

    def __init__(
        self, *, image_url: str | ObjectStoragePath | dict[str, Any], model_id: str = IMAGE_TO_VIDEO, **kwargs: Any
    ) -> None:
        self.image_url = image_url
        super().__init__(model_id=model_id, **kwargs)


class RunComfyDownloadOperator(RunComfyTaskMixin, BaseOperator):
    """Copy the outputs of a finished request to object storage: the last step of a split pipeline.

    Returns the same dict as the model operators, with ``files``; emits Asset events for its ``outlets``.
    Takes ``request_id``, ``output_dir``, ``output_name`` (all templated), ``model_id`` (templated; RunComfy's
    result does not name the model, so the return value holds what is given here), and ``runcomfy_conn_id``,
    ``include_cost``, ``max_output_bytes``, ``allow_loopback_http``, ``hook_params`` as the model operators do.
    A request that has not finished fails the task: wait for it with ``RunComfyRequestSensor``.
    """

    template_fields: Sequence[str] = ("request_id", "output_dir", "output_name", "model_id")
    operator_extra_links = (RunComfyOutputLink(),)
    ui_color = "#f3e8ff"

    def __init__(
        self,
        *,
        request_id: str,
        output_dir: str | ObjectStoragePath,
        output_name: str = DEFAULT_NAME,
        model_id: str | None = None,
        runcomfy_conn_id: str = "runcomfy_default",
        include_cost: bool = False,
        max_output_bytes: int = DEFAULT_MAX_BYTES,
        allow_loopback_http: bool | None = None,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hook_params = check_hook_params(hook_params)
        self.include_cost = include_cost
        self.request_id = request_id
        self.output_dir = output_dir
        self.output_name = output_name
        self.model_id = model_id
        self.runcomfy_conn_id = runcomfy_conn_id
        self.max_output_bytes = max_output_bytes
        self.allow_loopback_http = allow_loopback_http
        _check_output_name(self.output_name)

    def execute(self, context: Context) -> dict[str, Any]:
        check_destination(self.output_dir, self.output_name, map_index=context["ti"].map_index)
        result = self.hook.get_result(self.request_id, include_cost=self.include_cost)
        if not result.is_finished:
            raise RunComfyJobError(
                f"RunComfy request {result.request_id} is still {result.status}: "
                "wait for it with RunComfyRequestSensor first",
                request_id=result.request_id,
            )
        return self.task_result(context, result, {})


def _pushed_estimate(context: Context, task_id: str) -> float | None:
    ti = context["ti"]
    pull = getattr(ti, "xcom_pull", None)
    return pull(task_ids=task_id, key=ESTIMATE_XCOM_KEY, map_indexes=ti.map_index) if pull else None


def _check_output_name(template: Any) -> None:
    """A literal ``output_name`` is checked when the DAG is parsed: a bad one would fail after the job is paid."""
    if not _has_template(template):
        check_name(template)


def _has_template(value: Any) -> bool:
    """True when the value is filled in at run time: Jinja text, or an XCom/other lazy reference."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_template(v) for v in value)
    return not isinstance(value, (int, float, bool, type(None)))
