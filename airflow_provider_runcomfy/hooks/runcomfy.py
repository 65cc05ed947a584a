"""RunComfyHook: the only code that speaks to RunComfy's Model API, and the only code that waits for a job.

Sync calls (operators on a worker) go over one kept-alive ``requests.Session``; async calls (triggers) over an
``aiohttp.ClientSession`` shared by every hook of an event loop. Both use one retry policy: reads are retried on
connection errors, timeouts, 429 and 5xx; a submit is retried only when it provably never reached the server,
because RunComfy has no idempotency key and a submit that arrives twice is paid twice.

Waiting follows one terminal rule (:func:`_watch`) on both sides: the sync wait, the trigger and a sensor's poke.
"""

from __future__ import annotations

import email.utils
import ipaddress
import time
import weakref
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import requests
from airflow.providers.common.compat.sdk import BaseHook
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from airflow_provider_runcomfy import __version__
from airflow_provider_runcomfy.exceptions import (
    RunComfyAuthError,
    RunComfyConnectionError,
    RunComfyError,
    RunComfyInsufficientBalanceError,
    RunComfyInvalidInputError,
    RunComfyNotFoundError,
    RunComfyRateLimitError,
    RunComfyServerError,
    RunComfyTimeoutError,
)
from airflow_provider_runcomfy.io.inputs import without_query
from airflow_provider_runcomfy.schemas import check_model_id, validate_inputs
from airflow_provider_runcomfy.schemas.api import CancelResponse, RequestResult, RequestStatus, SubmitResponse
from airflow_provider_runcomfy.schemas.catalog import Balance, CatalogModel, ModelPage
from airflow_provider_runcomfy.version_compat import aget_connection, mask_secret

if TYPE_CHECKING:
    import asyncio
    from collections.abc import AsyncIterator

    import aiohttp

Answer = TypeVar("Answer", bound=BaseModel)

DEFAULT_BASE_URL = "https://model-api.runcomfy.net"
#: The balance lives on another host than the Model API; the connection's extra ``balance_url`` overrides it.
DEFAULT_BALANCE_URL = "https://api.runcomfy.net/prod/v2/balance"
USER_AGENT = f"airflow-provider-runcomfy/{__version__}"
OUTPUT_CHUNK_BYTES = 4 << 20  # what a download holds in memory at once (twice, while the previous is hashed)
# A request id no job can have: asking for its status is authenticated and costs nothing.
_PROBE_REQUEST_ID = "00000000-0000-0000-0000-000000000000"

# RunComfy's documented codes first (they are precise), then the HTTP status.
_ERRORS_BY_CODE: dict[int, type[RunComfyError]] = {
    400001: RunComfyInvalidInputError,
    400002: RunComfyInsufficientBalanceError,
    400004: RunComfyAuthError,
    403001: RunComfyAuthError,
    404001: RunComfyNotFoundError,
}
_ERRORS_BY_STATUS: dict[int, type[RunComfyError]] = {
    400: RunComfyInvalidInputError,
    401: RunComfyAuthError,
    402: RunComfyInsufficientBalanceError,
    403: RunComfyAuthError,
    404: RunComfyNotFoundError,
    422: RunComfyInvalidInputError,
    429: RunComfyRateLimitError,
}

# One aiohttp session per event loop and base URL: a triggerer runs hundreds of triggers in one loop, and a session
# per poll would open a connection (and a TLS handshake) per poll. aiohttp because its pool's cost per request stays
# flat with hundreds of requests waiting in it (bench/RESULTS.md). The sessions of a loop are closed when the loop
# shuts down (``asyncio.run`` and the triggerer do that), by ``_close_at_shutdown``.
# Plain dicts: their values refer to the loop, so weak keys would never expire anyway; ``_close_at_shutdown``
# removes a loop's entries. ``_closers`` holds each closer because a loop keeps its async generators in a WeakSet.
_async_clients: dict[asyncio.AbstractEventLoop, dict[str, _LoopClient]] = {}
_closers: dict[asyncio.AbstractEventLoop, AsyncIterator[None]] = {}
# Connection lookups in flight, per event loop and connection id (see ``_shared_lookup``).
_lookups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Task[Any]]] = (
    weakref.WeakKeyDictionary()
)
# The hooks' loggers by name (see ``RunComfyHook.log``).
_loggers: dict[str, Any] = {}
_NO_SECRETS: frozenset[str] = frozenset()
_POOL_SIZE = 100  # connections per loop and base URL (aiohttp's default), and as many status reads at once


class _LoopClient(NamedTuple):
    """A loop's client for one base URL: the session, and the turns its status reads take.

    Status reads, a triggerer's bulk, wait for a turn here rather than in the session's pool, so that each read knows
    when it left the queue: a trigger's cadence starts at its first read's turn (see ``_watch``), so triggers whose
    first reads queued together read apart, instead of in one burst every interval. Results and cancels, one per
    job, skip the queue.
    """

    session: aiohttp.ClientSession
    read_turns: asyncio.Semaphore


