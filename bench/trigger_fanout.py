"""Waiting at scale: what N in-flight RunComfy requests cost the triggerer that watches them.

N jobs (100, then 1000) are submitted to the local RunComfy server, which runs in a process of its own and finishes
them on a clock, spread over a few seconds. One asyncio loop then watches all of them, in four ways, each in a
process of its own, interleaved over several rounds:

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

All four read the status every ``--interval`` seconds and the result once the status says the job is done.
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


FIRST_FINISH, SPREAD = 2.0, 3.0  # job i of N finishes FIRST_FINISH + SPREAD * i / N seconds after its submit


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
    from airflow.sdk.log import configure_logging

    log_file = open(Path(os.environ["AIRFLOW_HOME"]) / f"{contender}-{n}.log", "wb")  # noqa: SIM115
    configure_logging(json_output=True, output=log_file, sending_to_supervisor=True)

    watch = globals()[f"{contender}_watcher"](url, interval)
    # One job watched to its end first, unmeasured: one-time costs (lazy imports, the first connection lookup,
    # the first TCP connection) are paid once per triggerer process, not per poll.
    [warm_up] = await submit_all(url, 1)
    await watch(warm_up)
    request_ids = await submit_all(url, n)
    baseline_rss = _common.max_rss_mb()
    # A full collection now: otherwise one that the imports made due (~0.1 s over Airflow's heap) lands in one
    # contender's window or another's by chance.
    gc.collect()

    async def timed(request_id: str) -> tuple[str, str, float]:
        finished_at = await watch(request_id)
        return request_id, finished_at, time.time()

    cpu = time.process_time()
    events = await asyncio.gather(*(timed(request_id) for request_id in request_ids))
    cpu = time.process_time() - cpu
    if hasattr(watch, "aclose"):
        await watch.aclose()
    clients = None
    if contender == "runcomfy":  # the hooks of all n triggers must have shared one client
        from airflow_provider_runcomfy.hooks.runcomfy import _async_clients

        clients = len(_async_clients.get(asyncio.get_running_loop(), {}))
    return {"cpu": cpu, "baseline_rss_mb": baseline_rss, "events": events, "async_clients": clients}


# -- the parent: rounds, server log, tables, chart --------------------------------------------------------------


def measure(contender: str, n: int, url: str, interval: float, env: dict[str, str]) -> dict[str, Any]:
    """One contender watching n jobs in its own process; the server's log tells what reached it."""
    # Plain httpx, not tests/deployment/harness.RunComfyControl: importing that (Airflow, psutil) would raise this
    # process's RSS, which every child's peak inherits (see _common.run_child).
    httpx.post(f"{url}/_control/reset").raise_for_status()
    # The warm-up job finishes at once, the others spread over SPREAD seconds, none before the watch begins.
    rules = [{"outcome": "succeeded", "queue_seconds": 0, "run_seconds": 0.1}]
    rules += [
        {"outcome": "succeeded", "queue_seconds": 0, "run_seconds": FIRST_FINISH + SPREAD * i / n} for i in range(n)
    ]
    httpx.post(f"{url}/_control/outcomes", json=rules).raise_for_status()
    args = [_common.PYTHON, __file__, "--child", contender, "--n", str(n), "--url", url, "--interval", str(interval)]
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
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args.n, args.url, args.interval))))
        return

    sizes, rounds = ((100,), 1) if args.quick else ((100, 1000), args.rounds)
    samples: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with _common.bench_env() as home, _common.local_server("--queue-seconds", "0", env=home) as url:
        env = {**home, **_common.connection_env(url)}
        for round_no in range(rounds):
            for n in sizes:
                for contender in CONTENDERS:
                    sample = measure(contender, n, url, args.interval, env)
                    samples.setdefault((contender, n), []).append(sample)
                    print(f"round {round_no + 1}/{rounds} N={n} {contender}: {_brief(sample)}", flush=True)
    markdown = report(samples, sizes, rounds, args.interval)
    print(markdown)
    if not args.quick:
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
            f"{med(contender, n, 'cpu_per_1000'):.3f}",
            f"{med(contender, n, 'peak_rss_mb'):.0f} ({med(contender, n, 'baseline_rss_mb'):.0f})",
            f"{med(contender, n, 'requests_per_job'):.2f}",
            f"{med(contender, n, 'connections'):.0f}",
            " / ".join(f"{med(contender, n, key):.2f}" for key in ("delay_p50", "delay_p95", "delay_max")),
            " / ".join(f"{med(contender, n, key):.2f}" for key in ("seen_p95", "seen_max")),
        ]
        for n in sizes
        for contender in CONTENDERS
    ]
    headers = [
        "N",
        "watcher",
        "CPU s / 1000 requests",
        "peak RSS MiB (before watching)",
        "HTTP requests / job",
        "TCP connections",
        "finish-to-event delay s: p50 / p95 / max",
        "of which, finish to the read that saw it: p95 / max",
    ]
    verdicts = []
    for n in sizes:
        httpx_floor, floor = ratio("runcomfy", "floor_httpx", n), ratio("runcomfy", "floor_aiohttp", n)
        cheaper = ratio("http_hook", "runcomfy", n)
        p95, worst, seen = (
            med("runcomfy", n, "delay_p95"),
            med("runcomfy", n, "delay_max"),
            med("runcomfy", n, "seen_max"),
        )
        verdicts += [
            [f"N={n}: CPU within 1.5x of (a), the httpx floor", f"{httpx_floor:.3f}x", verdict(httpx_floor <= 1.5)],
            [f"N={n}: CPU within 1.5x of the aiohttp floor (stricter)", f"{floor:.3f}x", verdict(floor <= 1.5)],
            [
                f"N={n}: CPU at least 2x cheaper than (b), HttpAsyncHook",
                f"{cheaper:.3f}x cheaper",
                verdict(cheaper >= 2),
            ],
            [
                f"N={n}: finish-to-event delay <= one poll interval ({interval:g} s)",
                f"p95 {p95:.2f} s, max {worst:.2f} s; the read that saw it: max {seen:.2f} s",
                verdict(p95 <= interval)
                + (" (p95; the max adds the two calls' round trips)" if worst > interval else ""),
            ],
        ]
    big = max(sizes)
    rss = med("runcomfy", big, "peak_rss_mb")
    verdicts.append(
        [f"N={big}: peak RSS <= 200 MB", f"{rss:.0f} MiB = {rss * 1.048576:.0f} MB", verdict(rss * 1.048576 <= 200)]
    )
    clients = sorted({sample["async_clients"] for n in sizes for sample in samples["runcomfy", n]})
    errors = sum(sample["errors"] for group in samples.values() for sample in group)
    return "\n\n".join(
        [
            "## Waiting at scale: `bench/trigger_fanout.py`",
            f"_{_common.machine()}. Poll interval {interval:g} s; job i of N finishes {FIRST_FINISH:g} + "
            f"{SPREAD:g}·i/N s after its submit; {rounds} rounds, medians; ratios are medians of per-round ratios._",
            _common.table(headers, rows),
            _common.table(["target", "measured", "verdict"], verdicts),
            f"Shared client: at the end of every `runcomfy` run the hooks of the loop held {clients} aiohttp "
            "session(s), whatever N, and the server saw at most 100 TCP connections (the session's pool) for all "
            f"N triggers. Requests answered with an HTTP error, all runs: {errors}.",
            NOTES,
            "![trigger fan-out](trigger_fanout.png)",
        ]
    )


