"""Browse RunComfy's catalog from a shell, through the hook and an Airflow connection:

    python -m airflow_provider_runcomfy.catalog search video [--category text-to-video] [--json]
    python -m airflow_provider_runcomfy.catalog show pixverse/pixverse/v5.5/text-to-video [--json]

The connection is Airflow's usual one (``AIRFLOW_CONN_RUNCOMFY_DEFAULT`` or any secrets backend), or
``--conn-id``. What a DAG author needs before writing a task: the model id, its price, and its inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from airflow_provider_runcomfy.exceptions import RunComfyError


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [header, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=False)).rstrip() for line in lines
    )


def _allowed(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return ", ".join(json.dumps(value) for value in spec["enum"])
    bounds = [f"{sign} {spec[key]}" for key, sign in (("minimum", ">="), ("maximum", "<=")) if key in spec]
    return " ".join(bounds)


def _short(value: Any, width: int = 40) -> str:
    text = "" if value is None else json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def schema_rows(schema: dict[str, Any]) -> list[list[str]]:
    """One row per input: name, type, allowed values, default, required."""
    required = set(schema.get("required") or [])
    return [
        [
            name,
            str(spec.get("type", "")),
            _allowed(spec),
            _short(spec.get("default")),
            "yes" if name in required else "",
        ]
        for name, spec in (schema.get("properties") or {}).items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_runcomfy.catalog", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--conn-id", default="runcomfy_default", help="Airflow connection (default: runcomfy_default)")
    commands = parser.add_subparsers(dest="command", required=True)
    search = commands.add_parser("search", help="models whose id, name or description match")
    search.add_argument("query", nargs="?", default=None)
    search.add_argument("--category")
    search.add_argument("--json", action="store_true", help="one JSON object per model, for scripts")
    show = commands.add_parser("show", help="one model: its price and its inputs")
    show.add_argument("model_id")
    show.add_argument("--json", action="store_true", help="the catalog's entry as JSON, with the input schema")
    args = parser.parse_args(argv)

    from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook

    hook = RunComfyHook(args.conn_id)
    try:
        # What Airflow logs meanwhile (Airflow 3.0 logs a connection lookup to stdout) goes to stderr: stdout holds
        # only the answer, which scripts read (--json).
        with contextlib.redirect_stdout(sys.stderr):
            answer = _answer(hook, args)
    except RunComfyError as error:  # the hook keeps the token out of its messages
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        hook.close()
    print(answer)
    return 0


def _answer(hook: Any, args: argparse.Namespace) -> str:
    if args.command == "search":
        models = list(hook.list_models(args.query, args.category))
        if args.json:
            return json.dumps([model.model_dump(mode="json", exclude_none=True) for model in models], indent=2)
        rows = [[m.model_id, m.display_name or "", m.price] for m in models]
        return _table(rows, ["MODEL ID", "NAME", "PRICE"]) if rows else "No model matches."
    model = hook.get_model(args.model_id)
    if args.json:
        return json.dumps(model.model_dump(mode="json", exclude_none=True), indent=2)
    lines = [f"{model.model_id}: {model.display_name or ''}", f"price: {model.price}"]
    if model.pricing_note and model.pricing_note != model.price:
        lines.append(f"note: {model.pricing_note}")
    header = ["INPUT", "TYPE", "ALLOWED", "DEFAULT", "REQUIRED"]
    return "\n".join([*lines, _table(schema_rows(model.input_schema or {}), header)])


if __name__ == "__main__":
    sys.exit(main())