class RunComfyHook(BaseHook):
    """Submit, watch, read and cancel RunComfy requests.

    :param runcomfy_conn_id: Connection of type ``runcomfy``: password = API token, host = optional base URL,
        extra ``balance_url`` = optional URL of the balance endpoint.
    :param timeout: Seconds to wait for an answer to one HTTP call (connecting is capped at 10 s).
    :param max_retries: Retries of a read after a transient failure (and of a submit that never left).
    :param retry_min_wait: First backoff in seconds; it doubles (with jitter) up to ``retry_max_wait``.
    :param retry_max_wait: Longest wait between two tries; also the cap on a server's ``Retry-After``.
    """

    conn_name_attr = "runcomfy_conn_id"
    default_conn_name = "runcomfy_default"
    conn_type = "runcomfy"
    hook_name = "RunComfy"

    def __init__(
        self,
        runcomfy_conn_id: str = default_conn_name,
        *,
        timeout: float = 60.0,
        max_retries: int = 5,
        retry_min_wait: float = 1.0,
        retry_max_wait: float = 60.0,
    ) -> None:
        super().__init__()
        self.runcomfy_conn_id = runcomfy_conn_id
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_min_wait = retry_min_wait
        self.retry_max_wait = retry_max_wait
        self._credentials: tuple[str, str] | None = None
        self._balance_url = DEFAULT_BALANCE_URL
        # Signed input URLs (and their query strings), redacted like the token. Most hooks (one per trigger) never
        # hold one, and share one empty frozenset (``frozenset()`` makes a new one each time).
        self._secrets: frozenset[str] = _NO_SECRETS
        self._status_read_at = 0.0  # time.monotonic() when the last async status read left its queue

    @property
    def log(self) -> Any:
        """One logger per name, shared by every hook. Airflow makes a logger per object, and on Airflow 3.1+ its
        first line sets it up (a structlog processor chain, a file wrapper and a system call: about three log lines'
        worth); a triggerer makes a hook per trigger, each of which logs twice."""
        if self._log is None:
            name = self._create_logger_name(type(self), self._log_config_logger_name, self._logger_name)
            if name not in _loggers:
                _loggers[name] = super().log
            self._log = _loggers[name]
        return self._log

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form for Airflow < 3.2, which does not read it from the provider info (and spells its keys
        with underscores: ``hidden_fields``)."""
        from airflow_provider_runcomfy.get_provider_info import get_provider_info

        form = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {key.replace("-", "_"): value for key, value in form.items()}

    # -- connection -----------------------------------------------------------------------------------------

    def _read_connection(self, conn: Any) -> tuple[str, str]:
        if conn.conn_type and conn.conn_type != self.conn_type:
            self.log.warning(
                "Connection %r is of type %r, not %r: reading its password as the API token and its host as the "
                "base URL",
                self.runcomfy_conn_id,
                conn.conn_type,
                self.conn_type,
            )
        token = (conn.password or "").strip()
        if not token:
            raise RunComfyAuthError(
                f"Connection {self.runcomfy_conn_id!r} has no API token: set it as the connection's password"
            )
        if token != conn.password:  # Airflow masks the password itself when it reads the connection
            mask_secret(token)
        host = (conn.host or "").strip().rstrip("/")
        # A host without a scheme is https, unless the connection says otherwise in its schema or extra "scheme"
        # (the URI form, runcomfy://:token@host:port, has no other place for it).
        scheme = (conn.schema or _extra(conn).get("scheme") or "https").strip().lower()
        if not host:
            base_url = DEFAULT_BASE_URL
        elif "://" in host:
            base_url = host
        else:
            base_url = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        base_url = base_url.removesuffix("/v1")
        parts = urlsplit(base_url)
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise RunComfyInvalidInputError(
                f"Connection {self.runcomfy_conn_id!r} has an invalid base URL {base_url!r}: "
                "expected http(s)://host[:port], e.g. https://model-api.runcomfy.net"
            )
        extra = _extra(conn)
        balance_url = str(extra.get("balance_url") or extra.get("extra__runcomfy__balance_url") or "").strip()
        if balance_url and urlsplit(balance_url).scheme not in ("http", "https"):
            raise RunComfyInvalidInputError(
                f"Connection {self.runcomfy_conn_id!r} has an invalid balance_url {balance_url!r}: expected "
                f"http(s)://host/path, e.g. {DEFAULT_BALANCE_URL}"
            )
        self._balance_url = balance_url or DEFAULT_BALANCE_URL
        self._credentials = (base_url, token)
        return self._credentials

    def _get_credentials(self) -> tuple[str, str]:
        return self._credentials or self._read_connection(self.get_connection(self.runcomfy_conn_id))

    async def _aget_credentials(self) -> tuple[str, str]:
        if not self._credentials:
            self._credentials = await _shared_lookup(self.runcomfy_conn_id, self._alookup_credentials)
        return self._credentials

    async def _alookup_credentials(self, conn_id: str) -> tuple[str, str]:
        return self._read_connection(await aget_connection(conn_id))

    @property
    def base_url(self) -> str:
        return self._get_credentials()[0]

    # -- sync API -------------------------------------------------------------------------------------------

    def submit(self, model_id: str, inputs: BaseModel | dict[str, Any]) -> SubmitResponse:
        """Start a paid job. Inputs are validated first; a submit is never sent twice unless it never left."""
        body = validate_inputs(model_id, inputs)
        return self._call("POST", f"/v1/models/{model_id}", SubmitResponse, json=body, is_submit=True)

    def get_status(self, request_id: str) -> RequestStatus:
        """Where the job is: queued (with its position), running, completed or cancelled. Not whether it worked."""
        return self._call("GET", f"{_request_path(request_id)}/status", RequestStatus, request_id=request_id)

    def get_result(self, request_id: str, *, include_cost: bool = False) -> RequestResult:
        """The job's outcome and outputs; while it runs, its current state without outputs."""
        params = {"include_cost": "true"} if include_cost else None
        path = f"{_request_path(request_id)}/result"
        return self._call("GET", path, RequestResult, request_id=request_id, params=params)

    def cancel(self, request_id: str) -> CancelResponse:
        """Cancel a queued job. A running job cannot be cancelled: ``outcome`` says ``not_cancellable``."""
        path = f"{_request_path(request_id)}/cancel"
        return self._call("POST", path, CancelResponse, request_id=request_id)

    # -- catalog, prices, balance (undocumented endpoints that RunComfy's own CLI and MCP server use) -------------

    def list_models(
        self,
        search: str | None = None,
        category: str | None = None,
        *,
        include_schema: bool = False,
        page_size: int = 50,
    ) -> Iterator[CatalogModel]:
        """The catalog's models matching ``search`` and ``category``, fetched page by page as they are consumed."""
        offset = 0
        while True:
            params = {"search": search, "category": category, "limit": page_size, "offset": offset}
            params = {name: value for name, value in params.items() if value not in (None, "")}
            params["include_schema"] = "true" if include_schema else "false"
            page = self._call("GET", "/v1/models", ModelPage, params=params)
            yield from page.models
            offset += len(page.models)
            if len(page.models) < page_size or (page.total is not None and offset >= page.total):
                return

    def get_model(self, model_id: str) -> CatalogModel:
        """One catalog model with its input schema and price; :class:`RunComfyNotFoundError` when not listed."""
        path = f"/v1/models/{check_model_id(model_id)}"
        return self._call("GET", path, CatalogModel, params={"include_schema": "true"})

    def get_balance(self) -> Balance:
        """What the account can still spend (USD), from the balance endpoint (another host, the same token)."""
        self._get_credentials()  # reads the connection, hence its balance_url
        return self._call("GET", self._balance_url, Balance)

    @contextmanager
    def open_output(self, url: str, *, allow_loopback_http: bool = False) -> Iterator[OutputStream]:
        """Stream a generated file in chunks, without loading it: ``with hook.open_output(url) as out: ...``.

        Outputs are fetched over https only (http only to a loopback host when ``allow_loopback_http``, for the
        local server), and no credentials are sent: the output host is not the API.
        """
        _check_output_url(url, allow_loopback_http)

        def check_redirect(response: requests.Response, **_: Any) -> None:
            """Runs on every answer, before requests follows a redirect: none may lead to plain http."""
            if response.is_redirect:
                target = urljoin(response.url, response.headers["location"])
                try:
                    _check_output_url(target, allow_loopback_http)
                except RunComfyInvalidInputError:
                    response.close()
                    raise

        try:
            response = self._session.get(
                url, stream=True, timeout=(min(10.0, self.timeout), self.timeout), hooks={"response": check_redirect}
            )
        except requests.RequestException as error:
            raise self._transport_error(error, _requests_never_sent(error), "GET", url, None) from None
        with response:
            if response.status_code >= 400:
                raise RunComfyError(f"Downloading {url} failed", status_code=response.status_code)
            length = response.headers.get("Content-Length")
            yield OutputStream(url, int(length) if length else None, self._chunks(response, url))

    def _chunks(self, response: requests.Response, url: str) -> Iterator[bytes]:
        try:
            yield from response.iter_content(chunk_size=OUTPUT_CHUNK_BYTES)
        except requests.RequestException as error:
            raise self._transport_error(error, False, "GET", url, None) from None

    def check_input_url(
        self,
        url: str,
        *,
        field: str,
        kind: str | None = None,
        max_bytes: int | None = None,
        allow_loopback_http: bool = False,
    ) -> InputFile:
        """Fetch an input URL as RunComfy will, before the submit: no credentials, no cookies, from the internet.

        HEAD, then a ranged GET of its first bytes when HEAD is refused (a URL signed for GET refuses HEAD) or says
        too little. It must answer 2xx with a content type of ``kind`` (``image``, ``video``, ``audio``; a generic
        type is told by the file's first bytes) and at most ``max_bytes``. A refusal raises
        :class:`RunComfyInvalidInputError` naming ``field`` and the URL without its query string; a timeout, 429 or
        5xx is retried as reads are.
        """
        shown = without_query(url)
        where = f"{field}: {shown}"
        _check_fetchable(where, url, allow_loopback_http)
        probe = self._retrying(Retrying, False)(lambda: self._probe(url, where, sniff=kind is not None))
        declared = probe.content_type.partition("/")[0]
        told = declared if probe.content_type not in _GENERIC_TYPES else _sniff(probe.first_bytes)
        if kind and told and told != kind:
            what = probe.content_type if probe.content_type not in _GENERIC_TYPES else f"a {told} file"
            raise RunComfyInvalidInputError(f"{where}: {what or 'this file'} is not {_an(kind)}")
        if kind and not told:
            self.log.warning(
                "%s: could not tell whether it is %s (%s); RunComfy may refuse it",
                where,
                _an(kind),
                probe.content_type or "no Content-Type",
            )
        if max_bytes is not None and probe.size is not None and probe.size > max_bytes:
            raise RunComfyInvalidInputError(
                f"{where}: {probe.size / 1e6:.1f} MB is over the {max_bytes / 1e6:g} MB limit for "
                f"{kind or 'this input'}s (max_input_bytes)"
            )
        size = "size unknown" if probe.size is None else f"{probe.size / 1e6:.2f} MB"
        self.log.info("Input %s: %s, %s: RunComfy can fetch it", where, probe.content_type or "no type", size)
        return probe

    def _probe(self, url: str, where: str, *, sniff: bool) -> InputFile:
        """One look at an input URL from a session of its own (no cookies), without netrc credentials."""
        timeout = (min(10.0, self.timeout), min(30.0, self.timeout))
        with requests.Session() as stranger:
            stranger.headers["User-Agent"] = USER_AGENT
            try:
                head = stranger.head(url, allow_redirects=True, timeout=timeout, auth=_no_auth)
                response, first = head, b""
                generic = head.headers.get("Content-Type", "").split(";")[0].strip().lower() in _GENERIC_TYPES
                if not head.ok or (sniff and generic) or "Content-Length" not in head.headers:
                    with stranger.get(
                        url,
                        headers={"Range": f"bytes=0-{_SNIFF_BYTES - 1}"},
                        stream=True,
                        timeout=timeout,
                        auth=_no_auth,
                    ) as response:
                        first = response.raw.read(_SNIFF_BYTES) if response.ok else b""
            except requests.RequestException as error:  # retried as reads are: nothing was paid for
                detail = f"{type(error).__name__}: {self._redact(str(error))}"
                raise RunComfyConnectionError(f"{where}: could not be fetched ({detail})", never_sent=True) from None
        status = response.status_code
        if status == 429 or status >= 500:
            transient = RunComfyRateLimitError if status == 429 else RunComfyServerError
            raise transient(f"{where}: the input's host answered HTTP {status}", status_code=status)
        if status >= 400:
            raise RunComfyInvalidInputError(f"{where}: HTTP {status}{_refusal_reason(status, url)}")
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        length = total if total.isdigit() else response.headers.get("Content-Length") if status != 206 else None
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        return InputFile(where, content_type, int(length) if length and length.isdigit() else None, first)

    def mask(self, secret: str) -> None:
        """Keep ``secret`` (a signed URL) out of logs and out of this hook's error messages."""
        for value in {secret, urlsplit(secret).query} - {""}:
            mask_secret(value)
            self._secrets |= {value}

    def wait_for_request(
        self,
        request_id: str,
        *,
        timeout: float,
        poll_interval: float = 10.0,
        include_cost: bool = False,
        cancel_on_timeout: bool = True,
    ) -> RequestResult:
        """Poll until the request has finished and return its final result (succeeded, failed or cancelled).

        Past ``timeout`` seconds, a job still queued is cancelled (``cancel_on_timeout``) and
        :class:`RunComfyTimeoutError` is raised; a running job cannot be cancelled and is left to finish.
        """
        watch = _watch(request_id, self.log, timeout, poll_interval, include_cost, cancel_on_timeout)
        return self._drive(watch, request_id, stop_at_sleep=False)

    def poll_request(
        self, request_id: str, *, include_cost: bool = False, waiting_since: float | None = None
    ) -> RequestResult | None:
        """One look: the final result if the request has finished, ``None`` while it runs (a sensor's poke).

        ``waiting_since`` (epoch seconds) makes the logged state say how long the caller has waited.
        """
        watch = _watch(request_id, self.log, float("inf"), 0.0, include_cost, False, since=waiting_since)
        return self._drive(watch, request_id, stop_at_sleep=True)

    def _drive(
        self, watch: Generator[_Call, Any, RequestResult], request_id: str, *, stop_at_sleep: bool
    ) -> RequestResult | None:
        answer = None
        try:
            while True:
                call = watch.send(answer)
                if call.method is None:
                    if stop_at_sleep:
                        return None
                    answer = time.sleep(call.seconds)
                else:
                    answer = getattr(self, call.method)(request_id, **call.kwargs)
        except StopIteration as done:
            return done.value

    def test_connection(self) -> tuple[bool, str]:
        """Ask for the status of a request that cannot exist: authenticated, free, and it proves the token."""
        try:
            self.get_status(_PROBE_REQUEST_ID)
        except RunComfyNotFoundError:
            return True, f"Connected to {self.base_url}: the API token is accepted."
        except RunComfyError as error:
            return False, str(error)
        return True, f"Connected to {self.base_url}."

    def close(self) -> None:
        """Release the kept-alive connections of the sync session."""
        if "_session" in self.__dict__:
            self._session.close()
            del self.__dict__["_session"]

    @cached_property
    def _session(self) -> requests.Session:
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        return session

    def _call(
        self,
        method: str,
        path: str,
        answer: type[Answer],
        *,
        request_id: str | None = None,
        is_submit: bool = False,
        **kwargs: Any,
    ) -> Answer:
        base_url, token = self._get_credentials()

        def attempt() -> Answer:
            try:
                response = self._session.request(
                    method,
                    path if "://" in path else base_url + path,  # the balance is on another host
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=(min(10.0, self.timeout), self.timeout),
                    **kwargs,
                )
            except requests.RequestException as error:
                raise self._transport_error(error, _requests_never_sent(error), method, path, request_id) from None
            return self._parse(response.status_code, response.headers, response.content, answer, request_id)

        return self._retrying(Retrying, is_submit)(attempt)

    # -- async API (triggers) -------------------------------------------------------------------------------

    async def aget_status(self, request_id: str) -> RequestStatus:
        return await self._acall("GET", f"{_request_path(request_id)}/status", RequestStatus, request_id)

    async def aget_result(self, request_id: str, *, include_cost: bool = False) -> RequestResult:
        params = {"include_cost": "true"} if include_cost else None
        path = f"{_request_path(request_id)}/result"
        return await self._acall("GET", path, RequestResult, request_id, params=params)

    async def acancel(self, request_id: str) -> CancelResponse:
        return await self._acall("POST", f"{_request_path(request_id)}/cancel", CancelResponse, request_id)

    async def await_request(
        self,
        request_id: str,
        *,
        timeout: float,
        poll_interval: float = 10.0,
        include_cost: bool = False,
        cancel_on_timeout: bool = True,
    ) -> RequestResult:
        """:meth:`wait_for_request` for an event loop (the triggerer): the same rule, the same answers."""
        import asyncio

        watch = _watch(
            request_id,
            self.log,
            timeout,
            poll_interval,
            include_cost,
            cancel_on_timeout,
            read_started=self._status_read_started,
        )
        answer = None
        try:
            while True:
                call = watch.send(answer)
                if call.method is None:
                    seconds = call.seconds
                    # Neither kept while sleeping: the objects that a thousand sleeping triggers hold reach the
                    # garbage collector's oldest generation, and the more there are, the sooner a full collection.
                    del call, answer
                    answer = await asyncio.sleep(seconds)
                else:  # the async twin of the sync method: aget_status, aget_result, acancel
                    answer = await getattr(self, f"a{call.method}")(request_id, **call.kwargs)
        except StopIteration as done:
            return done.value

    async def _acall(self, method: str, path: str, answer: type[Answer], request_id: str, **kwargs: Any) -> Answer:
        # Most calls succeed at once, and tenacity's bookkeeping per call is not free when a triggerer polls for
        # hundreds of jobs. So the first try runs bare; if it fails, its error is replayed to tenacity as its first
        # try, and the one retry policy decides as always.
        try:
            return await self._atry(method, path, answer, request_id, kwargs)
        except RunComfyError as error:
            first_failure = error
        return await self._aretry(first_failure, method, path, answer, request_id, kwargs)

    async def _aretry(
        self,
        first_failure: RunComfyError,
        method: str,
        path: str,
        answer: type[Answer],
        request_id: str,
        kwargs: dict[str, Any],
    ) -> Answer:
        """Tenacity takes over from a failed first try (apart from ``_acall``, which then needs no closure)."""
        failures = [first_failure]

        async def replay_then_try() -> Answer:
            if failures:
                raise failures.pop()
            return await self._atry(method, path, answer, request_id, kwargs)

        return await self._retrying(AsyncRetrying, False)(replay_then_try)

    async def _atry(
        self, method: str, path: str, answer: type[Answer], request_id: str, kwargs: dict[str, Any]
    ) -> Answer:
        """One HTTP call over the loop's shared session."""
        import aiohttp

        base_url, token = self._credentials or await self._aget_credentials()
        headers = {"Authorization": f"Bearer {token}"}
        client = self._async_client(base_url)
        turns = client.read_turns if answer is RequestStatus else None
        try:
            if turns is not None:
                await _take_turn(turns, self.timeout)
                self._status_read_at = time.monotonic()
            try:
                async with client.session.request(
                    method, base_url + path, headers=headers, timeout=_client_timeout(self.timeout), **kwargs
                ) as response:
                    content = await response.read()
            finally:
                if turns is not None:
                    turns.release()
        except (TimeoutError, aiohttp.ClientError) as error:
            never_sent = isinstance(error, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
            raise self._transport_error(error, never_sent, method, path, request_id) from None
        return self._parse(response.status, response.headers, content, answer, request_id)

    def _async_client(self, base_url: str) -> _LoopClient:
        """The running event loop's client for ``base_url``, shared by every hook in that loop."""
        import asyncio

        import aiohttp

        clients = _loop_clients()
        client = clients.get(base_url)
        if client is None or client.session.closed:
            connector = aiohttp.TCPConnector(limit=_POOL_SIZE)
            session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}, connector=connector)
            client = clients[base_url] = _LoopClient(session, asyncio.Semaphore(_POOL_SIZE))
        return client

    def _status_read_started(self) -> float:
        """When this hook's last status read left its queue, for ``_watch``. (A hook that waits on several requests at
        once gives the latest read of any: a little later, never sooner.)"""
        return self._status_read_at

    # -- shared by both sides -------------------------------------------------------------------------------

    def _retrying(self, kind: type[Retrying] | type[AsyncRetrying], is_submit: bool) -> Any:
        """The one retry policy (tenacity), for the sync and async sides.

        Reads are retried on connection errors, timeouts, 429 and 5xx; a submit only when it never left. The wait
        doubles from ``retry_min_wait`` (with as much jitter) up to ``retry_max_wait``; a server's ``Retry-After``
        takes precedence, capped the same. At most ``max_retries`` retries.
        """
        backoff = wait_exponential_jitter(
            multiplier=self.retry_min_wait, max=self.retry_max_wait, jitter=self.retry_min_wait
        )

        def retryable(error: BaseException) -> bool:
            if isinstance(error, RunComfyConnectionError):
                return error.never_sent or not is_submit
            if isinstance(error, RunComfyRateLimitError):  # a 429 refused the submit: no job was created
                return True
            return not is_submit and isinstance(error, RunComfyServerError)

        def wait(state: RetryCallState) -> float:
            retry_after = getattr(state.outcome.exception() if state.outcome else None, "retry_after", None)
            return min(retry_after, self.retry_max_wait) if retry_after is not None else backoff(state)

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0
            self.log.warning("RunComfy call failed (%s); try %d again in %.1fs", error, state.attempt_number, delay)

        return kind(
            retry=retry_if_exception(retryable),
            wait=wait,
            stop=stop_after_attempt(self.max_retries + 1),
            before_sleep=log_retry,
            reraise=True,
        )

    def _transport_error(
        self, error: Exception, never_sent: bool, method: str, path: str, request_id: str | None
    ) -> RunComfyConnectionError:
        reached = "never reached the server" if never_sent else "may have reached the server"
        message = f"{method} {path} failed ({type(error).__name__}: {self._redact(str(error))}); the request {reached}"
        if _is_tls_handshake_failure(error):
            message += " (the TLS handshake failed: is this host plain http? Then give the base URL as http://...)"
        return RunComfyConnectionError(message, never_sent=never_sent, request_id=request_id)

    def _parse(
        self, status_code: int, headers: Any, content: bytes, answer: type[Answer], request_id: str | None
    ) -> Answer:
        """Turn an HTTP answer into the answer model, or into the error it stands for."""
        if status_code < 400:
            # The usual answer, parsed from its bytes in one step (pydantic's own JSON parser: a third of the cost
            # of json.loads and then validating the dict); anything else takes the path below, which says what it is.
            try:
                parsed = answer.model_validate_json(content)
            except ValidationError:
                pass
            else:
                if "error_code" not in (parsed.model_extra or ()):
                    return self._checked(parsed, request_id)
        try:
            body = _json(content)
        except ValueError:
            body = None
        if status_code >= 400 or body is None or "error_code" in body:
            raise self._api_error(status_code, headers, body, content, request_id)
        if request_id and "request_id" not in body:
            body = {**body, "request_id": request_id}
        try:
            parsed = answer.model_validate(body)
        except ValidationError as error:
            raise RunComfyServerError(
                f"Unexpected {answer.__name__} from RunComfy: {self._redact(str(error))}",
                status_code=status_code,
                request_id=request_id,
            ) from None
        return self._checked(parsed, request_id)

    def _checked(self, parsed: Answer, request_id: str | None) -> Answer:
        if not getattr(parsed, "is_known", True):
            self.log.warning("RunComfy request %s has an undocumented status %r", request_id, parsed.status)
        return parsed

    def _api_error(
        self, status_code: int, headers: Any, body: dict[str, Any] | None, content: bytes, request_id: str | None
    ) -> RunComfyError:
        body = body or {}
        code = body.get("code", body.get("error_code"))
        message = body.get("message") or body.get("error_message") or body.get("error") or body.get("detail")
        if not isinstance(message, str):
            message = str(message) if message else content[:200].decode(errors="replace").strip()
        message = self._redact(message or f"HTTP {status_code}")
        kind = _ERRORS_BY_CODE.get(_as_int(code)) or _ERRORS_BY_STATUS.get(status_code)
        if kind is None:
            # 5xx, or a success status whose body is not the JSON object promised, is the server's fault;
            # an error code in a 200 answer is a refusal we do not know, and is not retried blindly.
            kind = RunComfyServerError if status_code >= 500 or code is None else RunComfyError
        details = {"status_code": status_code, "code": code, "request_id": request_id}
        if kind is RunComfyRateLimitError:
            retry_after = _retry_after_seconds(headers.get("Retry-After"))
            return RunComfyRateLimitError(f"Rate limited: {message}", retry_after=retry_after, **details)
        if status_code == 401 or _as_int(code) == 400004:
            refused = f"RunComfy refused the API token of connection {self.runcomfy_conn_id!r} (missing, expired or"
            return RunComfyAuthError(f"{refused} revoked: check its password): {message}", **details)
        return kind(f"RunComfy answered: {message}", **details)

    def _redact(self, text: str) -> str:
        token = self._credentials[1] if self._credentials else None
        for secret in sorted({token, *self._secrets} - {None, ""}, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


async def _shared_lookup(conn_id: str, lookup: Callable[[str], Awaitable[Any]]) -> Any:
    """``await lookup(conn_id)``, shared by the hooks that need the same connection at the same moment.

    Triggers often start together (a triggerer restarting, a mapped task deferring): they then make one connection
    lookup (a round trip to the triggerer's supervisor and the API server) and read it once, not once each. Nothing
    is cached: a lookup that starts after this one finished reads the connection afresh.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    pending = _lookups.setdefault(loop, {})
    task = pending.get(conn_id)
    if task is None:
        task = pending[conn_id] = loop.create_task(lookup(conn_id))
        task.add_done_callback(lambda _: pending.pop(conn_id, None))
    return await asyncio.shield(task)  # one waiter cancelled does not cancel the others' lookup


@cache
def _client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """The async calls' timeouts, made once per value (every poll of every trigger uses them): waiting for a pooled
    connection and connecting count as connecting (nothing sent yet, capped at 10 s); then each read."""
    import aiohttp

    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_connect=min(10.0, seconds), sock_read=seconds)


async def _take_turn(turns: asyncio.Semaphore, seconds: float) -> None:
    """A status read's turn; waited for as long as a pooled connection would be (``_client_timeout``)."""
    import asyncio

    import aiohttp

    if not turns.locked():
        await turns.acquire()  # at once
        return
    try:
        async with asyncio.timeout(seconds):
            await turns.acquire()
    except TimeoutError:
        raise aiohttp.ConnectionTimeoutError(f"no turn to read within {seconds:g}s: the loop's reads queue") from None


def _loop_clients() -> dict[str, _LoopClient]:
    """The running loop's clients by base URL; the first call also arranges for them to close with the loop."""
    import asyncio
    import contextlib

    loop = asyncio.get_running_loop()
    clients = _async_clients.get(loop)
    if clients is None:
        clients = _async_clients[loop] = {}
        closer = _closers[loop] = _close_at_shutdown(loop, clients)
        # Starting an async generator registers it with the running loop, whose shutdown (``shutdown_asyncgens``,
        # run by ``asyncio.run`` and by the triggerer on exit) closes it, which runs its ``finally``. Its body
        # awaits nothing before its ``yield``, so one synchronous step gets it there.
        with contextlib.suppress(StopIteration):
            closer.__anext__().send(None)  # type: ignore[attr-defined]
    return clients


async def _close_at_shutdown(loop: asyncio.AbstractEventLoop, clients: dict[str, _LoopClient]):
    try:
        yield
    finally:
        _async_clients.pop(loop, None)
        _closers.pop(loop, None)
        for client in list(clients.values()):
            await client.session.close()


class _Call(NamedTuple):
    """What :func:`_watch` asks its driver for: a call of the hook's ``method`` (``get_status``, ``get_result``,
    ``cancel``; the async side calls their ``a``-prefixed twins) with ``kwargs``, or, without a method, a sleep.
    (A tuple: one is made per poll.)"""

    method: str | None
    kwargs: Mapping[str, Any] = MappingProxyType({})
    seconds: float = 0.0


_READ_STATUS = _Call("get_status")


def _watch(
    request_id: str,
    log: Any,
    timeout: float,
    poll_interval: float,
    include_cost: bool,
    cancel_on_timeout: bool,
    *,
    since: float | None = None,
    read_started: Callable[[], float] | None = None,
) -> Generator[_Call, Any, RequestResult]:
    """The one terminal rule, free of I/O so that the sync and the async side drive the same code.

    A request has finished when the status call says so and the result call agrees: the status call says
    ``completed`` for a failed job too, and the result can lag behind it, still saying ``in_progress``. The result's
    status (succeeded, failed, cancelled) is returned; :meth:`RequestResult.raise_for_outcome` judges it. Past the
    deadline a still-queued job is cancelled (if ``cancel_on_timeout``) and :class:`RunComfyTimeoutError` raised.
    ``read_started``, if given, says when the last status read actually started (``time.monotonic()``), after any
    queue of the driver's own (the async side's turns).
    """
    progress = Progress(request_id, log, since=time.time() if since is None else since)
    deadline = time.monotonic() + timeout
    first_read_at: float | None = None
    while True:
        read_at = time.monotonic()
        status: RequestStatus = yield _READ_STATUS
        if read_started is not None:
            read_at = read_started()
        if first_read_at is None:
            first_read_at = read_at
        progress.update(status.status, status.queue_position)
        if status.is_finished:
            result: RequestResult = yield _Call("get_result", {"include_cost": include_cost})
            if result.is_finished:
                return result
            del result
        del status  # not kept while sleeping (see await_request)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            cancelled = cancel_on_timeout and (yield _Call("cancel")).cancelled
            if cancelled:
                what = "it was still queued and has been cancelled"
            elif cancel_on_timeout:
                what = "it could not be cancelled (already running: RunComfy still charges it)"
            else:
                what = "it was left running"
            raise RunComfyTimeoutError(
                f"RunComfy request did not finish within {timeout:.0f}s; {what}",
                cancelled=cancelled,
                request_id=request_id,
            )
        # Reads keep a fixed cadence: one per interval, counted from the first read's start. Round trips and waits
        # for a turn (tens of ms each at thousands of triggers) do not add up over the intervals; a read that ends
        # past its interval is followed at once. Each trigger's cadence starts when its first read got its turn, so
        # triggers started together (a triggerer's restart, a mapped task) do not read in one burst ever after.
        intervals_done = (read_at - first_read_at) // poll_interval + 1 if poll_interval > 0 else 0
        until_next_read = max(0.0, first_read_at + intervals_done * poll_interval - time.monotonic())
        yield _Call(None, seconds=min(until_next_read, remaining))


class Progress:
    """Logs each change of a request's state once, with its queue position and the time waited since ``since``."""

    def __init__(self, request_id: str, log: Any, *, since: float) -> None:
        self.request_id = request_id
        self.log = log
        self.since = since
        self.last: tuple[str, int | None] | None = None

    def update(self, status: str, queue_position: int | None = None) -> None:
        if (status, queue_position) == self.last:
            return
        self.last = (status, queue_position)
        where = f" (queue position {queue_position})" if queue_position is not None else ""
        elapsed = max(0.0, time.time() - self.since)
        self.log.info("RunComfy request %s is %s%s after %.1fs", self.request_id, status, where, elapsed)


@dataclass(frozen=True)
class InputFile:
    """What the pre-flight check saw of an input: where (URL without its query), its type, size and first bytes."""

    where: str
    content_type: str
    size: int | None
    first_bytes: bytes = b""


# Content types that say nothing about the file (S3's default for an upload without one, among them).
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown"})
_SNIFF_BYTES = 16
# How a file starts, by kind: enough to tell an image from a video or a web page when the type says nothing.
_MAGIC: tuple[tuple[str, bytes, int], ...] = (
    ("image", b"\x89PNG\r\n\x1a\n", 0),
    ("image", b"\xff\xd8\xff", 0),
    ("image", b"GIF8", 0),
    ("image", b"WEBP", 8),
    ("image", b"BM", 0),
    ("video", b"ftyp", 4),
    ("video", b"\x1aE\xdf\xa3", 0),
    ("audio", b"ID3", 0),
    ("audio", b"WAVE", 8),
    ("audio", b"OggS", 0),
    ("audio", b"fLaC", 0),
    ("text", b"<", 0),
    ("text", b"{", 0),
)


def _sniff(first: bytes) -> str | None:
    """The kind of file that starts with ``first`` (``image``, ``video``, ``audio``, ``text``), or None."""
    for kind, magic, offset in _MAGIC:
        if first[offset : offset + len(magic)] == magic:
            return kind
    return None


def _an(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """An explicit "no credentials": without it, requests would send a matching ~/.netrc entry."""
    return request


def _check_fetchable(where: str, url: str, allow_loopback_http: bool) -> None:
    """RunComfy fetches from the internet: an input on a loopback or private address can never reach it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RunComfyInvalidInputError(f"{where}: not an http(s) URL that RunComfy can fetch")
    if allow_loopback_http and _is_loopback(parts.hostname):
        return
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        address = None
    if parts.hostname == "localhost" or (address is not None and not address.is_global):
        raise RunComfyInvalidInputError(
            f"{where}: {parts.hostname} is not an internet address, and RunComfy fetches inputs from the internet"
        )


def _refusal_reason(status: int, url: str) -> str:
    if status in (401, 403):
        if urlsplit(url).query:
            return ": the store refused the signed URL (expired, or signed by credentials that cannot read it)"
        return ": the object is private; pass its object-store URI (such as s3://conn@bucket/key) to have it signed"
    if status in (404, 410):
        return ": there is no file at this URL"
    return ""


@dataclass(frozen=True)
class OutputStream:
    """An output being downloaded: its URL, its announced size (``Content-Length``) and its body in chunks."""

    url: str
    length: int | None
    chunks: Iterator[bytes]


def _check_output_url(url: str, allow_loopback_http: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and allow_loopback_http and _is_loopback(parts.hostname):
        return
    allowed = "https URLs" + (", or http to a loopback host" if allow_loopback_http else "")
    raise RunComfyInvalidInputError(f"Refusing to download output {url!r}: only {allowed} are fetched")


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _request_path(request_id: str) -> str:
    if not isinstance(request_id, str) or not request_id.strip():
        raise RunComfyInvalidInputError(f"request_id must be a non-empty string, not {request_id!r}")
    if request_id.strip() in ("None", "null"):  # what Jinja makes of an xcom_pull that found nothing
        raise RunComfyInvalidInputError(
            f"request_id is {request_id!r}: its template rendered to nothing (does the xcom_pull name the task and "
            "key that pushed it, such as key='request_id'?)"
        )
    return f"/v1/requests/{quote(request_id.strip(), safe='')}"


def _requests_never_sent(error: requests.RequestException) -> bool:
    """True only when ``requests`` failed before a byte of the request could reach the server."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    if isinstance(error, requests.ConnectionError):
        from urllib3.exceptions import MaxRetryError, NewConnectionError

        reason = error.args[0].reason if error.args and isinstance(error.args[0], MaxRetryError) else None
        # refused, unreachable, or a name that does not resolve; or a TLS handshake that failed before the request
        return isinstance(reason, NewConnectionError) or _is_tls_handshake_failure(error)
    return False


# What OpenSSL says when the handshake itself fails (a plain-http server answering, no common protocol): the HTTP
# request is sent only after a handshake, so none of it left. Errors later on an established TLS connection say
# other things, and stay "may have reached the server".
_HANDSHAKE_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "RECORD_LAYER_FAILURE",
        "UNKNOWN_PROTOCOL",
        "UNSUPPORTED_PROTOCOL",
        "NO_PROTOCOLS_AVAILABLE",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "TLSV1_ALERT_INTERNAL_ERROR",
    }
)


