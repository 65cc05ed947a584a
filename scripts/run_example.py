"""Run an example DAG against the local RunComfy server in a real Airflow, and print what it made."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import airflow

from airflow_provider_runcomfy.testing.dag_test import AirflowSandbox
from airflow_provider_runcomfy.testing.server import RunComfyTestServer

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dag-id", default="example_runcomfy_text_to_video")
    # One home per Airflow version: each migrates the metadata database to its own schema.
    parser.add_argument("--airflow-home", type=Path, default=ROOT / "airflow-home" / airflow.__version__)
    args = parser.parse_args()

    print(f"Preparing Airflow in {args.airflow_home} ...", flush=True)
    sandbox = AirflowSandbox(args.airflow_home, ROOT / "example_dags").prepare()
    with RunComfyTestServer() as server:
        print(f"Local RunComfy server on {server.url}; running `airflow dags test {args.dag_id}` ...", flush=True)
        output_dir = (ROOT / "output").as_uri()
        run = sandbox.dags_test(args.dag_id, server, AIRFLOW_VAR_RUNCOMFY_OUTPUT_DIR=output_dir)
        log = args.airflow_home / f"{args.dag_id}.log"
        log.write_text(run.output)
        if run.returncode:
            print(run.output[-5000:], file=sys.stderr)
            print(f"FAILED: {args.dag_id} (exit {run.returncode}); full output in {log}", file=sys.stderr)
            return 1
        for row in run.xcoms:
            if row["key"] == "return_value" and isinstance(row["value"], dict) and "request_id" in row["value"]:
                result = row["value"]
                print(f"task {row['task_id']}: request_id {result['request_id']} -> {result['status']}")
                for url in result.get("output_urls", []):
                    print(f"  output URL: {url}")
                for file in result.get("files", []):
                    print(f"  sha256 {file['sha256']}, {file['size']} bytes")
                    print(f"  MP4 file: {file['uri'].removeprefix('file://')}")
        print(f"OK: {args.dag_id} succeeded; RunComfy submits: {server.submits}; Airflow output in {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
