"""Waiting at scale: what N in-flight RunComfy requests cost the triggerer that watches them.

N jobs (100, 1000, then 5000) are submitted to the local RunComfy server, which runs in a process of its own, holds
them in its queue until the watch begins, then finishes them on a clock, spread over a few seconds. One asyncio loop
then watches all of them, in four ways, each in a process of its own, interleaved over several rounds:

- ``runcomfy``: ``RunComfyRequestTrigger`` instances, rebuilt from ``serialize()`` and iterated as the triggerer
  does (one task per trigger, first event taken, generator closed). Each has its own hook; the hooks share one
  ``aiohttp.ClientSession`` per event loop.
- ``floor_httpx``: a minimal hand-written loop over one shared ``httpx.AsyncClient``: status, result when
  finished, sleep. The hook used httpx until this benchmark showed what its connection pool costs.
- ``floor_aiohttp``: the same minimal loop over one shared ``aiohttp.ClientSession``, the client the hook now uses:
  the floor the provider is held to.
- ``http_hook``: what a user would otherwise build: the HTTP provider's ``HttpAsyncHook`` polling the same
  endpoints, with one aiohttp session per request as the HTTP provider's own triggers (``HttpTrigger``,
  ``HttpSensorTrigger``) do.

All four read the status every ``--interval`` seconds and the result once the status says the job is done. At
N = 5000, above a triggerer's default capacity, the watching process runs with ``[triggerer] capacity`` raised to N
as a user would raise it, and only the two contenders that keep up on this machine run (see ``NOTES``).
Reported: CPU seconds of the watching process per 1000 HTTP requests, its peak RSS, HTTP requests and TCP
connections per job (from the server's request log), and the delay from a job's ``finished_at`` on the server to
its event. Run: ``.venv/bin/python bench/trigger_fanout.py`` (``--quick`` for one small round).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import _common
import httpx
from _common import verdict

CONTENDERS = ("runcomfy", "floor_httpx", "floor_aiohttp", "http_hook")
MODEL = "test/bench"  # any "test/..." model is accepted by the local server, without input validation
DONE = ("completed", "cancelled")  # what the status call says of a job that no longer runs
FINAL = ("succeeded", "failed", "cancelled")  # what the result call says of it
WATCH_LIMIT = 300.0  # seconds: every watch gives up after this, so every loop is bounded
CHART = _common.BENCH / "trigger_fanout.png"
SIZES = (100, 1000, 5000)
# floor_httpx and http_hook already fall behind their poll interval at N = 1000 on this machine; at 5000 they would
# only measure how far behind (http_hook opens a TCP connection per request: 5000 a second).
KEEPING_UP = {5000: ("runcomfy", "floor_aiohttp")}
TRIGGERER_CAPACITY = 1000  # Airflow's default [triggerer] capacity


FIRST_FINISH, SPREAD = 2.0, 3.0  # the jobs finish FIRST_FINISH + SPREAD * i / N seconds after the watch begins


def contenders(n: int) -> tuple[str, ...]:
    return KEEPING_UP.get(n, CONTENDERS)


# -- the child: one contender watching N jobs in one event loop --------------------------------------------------


async def submit_all(url: str, n: int) -> list[str]:
    """Submit n jobs (not measured), 50 at a time, with a session of their own."""
    import aiohttp

    headers = {"Authorization": f"Bearer {_common.TOKEN}"}
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=50)) as session:

        async def submit() -> str:
            async with session.post(f"{url}/v1/models/{MODEL}", json={"prompt": "x"}) as response:
                return (await response.json())["request_id"]

        return await asyncio.gather(*(submit() for _ in range(n)))


def runcomfy_watcher(url: str, interval: float) -> Any:
    import aiohttp  # noqa: F401  imported by the hook on first use: once per triggerer process, not per poll

    import airflow_provider_runcomfy.hooks.runcomfy  # noqa: F401  likewise, imported by the trigger on first use
    from airflow_provider_runcomfy.triggers.runcomfy import RunComfyRequestTrigger

    def rebuilt(request_id: str) -> RunComfyRequestTrigger:
        """What the operator serializes when it defers, and the triggerer rebuilds from the database."""
        made = RunComfyRequestTrigger(request_id, "runcomfy_default", time.time() + WATCH_LIMIT, interval)
        classpath, kwargs = made.serialize()
        module, _, name = classpath.rpartition(".")
        return getattr(importlib.import_module(module), name)(**kwargs)

    async def watch(request_id: str) -> str:
        events = rebuilt(request_id).run()
        try:
            event = await anext(events)
        finally:
            await events.aclose()
        if event.payload["status"] != "succeeded":
            raise RuntimeError(f"unexpected event {event.payload}")
        return event.payload["result"]["finished_at"]

    return watch


def floor_httpx_watcher(url: str, interval: float) -> Any:
    client = httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {_common.TOKEN}"},
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )

    async def watch(request_id: str) -> str:
        for _ in range(int(WATCH_LIMIT / interval)):
            status = (await client.get(f"/v1/requests/{request_id}/status")).json()
            if status["status"] in DONE:
                result = (await client.get(f"/v1/requests/{request_id}/result")).json()
                if result["status"] in FINAL:
                    return result["finished_at"]
            await asyncio.sleep(interval)
        raise TimeoutError(request_id)

    watch.aclose = client.aclose
    return watch


def floor_aiohttp_watcher(url: str, interval: float) -> Any:
    import aiohttp

    session: list[aiohttp.ClientSession] = []  # made in the loop, on first use
    headers = {"Authorization": f"Bearer {_common.TOKEN}"}

    async def get(path: str) -> dict[str, Any]:
        if not session:
            session.append(aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=100)))
        async with session[0].get(url + path) as response:
            return await response.json()

    async def watch(request_id: str) -> str:
        for _ in range(int(WATCH_LIMIT / interval)):
            status = await get(f"/v1/requests/{request_id}/status")
            if status["status"] in DONE:
                result = await get(f"/v1/requests/{request_id}/result")
                if result["status"] in FINAL:
                    return result["finished_at"]
            await asyncio.sleep(interval)
        raise TimeoutError(request_id)

    async def aclose() -> None:
        if session:
            await session[0].close()

    watch.aclose = aclose
    return watch


def http_hook_watcher(url: str, interval: float) -> Any:
    import aiohttp
    from airflow.providers.http.hooks.http import HttpAsyncHook

    headers = {"Authorization": f"Bearer {_common.TOKEN}"}

    async def get(hook: HttpAsyncHook, endpoint: str) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:  # as HttpTrigger and HttpSensorTrigger do
            response = await hook.run(session=session, endpoint=endpoint, headers=headers)
            return await response.json()

    async def watch(request_id: str) -> str:
        hook = HttpAsyncHook(method="GET", http_conn_id="runcomfy_http")
        for _ in range(int(WATCH_LIMIT / interval)):
            status = await get(hook, f"/v1/requests/{request_id}/status")
            if status["status"] in DONE:
                result = await get(hook, f"/v1/requests/{request_id}/result")
                if result["status"] in FINAL:
                    return result["finished_at"]
            await asyncio.sleep(interval)
        raise TimeoutError(request_id)

    return watch


async def child(contender: str, n: int, url: str, interval: float) -> dict[str, Any]:
    """Watch n fresh jobs; CPU is counted from the first poll to the last event, in this process only."""
    # Every watcher runs in a process like a triggerer's runner: Airflow imported (its heap is what the garbage
    # collector walks), and logs rendered as JSON for the supervisor, here written to a file.
    import airflow.triggers.base  # noqa: F401
    from airflow.configuration import conf
    from airflow.sdk.log import configure_logging

    capacity = conf.getint("triggerer", "capacity")
    if n > capacity:  # a triggerer would take only this many triggers
        raise SystemExit(f"[triggerer] capacity is {capacity}: a triggerer does not run {n} triggers")
    log_file = open(Path(os.environ["AIRFLOW_HOME"]) / f"{contender}-{n}.log", "wb")  # noqa: SIM115
    configure_logging(json_output=True, output=log_file, sending_to_supervisor=True)

    watch = globals()[f"{contender}_watcher"](url, interval)
    # One job watched to its end first, unmeasured: one-time costs (lazy imports, the first connection lookup,
    # the first TCP connection) are paid once per triggerer process, not per poll.
    [warm_up] = await submit_all(url, 1)
    await watch(warm_up)
    request_ids = await submit_all(url, n)
    # Submitting takes a while at N = 5000: the jobs waited in the queue, and their clocks start now.
    httpx.post(f"{url}/_control/release").raise_for_status()
    baseline_rss = _common.max_rss_mb()
    # A full collection now: otherwise one that the imports made due (~0.1 s over Airflow's heap) lands in one
    # contender's window or another's by chance.
    gc.collect()

    async def timed(request_id: str) -> tuple[str, str, float]:
        finished_at = await watch(request_id)
        return request_id, finished_at, time.time()

    collecting: list[float] = []  # minus the CPU clock at each collection's start, plus it at its stop: the sum

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        collecting.append(-time.process_time() if phase == "start" else time.process_time())

    server_cpu = httpx.get(f"{url}/_control/cpu").json()["cpu_seconds"]
    collections = [stats["collections"] for stats in gc.get_stats()]
    gc.callbacks.append(gc_timer)
    wall, cpu = time.perf_counter(), time.process_time()
    events = await asyncio.gather(*(timed(request_id) for request_id in request_ids))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    gc.callbacks.remove(gc_timer)
    collections = [stats["collections"] - before for stats, before in zip(gc.get_stats(), collections, strict=True)]
    server_cpu = httpx.get(f"{url}/_control/cpu").json()["cpu_seconds"] - server_cpu
    if hasattr(watch, "aclose"):
        await watch.aclose()
    clients = None
    if contender == "runcomfy":  # the hooks of all n triggers must have shared one client
        from airflow_provider_runcomfy.hooks.runcomfy import _async_clients

        clients = len(_async_clients.get(asyncio.get_running_loop(), {}))
    return {
        "cpu": cpu,
        "gc_cpu": sum(collecting),
        "collections": collections,
        "wall": wall,
        "server_cpu": server_cpu,
        "baseline_rss_mb": baseline_rss,
        "events": events,
        "async_clients": clients,
    }


# -- the parent: rounds, server log, tables, chart --------------------------------------------------------------


def measure(contender: str, n: int, url: str, interval: float, env: dict[str, str]) -> dict[str, Any]:
    """One contender watching n jobs in its own process; the server's log tells what reached it."""
    # Plain httpx, not tests/deployment/harness.RunComfyControl: importing that (Airflow, psutil) would raise this
    # process's RSS, which every child's peak inherits (see _common.run_child).
    httpx.post(f"{url}/_control/reset").raise_for_status()
    # The warm-up job finishes at once; the others wait in the queue until the child releases them, then finish
    # spread over SPREAD seconds: none before the watch begins, however long the submits took.
    rules = [{"outcome": "succeeded", "queue_seconds": 0, "run_seconds": 0.1}]
    # In shuffled order: the watchers start, and read, in the order of the submits, and finishes in that same order
    # would line up with the reads, which favours a watcher that reads in bursts (see NOTES).
    finishes = [FIRST_FINISH + SPREAD * i / n for i in range(n)]
    random.Random(n).shuffle(finishes)
    rules += [{"outcome": "succeeded", "queue_seconds": 2 * WATCH_LIMIT, "run_seconds": run} for run in finishes]
    httpx.post(f"{url}/_control/outcomes", json=rules).raise_for_status()
    args = [_common.PYTHON, __file__, "--child", contender, "--n", str(n), "--url", url, "--interval", str(interval)]
    if n > TRIGGERER_CAPACITY:  # as a user would, to run n triggers in one triggerer
        env = {**env, "AIRFLOW__TRIGGERER__CAPACITY": str(n)}
    run = _common.run_child(args, env=env, timeout=WATCH_LIMIT + 120)
    out = run.json()
    log = httpx.get(f"{url}/_control/log").json()
    jobs = {request_id for request_id, _, _ in out["events"]}  # the warm-up job is not among them
    calls = [entry for entry in log if entry["request_id"] in jobs and entry["call"] in ("status", "result")]
    reads: dict[str, list[float]] = {}
    for entry in calls:
        if entry["call"] == "status":
            reads.setdefault(entry["request_id"], []).append(entry["time"])
    delays, seen = [], []  # per job: finish to event; finish to the first status read that could see it finished
    for request_id, finished_at, event in out["events"]:
        finished = datetime.fromisoformat(finished_at).timestamp()
        delays.append(event - finished)
        seen.append(min((t for t in reads.get(request_id, []) if t >= finished), default=event) - finished)
    delays.sort()
    seen.sort()
    return {
        "cpu_per_1000": 1000 * out["cpu"] / len(calls),
        "gc_share": out["gc_cpu"] / out["cpu"],
        "full_collections": float(out["collections"][2]),
        "server_cpu_per_1000": 1000 * out["server_cpu"] / len(calls),
        "server_busy": out["server_cpu"] / out["wall"],  # of one core, while the watch ran
        "peak_rss_mb": run.peak_rss_mb,
        "baseline_rss_mb": out["baseline_rss_mb"],
        "requests_per_job": len(calls) / n,
        "connections": len({entry["client_port"] for entry in calls}),
        "delay_p50": delays[len(delays) // 2],
        "delay_p95": delays[int(len(delays) * 0.95)],
        "delay_max": delays[-1],
        "seen_p95": seen[int(len(seen) * 0.95)],
        "seen_max": seen[-1],
        "async_clients": out["async_clients"],
        "errors": sum(entry["status"] != 200 for entry in calls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval, seconds")
    parser.add_argument("--quick", action="store_true", help="one round, N = 100 only; RESULTS.md is left alone")
    parser.add_argument(
        "--sizes", help="comma-separated N to run instead of 100,1000,5000; RESULTS.md and the chart are left alone"
    )
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args.n, args.url, args.interval))))
        return

    sizes, rounds = ((100,), 1) if args.quick else (SIZES, args.rounds)
    if args.sizes:
        sizes = tuple(int(n) for n in args.sizes.split(","))
    samples: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with _common.bench_env() as home, _common.local_server("--queue-seconds", "0", env=home) as url:
        env = {**home, **_common.connection_env(url)}
        for round_no in range(rounds):
            for n in sizes:
                for contender in contenders(n):
                    sample = measure(contender, n, url, args.interval, env)
                    samples.setdefault((contender, n), []).append(sample)
                    print(f"round {round_no + 1}/{rounds} N={n} {contender}: {_brief(sample)}", flush=True)
    markdown = report(samples, sizes, rounds, args.interval)
    print(markdown)
    if sizes == SIZES and not args.quick:
        chart(samples, sizes, args.interval)
        _common.write_section("trigger_fanout", markdown)


