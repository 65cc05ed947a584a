"""Parse cost: what the provider adds to importing Airflow and to parsing the DAGs that use it.

Every sample is a fresh interpreter (with a warm bytecode cache, as on any installed system) that times, in order:

1. ``import airflow.sdk``: the bare import every DAG file pays; the reference.
2. the provider's parse-time modules (``operators.runcomfy``, which brings the schemas, link and storage helpers,
   and ``sensors.runcomfy``), right after 1, so any part of Airflow they pull in is counted against them;
3. Airflow's own share of the example DAGs: the names they use (``DAG``, ``task``, ``Asset``, ``ObjectStoragePath``,
   ``Param``, ``ApprovalOperator``) and an empty DAG of each schedule kind they use (the first DAG built loads
   Airflow's timetables): measured so that it is not blamed on step 4;
4. each file of ``example_dags/`` executed as the DAG processor does: DAG construction, with the operators'
   parse-time input checks.

The target is on step 2 (the provider's added import time); the hook (requests, aiohttp) and the trigger are not
imported at parse time. One ``python -X importtime`` run names the provider's slowest modules.
Run: ``.venv/bin/python bench/import_time.py`` (``--quick``: 3 samples, RESULTS.md left alone).
"""

from __future__ import annotations

import argparse
import json
import re
import time

import _common
from _common import verdict

DAGS = sorted((_common.ROOT / "example_dags").glob("*.py"))
PROVIDER_MODULES = ("airflow_provider_runcomfy.operators.runcomfy", "airflow_provider_runcomfy.sensors.runcomfy")
TARGET_MS = 50
CHART = _common.BENCH / "import_time.png"


def child() -> dict[str, float]:
    """One sample, in this fresh process: the four steps, in milliseconds."""
    import importlib

    timings: dict[str, float] = {}
    start = time.perf_counter()
    import airflow.sdk  # noqa: F401

    timings["airflow.sdk"] = _since(start)
    start = time.perf_counter()
    for module in PROVIDER_MODULES:
        importlib.import_module(module)
    timings["provider"] = _since(start)
    start = time.perf_counter()
    from airflow.providers.standard.operators.hitl import ApprovalOperator  # noqa: F401
    from airflow.sdk import DAG, Asset, ObjectStoragePath, Param, task  # noqa: F401

    DAG(dag_id="first_manual", schedule=None)
    DAG(dag_id="first_on_asset", schedule=[Asset("first")])
    timings["airflow names"] = _since(start)
    for path in DAGS:
        code = compile(path.read_text(), str(path), "exec")
        start = time.perf_counter()
        exec(code, {"__name__": path.stem, "__file__": str(path)})
        timings[path.name] = _since(start)
    return timings


def _since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def offenders(env: dict[str, str]) -> list[tuple[str, int, int]]:
    """The modules the provider's import loads, slowest first: (module, self µs, cumulative µs)."""
    code = "import airflow.sdk; " + "; ".join(f"import {module}" for module in PROVIDER_MODULES)
    run = _common.run_child([_common.PYTHON, "-X", "importtime", "-c", code], env=env)
    lines = run.stderr.splitlines()
    start = max(i for i, line in enumerate(lines) if re.search(r"\|\s*airflow\.sdk$", line)) + 1
    rows = []
    for line in lines[start:]:
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            rows.append((match[4], int(match[1]), int(match[2])))
    return sorted(rows, key=lambda row: -row[1])[:8]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="3 samples; RESULTS.md is left alone")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child()))
        return

    samples = 3 if args.quick else args.samples
    runs: list[dict[str, float]] = []
    with _common.bench_env() as env:
        _common.run_child([_common.PYTHON, __file__, "--child"], env=env)  # compiles the provider and the DAGs once
        for number in range(samples):
            runs.append(_common.run_child([_common.PYTHON, __file__, "--child"], env=env).json())
            print(f"sample {number + 1}/{samples}: " + ", ".join(f"{k}={v:.1f}" for k, v in runs[-1].items()))
        slowest = offenders(env)
    markdown = report(runs, slowest)
    print(markdown)
    if not args.quick:
        chart(runs)
        _common.write_section("import_time", markdown)


def report(runs: list[dict[str, float]], slowest: list[tuple[str, int, int]]) -> str:
    def med(key: str) -> float:
        return _common.median_of(runs, key)

    provider, bare = med("provider"), med("airflow.sdk")
    rows = [
        ["`import airflow.sdk` (the reference)", f"{bare:.0f}", ""],
        ["the provider's parse-time modules, after it", f"{provider:.1f}", f"+{100 * provider / bare:.1f}%"],
        ["Airflow's share: names the example DAGs use, first DAGs built", f"{med('airflow names'):.1f}", ""],
    ]
    rows += [[f"`example_dags/{path.name}` executed", f"{med(path.name):.1f}", ""] for path in DAGS]
    total = sum(med(path.name) for path in DAGS)
    rows.append([f"all {len(DAGS)} example DAG files", f"{total:.1f}", ""])
    bound = provider + total
    verdicts = [
        [
            f"import time added by the provider <= {TARGET_MS} ms",
            f"{provider:.1f} ms",
            verdict(provider <= TARGET_MS),
        ],
        [
            f"upper bound: the provider's import plus all {len(DAGS)} DAG files executed (DAG building is Airflow's)",
            f"{bound:.1f} ms",
            verdict(bound <= TARGET_MS),
        ],
    ]
    offender_rows = [
        [f"`{name}`", f"{own / 1000:.1f}", f"{cumulative / 1000:.1f}"] for name, own, cumulative in slowest
    ]
    return "\n\n".join(
        [
            "## Parse cost: `bench/import_time.py`",
            f"_{_common.machine()}. {len(runs)} fresh interpreters, warm bytecode cache; medians, in ms._",
            _common.table(["step", "ms", "vs airflow.sdk"], rows),
            _common.table(["target", "measured", "verdict"], verdicts),
            "The provider's slowest modules (`python -X importtime`, one run, ms):",
            _common.table(["module", "self", "cumulative"], offender_rows),
            NOTES,
            "![import time](import_time.png)",
        ]
    )


NOTES = """The hook (`requests`, `aiohttp`), the trigger and the storage backends are imported when a task runs,
not when its DAG is parsed: the operators import them inside the methods that use them. An example DAG's own time
is DAG construction plus the operators' parse-time checks of literal inputs (pydantic), a few ms each; the first
file that uses `ObjectStoragePath`, the HITL operator or a schedule kind pays for those Airflow modules, counted in
step 3 here."""


def chart(runs: list[dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    keys = ["airflow.sdk", "provider", "airflow names", *[path.name for path in DAGS]]
    labels = [
        "import airflow.sdk",
        "provider modules",
        "Airflow's share",
        *[p.stem.removeprefix("example_") for p in DAGS],
    ]
    values = [_common.median_of(runs, key) for key in keys]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    bars = ax.barh(labels[::-1], values[::-1], color=["tab:blue"] * len(DAGS) + ["tab:gray", "tab:orange", "tab:gray"])
    ax.bar_label(bars, fmt="%.1f ms", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(right=max(values) * 4)
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.axvline(TARGET_MS, color="grey", linestyle="--", linewidth=1, label=f"{TARGET_MS} ms target (provider modules)")
    ax.set_xlabel("ms (log scale), median of fresh interpreters")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("What parsing a RunComfy DAG costs, step by step")
    fig.tight_layout()
    fig.savefig(CHART, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
