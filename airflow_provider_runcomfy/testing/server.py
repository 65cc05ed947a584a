"""A local server that speaks RunComfy's Model API, for tests, example DAGs and benchmarks without an account.

It behaves as RunComfy's documentation and clients describe the API: the four calls under ``/v1``, Bearer auth,
the documented error codes, jobs that queue, run and finish on a clock, a status call that says ``completed`` for a
failed job, and output files on the same host. Faults (rate limits, 5xx, dropped connections, truncated files, slow
answers, a result that lags behind the status) can be injected in-process or over ``/_control`` so that tests
running Airflow in a subprocess can use them too. The token is never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import itertools
import json
import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import uvicorn
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from airflow_provider_runcomfy.exceptions import RunComfyInvalidInputError
from airflow_provider_runcomfy.io.inputs import is_url_input
from airflow_provider_runcomfy.schemas import MODEL_INPUTS, check_model_id, describe_errors, validate_inputs
from airflow_provider_runcomfy.testing import catalog

SAMPLE_MP4 = Path(__file__).with_name("sample.mp4")
SAMPLE_BYTES = SAMPLE_MP4.read_bytes()  # what every succeeded job's output.mp4 serves
SAMPLE_SHA256 = hashlib.sha256(SAMPLE_BYTES).hexdigest()
SAMPLE_PNG_BYTES = Path(__file__).with_name("sample.png").read_bytes()  # a real 160x90 PNG: output.png, sample.png
#: A model of this local server only, not of RunComfy's catalog: text to one PNG image (``output.images``).
LOCAL_TEXT_TO_IMAGE = "runcomfy-local/test/text-to-image"


class LocalTextToImageInput(BaseModel):
    """Inputs of :data:`LOCAL_TEXT_TO_IMAGE`, the local server's own test model."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    seed: int = 0
    num_images: int = Field(1, ge=1, le=4)  # each image is paid: the catalog prices this model per output


LOCAL_MODELS: dict[str, type[BaseModel]] = {LOCAL_TEXT_TO_IMAGE: LocalTextToImageInput}
CALLS = ("submit", "status", "result", "cancel", "file", "catalog", "balance", "any")
FAULTS = ("400", "422", "429", "500", "502", "503", "drop", "slow", "http200_error")
# A failed job's status says `completed`, as RunComfy's does; only the result call says `failed`.
OUTCOMES = ("succeeded", "failed")
CHUNK = 1 << 20
_INCOMPLETE = "ASGI callable returned without completing response."


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@functools.lru_cache(maxsize=8)
def _block(seed: int) -> bytes:
    return random.Random(seed).randbytes(CHUNK)


def synthetic_chunks(size: int, seed: int = 0) -> Iterator[bytes]:
    """The bytes of ``/files/synthetic/{size}.bin?seed=N`` in 1 MiB chunks; each chunk is a different rotation of
    one random block, so a client that repeats or skips a chunk gets a different checksum. Constant memory."""
    block, sent, index = _block(seed), 0, 0
    while sent < size:
        shift = (index * 7919) % CHUNK
        chunk = (block[shift:] + block[:shift])[: size - sent]
        yield chunk
        sent, index = sent + len(chunk), index + 1


@dataclass
class Job:
    request_id: str
    model_id: str
    owner: int  # index of the accepted token that submitted it; the token itself is not kept
    queue_seconds: float
    run_seconds: float
    outcome: str = "succeeded"
    error: Any = None
    output: Any = None  # None: the sample MP4
    cost: float = 0.35
    result_lag: int = 0  # result calls, once the job has finished, that still answer `in_progress`
    queue_polls: int | None = None  # status calls answered `in_queue` before the job starts (instead of a clock)
    started: float = field(default_factory=time.monotonic)
    created: float = field(default_factory=time.time)
    cancelled: float | None = None  # monotonic time of a successful cancel

    def status(self, now: float) -> str:
        """What the status call says (``in_queue``, ``in_progress``, ``completed``, ``cancelled``), from the clock."""
        if self.cancelled is not None:
            return "cancelled"
        elapsed = now - self.started
        if elapsed < self.queue_seconds:
            return "in_queue"
        return "in_progress" if elapsed < self.queue_seconds + self.run_seconds else "completed"

    def finished_at(self) -> str:
        end = self.cancelled if self.cancelled is not None else self.started + self.queue_seconds + self.run_seconds
        return _iso(self.created + end - self.started)