def _brief(sample: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value:.3g}" for key, value in sample.items() if isinstance(value, float))


def report(samples: dict[tuple[str, int], list[dict[str, Any]]], sizes: tuple[int, ...], rounds: int, interval: float):
    """The tables, with each target's verdict computed from the same numbers."""

    def med(contender: str, n: int, key: str) -> float:
        return _common.median_of(samples[contender, n], key)

    def ratio(top: str, bottom: str, n: int) -> float:  # paired within a round, then the median over rounds
        pairs = zip(samples[top, n], samples[bottom, n], strict=True)
        return _common.median([a["cpu_per_1000"] / b["cpu_per_1000"] for a, b in pairs])

    rows = [
        [
            n,
            f"`{contender}`",
            f"{med(contender, n, 'cpu_per_1000'):.3f} ({100 * med(contender, n, 'gc_share'):.0f}%;"
            f" {med(contender, n, 'full_collections'):.0f})",
            f"{med(contender, n, 'peak_rss_mb'):.0f} ({med(contender, n, 'baseline_rss_mb'):.0f})",
            f"{med(contender, n, 'requests_per_job'):.2f}",
            f"{med(contender, n, 'connections'):.0f}",
            " / ".join(f"{med(contender, n, key):.2f}" for key in ("delay_p50", "delay_p95", "delay_max")),
            " / ".join(f"{med(contender, n, key):.2f}" for key in ("seen_p95", "seen_max")),
        ]
        for n in sizes
        for contender in contenders(n)
    ]
    headers = [
        "N",
        "watcher",
        "CPU s / 1000 requests (of which garbage collection; full collections)",
        "peak RSS MiB (before watching)",
        "HTTP requests / job",
        "TCP connections",
        "finish-to-event delay s: p50 / p95 / max",
        "of which, finish to the read that saw it: p95 / max",
    ]
    verdicts = []
    for n in sizes:
        measured = contenders(n)
        floor = ratio("runcomfy", "floor_aiohttp", n)
        p95, worst, seen = (
            med("runcomfy", n, "delay_p95"),
            med("runcomfy", n, "delay_max"),
            med("runcomfy", n, "seen_max"),
        )
        if "floor_httpx" in measured:
            httpx_floor = ratio("runcomfy", "floor_httpx", n)
            verdicts.append(
                [f"N={n}: CPU within 1.5x of (a), the httpx floor", f"{httpx_floor:.3f}x", verdict(httpx_floor <= 1.5)]
            )
        verdicts.append(
            [f"N={n}: CPU within 1.5x of the aiohttp floor (stricter)", f"{floor:.3f}x", verdict(floor <= 1.5)]
        )
        if "http_hook" in measured:
            cheaper = ratio("http_hook", "runcomfy", n)
            verdicts.append(
                [
                    f"N={n}: CPU at least 2x cheaper than (b), HttpAsyncHook",
                    f"{cheaper:.3f}x cheaper",
                    verdict(cheaper >= 2),
                ]
            )
        verdicts.append(
            [
                f"N={n}: finish-to-event delay <= one poll interval ({interval:g} s)",
                f"p95 {p95:.3f} s, max {worst:.2f} s; the read that saw it: max {seen:.2f} s",
                verdict(p95 <= interval)
                + (" (p95; the max adds the two calls' round trips)" if worst > interval else ""),
            ]
        )
    if 100 in sizes:  # how the cost per request grows with N
        for n in sizes[sizes.index(100) + 1 :]:
            pairs = zip(samples["runcomfy", n], samples["runcomfy", 100], strict=True)
            growth = _common.median([a["cpu_per_1000"] / b["cpu_per_1000"] for a, b in pairs])
            verdicts.append(
                [f"N={n}: CPU per request within 20% of N=100's", f"{growth:.3f}x N=100's", verdict(growth <= 1.2)]
            )
    if 1000 in sizes:
        rss = med("runcomfy", 1000, "peak_rss_mb")
        verdicts.append(
            ["N=1000: peak RSS <= 200 MB", f"{rss:.0f} MiB = {rss * 1.048576:.0f} MB", verdict(rss * 1.048576 <= 200)]
        )
    clients = sorted({sample["async_clients"] for n in sizes for sample in samples["runcomfy", n]})
    errors = sum(sample["errors"] for group in samples.values() for sample in group)
    server = "; ".join(
        f"N={n}: {med('runcomfy', n, 'server_cpu_per_1000'):.3f} CPU s per 1000 requests, "
        f"{100 * max(sample['server_busy'] for c in contenders(n) for sample in samples[c, n]):.0f}% of a core at most"
        for n in sizes
    )
    return "\n\n".join(
        [
            "## Waiting at scale: `bench/trigger_fanout.py`",
            f"_{_common.machine()}. Poll interval {interval:g} s; the N jobs finish {FIRST_FINISH:g} to "
            f"{FIRST_FINISH + SPREAD:g} s after the watch begins, evenly spread, in an order shuffled against the "
            f"submits; {rounds} rounds, medians; ratios are medians of per-round ratios._",
            _common.table(headers, rows),
            _common.table(["target", "measured", "verdict"], verdicts),
            f"Shared client: at the end of every `runcomfy` run the hooks of the loop held {clients} aiohttp "
            "session(s), whatever N, and the server saw at most 100 TCP connections (the session's pool) for all "
            f"N triggers. Requests answered with an HTTP error, all runs: {errors}.",
            f"The local server, while a watch ran (its own process; `runcomfy` rows for the cost, all rows for the "
            f"busiest): {server}.",
            NOTES,
            "![trigger fan-out](trigger_fanout.png)",
        ]
    )