def _is_tls_handshake_failure(error: BaseException) -> bool:
    """True when ``error`` or what it wraps is a TLS handshake failure, by its type or OpenSSL's reason."""
    import ssl

    return any(
        isinstance(cause, ssl.SSLCertVerificationError)
        or (isinstance(cause, ssl.SSLError) and getattr(cause, "reason", None) in _HANDSHAKE_REASONS)
        for cause in _causes(error)
    )


def _causes(error: BaseException | None) -> Iterator[BaseException]:
    """``error`` and what it wraps: urllib3 keeps the cause in ``.reason``, requests in ``args[0]``."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        wrapped = getattr(error, "reason", None)
        if not isinstance(wrapped, BaseException):
            first = error.args[0] if error.args else None
            wrapped = first if isinstance(first, BaseException) else error.__cause__ or error.__context__
        error = wrapped


def _json(content: bytes) -> dict[str, Any] | None:
    import json

    value = json.loads(content) if content else None
    return value if isinstance(value, dict) else None


def _extra(conn: Any) -> dict[str, Any]:
    try:
        extra = conn.extra_dejson
    except (AttributeError, ValueError):
        return {}
    return extra if isinstance(extra, dict) else {}


def _as_int(code: Any) -> int | None:
    try:
        return int(code)
    except (TypeError, ValueError):
        return None


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` is either seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