class State:
    """Everything the app knows: jobs, pending rules, the request log. Shared by the server thread and the test."""

    def __init__(
        self, tokens: Iterable[str], queue_seconds: float, run_seconds: float, model_ids: Iterable[str] | None
    ):
        self.tokens = list(tokens)
        # None: any well-formed model id is served; otherwise only these and the catalog's (PixVerse, local tests).
        known = set(MODEL_INPUTS) | set(LOCAL_MODELS) | set(catalog.model_ids())
        self.model_ids = None if model_ids is None else known | set(model_ids)
        self.fetch_inputs = False  # fetch every URL input at submit, as RunComfy does (set_fetch_inputs)
        self.default_clock = {"queue_seconds": queue_seconds, "run_seconds": run_seconds}
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget jobs, rules, log and counters, and restore the clock the server was created with."""
        with self.lock:
            self.clock = dict(self.default_clock)
            self.catalog_available = True  # False: the catalog answers 503 (set_catalog_available)
            self.balance_usd = 10.0  # what the balance endpoint answers (set_balance)
            self.jobs: dict[str, Job] = {}
            self.faults: list[dict[str, Any]] = []
            self.outcomes: list[dict[str, Any]] = []
            self.status_values: list[dict[str, Any]] = []
            self.log: list[dict[str, Any]] = []
            self.submits = self.cancels = 0

    def release(self) -> int:
        """End the queue time of every queued job now: it starts running. Returns how many were released.

        Lets a test hold many jobs in the queue (a long clock) for as long as it needs, then finish them together.
        """
        with self.lock:
            now = time.monotonic()
            queued = [job for job in self.jobs.values() if job.status(now) == "in_queue"]
            for job in queued:
                job.queue_seconds = now - job.started
            return len(queued)

    def add_rules(self, rules: dict[str, Any] | Iterable[dict[str, Any]]) -> None:
        """File each rule by its kind (``fault``, ``outcome`` or ``status_value``); refuse a malformed one."""
        checked = []
        for rule in [rules] if isinstance(rules, dict) else rules:
            rule = {**rule, "times": int(rule.get("times", 1)), "skip": int(rule.get("skip", 0))}
            if "fault" in rule:
                rule["fault"], rule["call"] = str(rule["fault"]), rule.get("call", "any")
                if rule["fault"] not in FAULTS or rule["call"] not in CALLS:
                    raise ValueError(f"fault must be one of {FAULTS} and call one of {CALLS}: {rule}")
                checked.append((self.faults, rule))
            elif "outcome" in rule:
                if rule["outcome"] not in OUTCOMES:
                    raise ValueError(f"outcome must be one of {OUTCOMES}: {rule}")
                checked.append((self.outcomes, rule))
            elif "status_value" in rule:
                checked.append((self.status_values, rule))
            else:
                raise ValueError(f"a rule needs 'fault', 'outcome' or 'status_value': {rule}")
        with self.lock:
            for target, rule in checked:
                target.append(rule)

    def take(self, rules: list[dict[str, Any]], call: str = "any") -> dict[str, Any] | None:
        """Consume one use of the first rule matching ``call``, in the order the rules were added.

        A rule with ``skip: n`` lets its first ``n`` matching calls through untouched: a fault can then hit the
        triggerer's polls rather than the worker's one status read before it defers.
        """
        with self.lock:
            for rule in rules:
                if rule.get("call", "any") in ("any", call):
                    if rule.get("skip", 0) > 0:
                        rule["skip"] -= 1
                        return None
                    rule["times"] -= 1
                    if rule["times"] <= 0:
                        rules.remove(rule)
                    return rule
        return None

    def owner(self, request: Request) -> int | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        return self.tokens.index(token) if scheme.lower() == "bearer" and token in self.tokens else None

    def stats(self) -> dict[str, int]:
        return {"submits": self.submits, "cancels": self.cancels, "jobs": len(self.jobs), "requests": len(self.log)}


def _error(status: int, code: int, error: str, message: str | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "error": error, **({"message": message} if message else {})}, status)


class Stream(Response):
    """A body sent in chunks under a declared Content-Length; ``cut`` stops after that many bytes.

    A cut response ends without completing, so uvicorn closes the connection: the client got a status line and
    part of the body, then EOF (a short body: uvicorn refuses to end a body shorter than its Content-Length
    cleanly, so a cut is what a short body looks like on the wire).
    """

    def __init__(self, chunks: Iterable[bytes], length: int, media_type: str, status_code: int = 200):
        self.chunks, self.length, self.cut = chunks, length, None
        super().__init__(None, status_code, {"content-length": str(length)}, media_type)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        limit, sent = (self.length if self.cut is None else self.cut), 0
        limit = 0 if scope["method"] == "HEAD" else limit
        for chunk in self.chunks:
            chunk = chunk[: limit - sent]
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent += len(chunk)
            if sent >= limit:
                break
        if self.cut is None:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _fetch_inputs(body: dict[str, Any]) -> list[dict[str, Any]]:
    """GET every URL input as RunComfy does (no credentials, no cookies); what each answered, without query."""
    fetched = []
    for name, value in body.items():
        for url in (value if isinstance(value, list) else [value]) if is_url_input(name) else []:
            seen: dict[str, Any] = {"field": name, "url": str(url).split("?")[0], "status": None}
            try:
                with requests.get(url, timeout=10, auth=lambda r: r) as answer:
                    content = answer.content
                seen.update(status=answer.status_code, bytes=len(content), sha256=hashlib.sha256(content).hexdigest())
                seen["content_type"] = answer.headers.get("Content-Type")
            except requests.RequestException as error:
                seen["error"] = type(error).__name__
            fetched.append(seen)
    return fetched


def _fault_response(fault: dict[str, Any]) -> Response:
    kind = fault["fault"]
    if kind == "400":  # as RunComfy refuses a model id it does not know
        return JSONResponse({"code": 400001, "error": "InvalidModelId", "message": "Simulated unknown model"}, 400)
    if kind == "422":
        return JSONResponse({"code": 422000, "error": "InvalidInput", "message": "Simulated rejected inputs"}, 422)
    if kind == "429":
        headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else None
        return JSONResponse({"code": 429000, "error": "TooManyRequests"}, 429, headers)
    if kind == "500":
        return JSONResponse({"code": 500000, "error": "InternalServerError"}, 500)
    if kind in ("502", "503"):  # from a proxy in front of the API: HTML, not JSON
        return HTMLResponse(f"<html><body><h1>{kind} Bad Gateway or Service Unavailable</h1></body></html>", int(kind))
    body = {"error_code": fault.get("error_code", 500000), "error_message": fault.get("error_message", "Simulated")}
    return JSONResponse(body, 200)


def create_app(state: State) -> Starlette:
    """The ASGI app over ``state``; separate from the thread runner so it can be served or mounted otherwise."""

    def api(call: str, handler: Any) -> Any:
        """Wrap a handler with the log, fault injection (a gateway in front of the API), auth and the job lookup."""

        async def endpoint(request: Request) -> Response:
            params = request.path_params
            entry: dict[str, Any] = {"time": time.time(), "method": request.method, "path": request.url.path}
            entry.update(call=call, model_id=params.get("model_id"), request_id=params.get("request_id"), auth=None)
            entry["client_port"] = request.client.port if request.client else None  # one per TCP connection
            entry["status"] = None  # logged on arrival, answered later: a request still in flight is seen too
            with state.lock:
                state.log.append(entry)
            fault = state.take(state.faults, call)
            entry["fault"] = kind = fault and fault["fault"]
            owner = state.owner(request) if call != "file" else None  # files need no auth, like a CDN
            if call != "file":
                entry["auth"] = owner is not None
            job = state.jobs.get(params.get("request_id", ""))
            if kind in ("400", "422", "429", "500", "502", "503", "http200_error"):
                response = _fault_response(fault)
            elif call != "file" and owner is None:
                response = _error(401, 400004, "UserAccountError")
            elif call in ("status", "result", "cancel") and job is None:
                response = _error(404, 404001, "RequestNotFound", "request missing, deleted or expired")
            elif call in ("status", "result", "cancel") and job.owner != owner:
                response = _error(403, 403001, "Forbidden", "request belongs to another account")
            else:
                response = await handler(request, job or owner, entry)
            # Read the whole request before a cut: closing on unread bytes would send RST, not a clean EOF.
            await request.body()
            if kind == "slow":  # after the work: a slow submit has created its job even if the client gives up
                await asyncio.sleep(float(fault.get("delay", 3.0)))
            if kind == "drop":
                if not isinstance(response, Stream):
                    response = Stream([response.body], len(response.body), response.media_type, response.status_code)
                response.cut = response.length // 2
            entry["status"] = response.status_code
            return response

        return endpoint

    def urls(request: Request, request_id: str) -> dict[str, str]:
        base = f"{str(request.base_url).rstrip('/')}/v1/requests/{request_id}"
        return {"status_url": f"{base}/status", "result_url": f"{base}/result", "cancel_url": f"{base}/cancel"}

    async def submit(request: Request, owner: int, entry: dict[str, Any]) -> Response:
        model_id = request.path_params["model_id"]
        try:
            check_model_id(model_id)
        except RunComfyInvalidInputError:
            return _error(400, 400001, "InvalidModelId", f"malformed model id {model_id!r}")
        if state.model_ids is not None and model_id not in state.model_ids:
            return _error(400, 400001, "InvalidModelId", f"unknown model id {model_id!r}")
        try:
            entry["body"] = await request.json()
            validate_inputs(model_id, entry["body"])
            if model_id in LOCAL_MODELS:
                LOCAL_MODELS[model_id].model_validate(entry["body"])
        except ValidationError as error:
            problems = describe_errors(error, LOCAL_MODELS[model_id])
            return _error(400, 400000, "InvalidInput", f"Invalid inputs for {model_id}: {problems}")
        except (ValueError, RunComfyInvalidInputError) as error:
            return _error(400, 400000, "InvalidInput", getattr(error, "message", "the body is not JSON"))
        if problems := catalog.schema_errors(model_id, entry["body"]):  # a catalog model: its schema decides
            return _error(422, 422000, "InvalidInput", f"Invalid inputs for {model_id}: {'; '.join(problems)}")
        unfetchable = None
        if state.fetch_inputs:
            entry["fetched"] = await asyncio.to_thread(_fetch_inputs, entry["body"])
            unfetchable = next((f for f in entry["fetched"] if not 200 <= (f.get("status") or 0) < 300), None)
        rule = state.take(state.outcomes) or {}
        clock = {name: float(rule.get(name, value)) for name, value in state.clock.items()}
        output = rule.get("output")
        if "synthetic_size" in rule:
            output = {"video": f"{{base}}/files/synthetic/{int(rule['synthetic_size'])}.bin?seed={rule.get('seed', 0)}"}
        error = rule.get("error", {"code": "GENERATION_FAILED", "message": "Simulated generation failure"})
        outcome = rule.get("outcome", "succeeded")
        if unfetchable is not None:  # RunComfy takes the job, then fails it: the input could not be fetched
            why = f"HTTP {unfetchable['status']}" if unfetchable.get("status") else unfetchable["error"]
            outcome = "failed"
            error = {"code": "INPUT_FETCH_FAILED", "message": f"{unfetchable['field']} could not be fetched: {why}"}
        if output is None and model_id in LOCAL_MODELS:
            output = {"images": ["{base}/files/{request_id}/output.png"] * int(entry["body"].get("num_images", 1))}
        job = Job(str(uuid.uuid4()), model_id, owner, **clock, outcome=outcome, error=error)
        job.output, job.cost, job.result_lag = output, float(rule.get("cost", job.cost)), int(rule.get("result_lag", 0))
        if "queue_polls" in rule:
            job.queue_polls, job.queue_seconds = int(rule["queue_polls"]), float("inf")
        with state.lock:
            state.jobs[job.request_id] = job
            state.submits += 1
        entry["request_id"] = job.request_id
        return JSONResponse({"request_id": job.request_id, **urls(request, job.request_id)})

    async def status(request: Request, job: Job, entry: dict[str, Any]) -> Response:
        now = time.monotonic()
        body: dict[str, Any] = {"request_id": job.request_id, "status": job.status(now)}
        if body["status"] == "in_queue" and job.queue_polls is not None:
            with state.lock:
                job.queue_polls -= 1
                if job.queue_polls <= 0:  # this answer is the last in_queue one: the job starts now
                    job.queue_polls, job.queue_seconds = None, now - job.started
        if body["status"] in ("in_queue", "in_progress") and (override := state.take(state.status_values)):
            body["status"] = override["status_value"]
        elif body["status"] == "in_queue":
            earlier = itertools.takewhile(lambda other: other is not job, state.jobs.values())  # submit order
            body["queue_position"] = sum(other.status(now) == "in_queue" for other in earlier)
        body.update(urls(request, job.request_id))
        del body["cancel_url"]
        return JSONResponse(body)

    async def result(request: Request, job: Job, entry: dict[str, Any]) -> Response:
        status = job.status(time.monotonic())
        if status == "completed" and job.result_lag > 0:  # the result lags behind the status call
            with state.lock:
                job.result_lag -= 1
            entry["fault"], status = "result_lag", "in_progress"
        status = job.outcome if status == "completed" else status
        body = {"request_id": job.request_id, "status": status, "created_at": _iso(job.created), "finished_at": None}
        if status in ("succeeded", "failed", "cancelled"):
            body["finished_at"] = job.finished_at()
            if request.query_params.get("include_cost", "").lower() == "true":
                body["cost"] = 0.0 if status == "cancelled" else job.cost
        base = str(request.base_url).rstrip("/")
        if status == "succeeded":
            output = json.dumps(job.output or {"video": f"{base}/files/{job.request_id}/output.mp4"})
            body["output"] = json.loads(output.replace("{base}", base).replace("{request_id}", job.request_id))
        elif status == "failed":
            body["error"] = job.error
        return JSONResponse(body)

    async def cancel(request: Request, job: Job, entry: dict[str, Any]) -> Response:
        with state.lock:
            cancelled = job.status(time.monotonic()) == "in_queue"
            if cancelled:
                job.cancelled = time.monotonic()
                state.cancels += 1
        body = {"request_id": job.request_id, "status": job.status(time.monotonic())}
        return JSONResponse({**body, "outcome": "cancelled" if cancelled else "not_cancellable"}, 202)

    async def sample_file(request: Request, job: Job | None, entry: dict[str, Any]) -> Response:
        if job is None:
            return Response("Not Found", 404)
        return Stream([SAMPLE_BYTES], len(SAMPLE_BYTES), "video/mp4")

    async def sample_image(request: Request, job: Job | None, entry: dict[str, Any]) -> Response:
        if job is None and "request_id" in request.path_params:
            return Response("Not Found", 404)
        return Stream([SAMPLE_PNG_BYTES], len(SAMPLE_PNG_BYTES), "image/png")

    async def redirect(request: Request, job: Any, entry: dict[str, Any]) -> Response:
        return RedirectResponse(request.query_params["to"], 302)

    async def synthetic_file(request: Request, job: Any, entry: dict[str, Any]) -> Response:
        size, seed = request.path_params["size"], int(request.query_params.get("seed", 0))
        return Stream(synthetic_chunks(size, seed), size, "application/octet-stream")

    async def catalog_call(request: Request, owner: int, entry: dict[str, Any]) -> Response:
        if not state.catalog_available:
            return HTMLResponse("<html><body><h1>503 Service Unavailable</h1></body></html>", 503)
        return await (catalog.get_model if "model_id" in request.path_params else catalog.list_models)(request)

    async def balance(request: Request, owner: int, entry: dict[str, Any]) -> Response:
        return JSONResponse(catalog.balance_body(state.balance_usd))

    async def control(request: Request) -> Response:
        action = request.path_params["action"]
        try:
            if request.method == "GET" and action in ("log", "stats"):
                with state.lock:
                    return JSONResponse(list(state.log) if action == "log" else state.stats())
            if request.method == "GET" and action == "cpu":  # this process's CPU seconds: what a load costs it
                return JSONResponse({"cpu_seconds": time.process_time()})
            body = await request.json() if request.method == "POST" and action not in ("reset", "release") else None
            if action in ("faults", "outcomes"):
                state.add_rules(body)
            elif action == "clock":
                with state.lock:
                    state.clock.update({k: float(v) for k, v in body.items() if k in state.clock})
                return JSONResponse(state.clock)
            elif action == "reset":
                state.reset()
            elif action == "release":
                return JSONResponse({"released": state.release()})
            elif action == "fetch_inputs":
                state.fetch_inputs = bool(body.get("enabled", True))
            elif action == "catalog":
                state.catalog_available = bool(body.get("available", True))
            elif action == "balance":
                state.balance_usd = float(body["balance_usd"])
            else:
                return JSONResponse({"error": f"unknown control action {action!r}"}, 404)
        except (ValueError, TypeError, AttributeError, KeyError) as error:
            return JSONResponse({"error": str(error)}, 400)
        return JSONResponse({"ok": True, **state.stats()})

    return Starlette(
        routes=[
            Route("/v1/models", api("catalog", catalog_call), methods=["GET"]),
            Route("/v1/models/{model_id:path}", api("catalog", catalog_call), methods=["GET"]),
            Route("/v1/models/{model_id:path}", api("submit", submit), methods=["POST"]),
            Route(catalog.BALANCE_PATH, api("balance", balance), methods=["GET"]),
            Route("/v1/requests/{request_id}/status", api("status", status), methods=["GET"]),
            Route("/v1/requests/{request_id}/result", api("result", result), methods=["GET"]),
            Route("/v1/requests/{request_id}/cancel", api("cancel", cancel), methods=["POST"]),
            Route("/files/synthetic/{size:int}.bin", api("file", synthetic_file), methods=["GET"]),
            Route("/files/redirect", api("file", redirect), methods=["GET"]),  # to ?to=: a CDN's redirect
            Route("/files/{request_id}/output.mp4", api("file", sample_file), methods=["GET"]),
            Route("/files/{request_id}/output.png", api("file", sample_image), methods=["GET"]),
            Route("/files/sample.png", api("file", sample_image), methods=["GET"]),  # a public image
            Route("/_control/{action}", control, methods=["GET", "POST"]),
        ]
    )


class _QuietCuts(logging.Filter):
    """Hide uvicorn's complaints about what this server does on purpose: cut responses, and answers still
    sleeping (a ``slow`` fault) that ``stop()`` cancels."""

    def filter(self, record: logging.LogRecord) -> bool:
        cancelled = record.exc_info is not None and isinstance(record.exc_info[1], asyncio.CancelledError)
        return record.getMessage() != _INCOMPLETE and not cancelled


class RunComfyTestServer:
    """The app served by uvicorn in a daemon thread; ``with RunComfyTestServer() as server: ... server.url``."""

    def __init__(
        self,
        *,
        token: str = "test-token",
        tokens: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        queue_seconds: float = 0.2,
        run_seconds: float = 0.3,
        model_ids: Iterable[str] | None = None,
        fetch_inputs: bool = False,
    ):
        self.token, self.host, self.port = token, host, port
        self.state = State([token, *tokens], queue_seconds, run_seconds, model_ids)
        self.state.fetch_inputs = fetch_inputs
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> RunComfyTestServer:
        """Bind (a free port when ``port=0``), serve in a daemon thread, and return once connections are accepted."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        uvicorn_logger = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, _QuietCuts) for f in uvicorn_logger.filters):
            uvicorn_logger.addFilter(_QuietCuts())
        # log_config=None: leave the host process's logging (pytest's, Airflow's) alone.
        options = {"log_config": None, "log_level": "warning", "access_log": False, "lifespan": "off", "ws": "none"}
        self._server = uvicorn.Server(uvicorn.Config(create_app(self.state), **options))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"runcomfy-test-server-{self.port}"
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the RunComfy test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop at once: in-flight answers (a ``slow`` fault's sleep) are abandoned, not awaited."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = self._server.force_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> RunComfyTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def add_faults(self, rules: dict[str, Any] | Iterable[dict[str, Any]]) -> None:
        """Queue fault rules, e.g. ``{"call": "submit", "fault": "drop"}``; see ``State.add_rules``."""
        self.state.add_rules(rules)

    def add_outcomes(self, rules: dict[str, Any] | Iterable[dict[str, Any]]) -> None:
        """Queue outcomes of the next jobs, e.g. ``{"outcome": "failed", "error": "moderated"}``.

        Besides ``outcome`` a rule may set ``error``, ``output``, ``synthetic_size``, ``cost``, ``queue_seconds``,
        ``run_seconds``, ``queue_polls: n`` (the job stays queued until its status has been read n times, then
        starts: a test can let a job end while a task watches it, whatever the machine's speed), and
        ``result_lag: n`` (the job's first n result calls after it finished still say ``in_progress`` while its
        status says ``completed``).
        """
        self.state.add_rules(rules)

    def set_clock(self, queue_seconds: float | None = None, run_seconds: float | None = None) -> None:
        """Durations for jobs submitted from now on."""
        with self.state.lock:
            for name, value in (("queue_seconds", queue_seconds), ("run_seconds", run_seconds)):
                if value is not None:
                    self.state.clock[name] = float(value)

    def reset(self) -> None:
        self.state.reset()

    def set_fetch_inputs(self, enabled: bool = True) -> None:
        """Fetch every URL input at submit (``*_url``, ``*_urls``) without credentials, as RunComfy does; a job
        whose input cannot be fetched ends ``failed`` (``INPUT_FETCH_FAILED``, naming the input). The log entry of
        the submit lists what each fetch answered under ``fetched``."""
        self.state.fetch_inputs = enabled

    def set_catalog_available(self, available: bool = True) -> None:
        """``False``: every catalog call answers 503 (a gateway's HTML page), as when the catalog is down."""
        self.state.catalog_available = available

    def set_balance(self, balance_usd: float) -> None:
        """What the balance endpoint (``/prod/v2/balance``) answers from now on; 10 USD by default."""
        self.state.balance_usd = float(balance_usd)

    def release(self) -> int:
        """Start every queued job now; see ``State.release``."""
        return self.state.release()

    @property
    def log(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [dict(entry) for entry in self.state.log]

    @property
    def submits(self) -> int:
        return self.state.submits

    @property
    def cancels(self) -> int:
        return self.state.cancels

    def connection_json(self) -> str:
        """The value of ``AIRFLOW_CONN_RUNCOMFY_DEFAULT`` (Airflow reads JSON connections from the environment)."""
        balance_url = f"{self.url}{catalog.BALANCE_PATH}"  # RunComfy's is on another host: a connection extra
        extra = {"balance_url": balance_url}
        return json.dumps({"conn_type": "runcomfy", "host": self.url, "password": self.token, "extra": extra})


def main(argv: list[str] | None = None) -> None:
    """Serve in the foreground until SIGINT or SIGTERM; print the URL once ready."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    # From the environment too: a token on a command line shows in `ps` and in logs that echo commands.
    token = os.environ.get("RUNCOMFY_TEST_SERVER_TOKEN", "test-token")
    parser.add_argument("--token", default=token, help="default: $RUNCOMFY_TEST_SERVER_TOKEN or test-token")
    parser.add_argument("--queue-seconds", type=float, default=0.2)
    parser.add_argument("--run-seconds", type=float, default=0.3)
    parser.add_argument(
        "--model-id",
        dest="model_ids",
        action="append",
        default=None,
        help="serve only this model id, and the PixVerse and local test ones (repeat); by default any well-formed "
        "id is served",
    )
    parser.add_argument("--fetch-inputs", action="store_true", help="fetch every URL input at submit, as RunComfy does")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    signals: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, _frame: signals.append(signum))
    with RunComfyTestServer(**vars(args)) as server:
        print(f"RunComfy test server on {server.url}", flush=True)
        while not signals:  # a plain sleep loop: signal handlers run between sleeps, no lock to deadlock on
            time.sleep(0.2)


if __name__ == "__main__":
    main()