NOTES = """How it is measured. Each watcher runs in a process of its own shaped like a triggerer's runner: Airflow
imported, logs rendered as JSON for the supervisor (to a file here); at N = 5000, above a triggerer's default capacity
of 1000 triggers, with `[triggerer] capacity` raised to 5000 (`AIRFLOW__TRIGGERER__CAPACITY`) as a user would (the child
refuses more triggers than its capacity). It first watches one job to its end, unmeasured (lazy imports, the first
connection lookup, the first TCP connection are paid once per triggerer, not per poll), and makes a full garbage
collection. The N jobs wait in the server's queue until the child releases them just before its watch begins (5000
submits take seconds), so none finishes before. CPU is `time.process_time()` from the first poll to the last event,
divided by the status and result requests the server logged for those jobs; in brackets, the share of it spent in
garbage collections (`gc.callbacks`) and the number of full collections in the watch. Peak RSS is the process's
`ru_maxrss`, read by the parent with `wait4`; in brackets, its peak before watching (interpreter, Airflow, the N ids).
The delay is the event's time minus the job's `finished_at` from the result call. It has two parts: until the first
status read that could see the job finished reached the server (at most one interval, if reads keep their cadence), then
that read's answer and the result call's round trip. `runcomfy` reads on a fixed cadence, one status read per interval
counted from when its first read left the loop's queue of reads (a read that ends past its interval is followed at
once), so round trips do not add up over the intervals; the other watchers sleep one interval after each answer, so
their reads come every interval plus one round trip. The finishes are shuffled against the order in which the watchers
start: in the same order, the reads of a burst (every watcher's first read is at once) line up with the finishes, and a
watcher whose reads stay in bursts looked better than it is (`runcomfy` with reads one interval from each start, no
queue: p95 0.81 s at N = 5000 with finishes in submit order, 1.02 s shuffled).

What the provider spends beyond the aiohttp floor, per job: two log lines (one per state change, through Airflow's
structlog: about 15 us each on a warm logger, 20-25 us among the polls), each answer parsed into a pydantic model (from
its bytes), and the trigger and hook objects with their coroutines, which the garbage collector walks. Replayed against
a fake session, which leaves only the Python of each side (a profile taken while this version was written, not rerun
here), the same watch took about 31 us per request for `runcomfy` and 10 us for the floor; the log lines were 9.5 of the
21 us between them. Until this version each hook's first log line also built a structlog logger of its own (about 50 us
and a system call per trigger), each poll made a closure, a `ClientTimeout` and a dataclass (at N = 1000, one more full
collection over Airflow's heap, 80-100 ms), and each hook parsed the shared connection again. (Tenacity, which runs the
retry policy, is entered only after a failed first try. Entered on every call, in an earlier run of this benchmark, it
put `runcomfy` at 0.31 and 0.42 CPU s per 1000 requests for N = 100 and 1000, with `http_hook` at 0.53 and 0.83: less
than 2x cheaper.)

`floor_httpx` and `http_hook` fall behind their poll interval at N = 1000 (fewer requests per job, delays of seconds):
they ran out of CPU on this 2-core machine, which the server shares. They are left out at N = 5000, where they could
only say how far behind (and `http_hook` would open 5000 TCP connections a second). At N = 5000 one event loop answers
about 5000 requests a second: most of one core for the watcher, and for the server what the line above says. Garbage
collection takes a larger share of the watcher's CPU there, for the floor as for `runcomfy`: requests in flight and
sleeping triggers outlive the young generations, and each full collection walks Airflow's heap and the 5000 triggers.
The round trips, queued in the loop and in the session's 100-connection pool, grow to tens of milliseconds: where each
read waits one interval after the previous answer, as the floor's do, they add to every interval. With the finishes'
phases even over the interval, a read that keeps its cadence sees 95% of them within 0.95 s, which leaves 50 ms for the
two round trips at the end of a wait: at N = 5000, only a cadence that does not drift stays within it.

How reads keep their cadence. A thousand triggers started together read together. With each read one interval from the
previous read's start (the rule before this one), they stayed together: every interval a burst of a thousand requests,
each waiting in the session's pool, all alive at once. The garbage collector counts live objects: a burst made about 60
young collections where spread reads made a few, and at N = 1000 about one more full collection over Airflow's heap
(80-100 ms) in a 5 s watch, 1.44x-1.54x the floor's CPU per request. Reading one interval after each answer (the floor's
rule), the wait in the pool spreads the reads out, but every round trip adds to the interval. Now status reads take
turns through a queue of the loop's own, as wide as the pool (100), and a trigger's cadence starts when its first read
leaves it: the first reads, queued together, get their turns one after another, and their triggers read apart from then
on; later waits for a turn, and the round trips, do not move the cadence. Counting every interval from its read's turn
instead also spread the reads (1.27x-1.35x the floor's CPU at N = 1000), but at N = 5000, where reads wait for turns all
the time, each wait added to the interval: p95 1.00-1.03 s. Results and cancels, one per job, skip the queue. Each
sleeping trigger also holds fewer objects (not its last answer, nor the call that asked for the sleep, nor an empty
frozenset of its own): 24 tracked objects against 28, and 14 for the floor's bare loop."""