NOTES = """How it is measured. Each watcher runs in a process of its own shaped like a triggerer's runner: Airflow
imported, logs rendered as JSON for the supervisor (to a file here). It first watches one job to its end,
unmeasured (lazy imports, the first connection lookup, the first TCP connection are paid once per triggerer, not
per poll), and makes a full garbage collection; then CPU is `time.process_time()` from the first poll to the last
event, divided by the status and result requests the server logged for those jobs. Peak RSS is the process's
`ru_maxrss`, read by the parent with `wait4`; in brackets, its peak before watching (interpreter, Airflow, the
N ids). The delay is the event's time minus the job's `finished_at` from the result call. It has two parts: until
the first status read that could see the job finished reached the server (at most one interval, if reads keep
their cadence), then that read's answer and the result call's round trip. Every watcher here sleeps one interval
after each answer, so reads come every interval plus one round trip, and the worst case is one interval plus
three round trips. (A fixed cadence would remove that drift, but would keep triggers that started together
polling in synchronized bursts; it was tried and not adopted.)

What the provider spends beyond the aiohttp floor, per job: two log lines (one per state change, through Airflow's
structlog), each answer parsed into a pydantic model, and one hook and one trigger object, which the garbage
collector then walks. (Tenacity, which runs the retry policy, is entered only after a failed first try. Entered on
every call, in an earlier run of this benchmark, it put `runcomfy` at 0.31 and 0.42 CPU s per 1000 requests for
N = 100 and 1000, with `http_hook` at 0.53 and 0.83: less than 2x cheaper.)
`floor_httpx` and `http_hook` fall behind their poll interval at N = 1000 (fewer requests per job, delays of
seconds): they ran out of CPU on this 2-core machine, which the server shares."""


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
            xs = [position + (index - (len(CONTENDERS) - 1) / 2) * width for position in range(len(sizes))]
            values = [med(contender, n, key) for n in sizes]
            bars = ax.bar(xs, values, width, label=contender)
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