def chart(samples: dict[tuple[str, int], list[dict[str, Any]]], sizes: tuple[int, ...], interval: float) -> None:
    """CPU per 1000 requests, peak RSS and delays, per watcher and N, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    def med(contender: str, n: int, key: str) -> float:
        return _common.median_of(samples[contender, n], key)

    panels = [  # title, metric, target line and its label, log scale
        ("CPU seconds per 1000 requests", "cpu_per_1000", None, "", True),
        ("peak RSS, MiB", "peak_rss_mb", 200 / 1.048576, "target: 200 MB", False),
        ("p95 finish-to-event delay, s", "delay_p95", interval, "target: one poll interval", False),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 4.4))
    width = 0.8 / len(CONTENDERS)
    for ax, (title, key, target, target_label, log) in zip(axes, panels, strict=True):
        for index, contender in enumerate(CONTENDERS):
            where = [position for position, n in enumerate(sizes) if contender in contenders(n)]
            xs = [position + (index - (len(CONTENDERS) - 1) / 2) * width for position in where]
            values = [med(contender, sizes[position], key) for position in where]
            bars = ax.bar(xs, values, width, label=contender, color=f"C{index}")
            ax.bar_label(bars, fmt="%.3g", fontsize=8)
        if target is not None:
            ax.axhline(target, color="grey", linestyle="--", linewidth=1)
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(range(len(sizes)), [f"N = {n}" for n in sizes])
        suffix = (" (log scale)" if log else "") + (f"\ndashed: {target_label}" if target_label else "")
        ax.set_title(title + suffix, fontsize=10)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Watching N RunComfy requests in one asyncio loop (poll every {interval:g} s)")
    fig.tight_layout()
    fig.savefig(CHART, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
