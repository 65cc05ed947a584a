"""Copying outputs: a generated file streamed from its URL into object storage, against the floor and the naive way.

The local RunComfy server serves a synthetic output (100 MiB, then 1 GiB) over loopback. Each contender copies it
in a process of its own, interleaved over several rounds, in an order shuffled each round (a copy that follows
another's gigabyte finds the machine's memory, or moto's, in another state; a fixed order, even turned, keeps the
same neighbours):

- ``curl``: ``curl -o`` to a local file. Nothing moves bytes from a socket to a file much faster: the floor.
- ``curl_sha256sum``: ``curl -o`` then ``sha256sum`` of the file: what the provider delivers (the file and its
  sha256) from a shell.
- ``runcomfy``: ``copy_output`` (what ``output_dir`` and ``RunComfyDownloadOperator`` run): streamed in 4 MiB chunks,
  sha256 on the way; to ``file://`` (a temporary name, renamed once complete) and to ``s3://`` (a multipart upload
  to the final key, completed once the whole body arrived; moto's S3 server, in a process of its own).
- ``naive``: ``requests.get(url).content`` written with ``ObjectStoragePath.write_bytes``: what generic
  HTTP-to-storage operators do (``HttpToS3Operator`` loads ``response.content``); same two destinations.
- ``boto3_s3``: boto3's managed transfer (``upload_fileobj``) streaming the response body (``requests``,
  ``stream=True``, ``response.raw``) in parts uploaded by several threads: a careful user's S3 copy, the anchor of
  the S3 rows. It computes no sha256.

Reported: throughput (MB/s, wall time of the copy alone), and the peak RSS of the copying process, read by the parent
with ``wait4``; the Python contenders also report their RSS before copying (interpreter, Airflow, the provider), so
what the copy itself adds is visible. Run: ``.venv/bin/python bench/download.py`` (``--quick``: 100 MiB, one round).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import _common
from _common import verdict

MiB = 1 << 20
SIZES = (100 * MiB, 1024 * MiB)
CONTENDERS = ("curl", "curl_sha256sum", "runcomfy_file", "naive_file", "runcomfy_s3", "naive_s3", "boto3_s3")
BUCKET = "bench"
CHART = _common.BENCH / "download.png"


# -- the child: one copy, in a process of its own ----------------------------------------------------------------


def child(contender: str, url: str, destination: str) -> dict[str, Any]:
    """Copy url to destination; report the copy's wall time and this process's peak RSS before it began."""
    import requests
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.lineage import get_hook_lineage_collector

    from airflow_provider_runcomfy.hooks.runcomfy import RunComfyHook
    from airflow_provider_runcomfy.io.storage import copy_output

    # Once per worker process, whatever it copies: Airflow's lineage collector (loaded on the first write to an
    # ObjectStoragePath, ~0.1-0.4 s), the filesystem and its S3 client. Made before the clock and the baseline.
    get_hook_lineage_collector()
    target = ObjectStoragePath(destination)
    target.parent.exists()
    if contender == "boto3_s3":
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from boto3.s3.transfer import TransferConfig

        client = S3Hook(aws_conn_id=target.conn_id).get_conn()
        # runcomfy's part size (boto3's default too: as many requests) and four threads, not the default ten: parts
        # overlap on the wire without a 2-core worker juggling ten uploads and holding as many parts.
        config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4)
    completing: list[float] = []  # how long S3's last request took: it makes the object from the parts
    if contender.endswith("_s3"):
        events = (client if contender == "boto3_s3" else target.fs.s3).meta.events
        events.register("before-call.s3.CompleteMultipartUpload", lambda **_: completing.append(-time.perf_counter()))
        events.register("after-call.s3.CompleteMultipartUpload", lambda **_: completing.append(time.perf_counter()))
    baseline = _common.max_rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    if contender.startswith("runcomfy"):
        stored = copy_output(RunComfyHook(), url, target, allow_loopback_http=True)
        size = stored.size
    elif contender == "boto3_s3":
        with requests.get(url, stream=True, timeout=60) as response:
            response.raise_for_status()
            client.upload_fileobj(response.raw, target.bucket, target.key, Config=config)
        size = None  # read from the store, after the clock
    else:
        body = requests.get(url, timeout=60).content
        target.write_bytes(body)
        size = len(body)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu  # CPU of all threads (the hashing one too)
    if size is None:
        size = client.head_object(Bucket=target.bucket, Key=target.key)["ContentLength"]
    target.unlink()  # here, not in the parent: moto keeps objects in memory, and boto3 would fatten the parent
    return {"seconds": seconds, "cpu": cpu, "size": size, "baseline_rss_mb": baseline, "complete": sum(completing)}


# -- the parent ------------------------------------------------------------------------------------------------


def server_cpu_seconds(url: str) -> float:
    """The local server's CPU seconds so far: what sending a copy costs it, on the same two cores."""
    with urllib.request.urlopen(f"{url}/_control/cpu", timeout=30) as answer:
        return json.load(answer)["cpu_seconds"]


def measure(contender: str, size: int, url: str, workdir: str, env: dict[str, str], index: int) -> dict[str, Any]:
    source = f"{url}/files/synthetic/{size}.bin?seed={index}"
    server_cpu = server_cpu_seconds(url)
    if contender.startswith("curl"):
        path = os.path.join(workdir, f"curl-{index}.bin")
        curl = ["curl", "-sS", "--fail", "-o", path, "-w", "%{time_total}", source]
        if contender == "curl":
            run = _common.run_child(curl)
            seconds = float(run.stdout)
        else:  # the shell's start (a few ms) is counted too
            start = time.perf_counter()
            run = _common.run_child(["bash", "-c", f'{shlex.join(curl)} >/dev/null && sha256sum "{path}"'])
            seconds = time.perf_counter() - start
        cpu, baseline, copied = run.cpu, None, os.path.getsize(path)
        os.unlink(path)
    else:
        if contender.endswith("_s3"):
            destination = f"s3://aws_moto@{BUCKET}/{contender}-{index}.bin"
        else:
            destination = f"file://{workdir}/{contender}-{index}.bin"
        args = [_common.PYTHON, __file__, "--child", contender, "--url", source, "--destination", destination]
        run = _common.run_child(args, env=env, timeout=600)
        out = run.json()
        seconds, cpu, baseline, copied = out["seconds"], out["cpu"], out["baseline_rss_mb"], out["size"]
    server_cpu = server_cpu_seconds(url) - server_cpu
    if copied != size:
        raise RuntimeError(f"{contender} copied {copied} bytes of {size}")
    return {
        "server_cpu_ms_per_mib": 1000 * server_cpu / (size / MiB),
        "mb_per_s": size / seconds / 1e6,
        "cpu_ms_per_mib": 1000 * cpu / (size / MiB),
        "peak_rss_mb": run.peak_rss_mb,
        "baseline_rss_mb": baseline,
        "seconds": seconds,
        "complete_s": out["complete"] if contender.endswith("_s3") else None,
    }


def warm_up(url: str, work: str, env: dict[str, str]) -> None:
    """Unmeasured: one small copy per contender (compiles what they import), and 1 GiB written and deleted, so
    that no sample is the first to touch this virtual machine's memory (first touches are several times slower)."""
    for contender in CONTENDERS:
        measure(contender, 8 * MiB, url, work, env, 0)
    with open(os.path.join(work, "scratch"), "wb") as scratch:
        for _ in range(1024):
            scratch.write(bytes(MiB))
    os.unlink(os.path.join(work, "scratch"))


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server in a process of its own (its memory is not the copier's), with the bucket made; yields its
    endpoint and stops it afterwards. Plain urllib: boto3 would add ~40 MiB to this process, and so to the peak RSS
    every child reports (see ``_common.run_child``). moto keeps every object and part in memory here (by default it
    spools anything over 5 MiB to this machine's disk, whose writeback would then decide the S3 rows)."""
    from airflow_provider_runcomfy.testing.ports import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    moto = shutil.which("moto_server", path=os.path.dirname(_common.PYTHON))
    proc = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", endpoint.rsplit(":", 1)[1]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(4 << 30)},
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # bounded: until the bucket is made, or a minute
            try:
                urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT"), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--s3-rounds", type=int, default=3, help="rounds with the S3 rows (moto is slow)")
    parser.add_argument("--quick", action="store_true", help="100 MiB, one round; RESULTS.md is left alone")
    parser.add_argument(
        "--only", nargs="+", choices=CONTENDERS, help="these contenders, for exploring; RESULTS.md is left alone"
    )
    parser.add_argument("--size-mib", type=int, nargs="+", help="these sizes, for exploring; RESULTS.md is left alone")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--destination", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.url, args.destination)))
        return

    sizes, rounds = ((SIZES[0],), 1) if args.quick else (SIZES, args.rounds)
    sizes = tuple(mib * MiB for mib in args.size_mib) if args.size_mib else sizes
    contenders = args.only or CONTENDERS
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    samples: dict[tuple[str, int], list[dict[str, Any]]] = {}
    # Files go to memory (tmpfs) when there is room: the disk's writeback would decide the throughput, not the copier.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 4 << 30 else None
    with (
        _common.bench_env() as home,
        _common.local_server(env=home) as url,
        tempfile.TemporaryDirectory(prefix="runcomfy-bench-", dir=shm) as work,
        moto_server() as endpoint,
    ):
        connection = {"conn_type": "aws", "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
        env = {**home, "AIRFLOW_CONN_AWS_MOTO": json.dumps(connection)}
        airflow_rss = _common.run_child([_common.PYTHON, "-c", "import airflow.sdk"], env=env).peak_rss_mb
        warm_up(url, work, env)
        index = 0
        for round_no in range(rounds):
            for size in sizes:
                order = list(contenders)
                random.Random(f"{round_no}/{size}").shuffle(order)  # the same orders in every run
                for contender in order:
                    if contender.endswith("_s3") and round_no >= args.s3_rounds:
                        continue
                    index += 1
                    sample = measure(contender, size, url, work, env, index)
                    samples.setdefault((contender, size), []).append(sample)
                    brief = ", ".join(f"{k}={v:.3g}" for k, v in sample.items() if v is not None)
                    print(f"round {round_no + 1}/{rounds} {size // MiB} MiB {contender}: {brief}", flush=True)
    if args.only or args.size_mib:
        return  # exploring: the lines above are the result
    markdown = report(samples, sizes, (rounds, min(rounds, args.s3_rounds)), airflow_rss, shm is not None)
    print(markdown)
    if not args.quick:
        chart(samples, sizes)
        _common.write_section("download", markdown)


def sha256_ms_per_mib() -> float:
    """What hashlib's sha256 costs on this machine, per MiB (median of 5 passes over 64 MiB)."""
    import hashlib

    block, passes = bytes(range(256)) * 4096, []
    for _ in range(5):
        digest, start = hashlib.sha256(), time.process_time()
        for _ in range(64):
            digest.update(block)
        passes.append((time.process_time() - start) * 1000 / 64)
    return _common.median(passes)


def report(
    samples: dict[tuple[str, int], list[dict[str, Any]]],
    sizes: tuple[int, ...],
    rounds: tuple[int, int],
    airflow: float,
    tmpfs: bool,
) -> str:
    """The table, and each target's verdict from the same numbers."""

    def ratio(contender: str, anchor: str, size: int) -> float:
        """Median of the per-round ratios of MB/s (rounds without the S3 rows pair nothing)."""
        pairs = zip(samples[contender, size], samples[anchor, size], strict=False)
        return _common.median([a["mb_per_s"] / b["mb_per_s"] for a, b in pairs])

    def added(contender: str, size: int) -> float:
        group = samples[contender, size]
        return _common.median_of(group, "peak_rss_mb") - _common.median_of(group, "baseline_rss_mb")

    def two_core_bound(size: int) -> float:
        """MB/s if `runcomfy_file`'s CPU and the server's, per MiB, kept both cores busy without a moment's wait."""
        group = samples["runcomfy_file", size]
        per_mib = _common.median_of(group, "cpu_ms_per_mib") + _common.median_of(group, "server_cpu_ms_per_mib")
        return 2 * 1000 / per_mib * MiB / 1e6

    rows, verdicts = [], []
    for size in sizes:
        for contender in CONTENDERS:
            if (contender, size) not in samples:
                continue
            group = samples[contender, size]
            peak = _common.median_of(group, "peak_rss_mb")
            baseline = None if contender.startswith("curl") else _common.median_of(group, "baseline_rss_mb")
            rows.append(
                [
                    f"{size // MiB} MiB",
                    f"`{contender}`",
                    f"{_common.median_of(group, 'mb_per_s'):.0f}",
                    f"{ratio(contender, 'curl', size):.2f}x",
                    f"{_common.median_of(group, 'cpu_ms_per_mib'):.2f}",
                    f"{peak:.0f}",
                    "-" if baseline is None else f"{baseline:.0f}",
                    "-" if baseline is None else f"{peak - baseline:.0f}",
                ]
            )
        file = ratio("runcomfy_file", "curl", size)
        bound = two_core_bound(size) / _common.median_of(samples["curl", size], "mb_per_s")
        verdicts.append(
            [
                f"`runcomfy_file` >= 0.8x `curl`, {size // MiB} MiB",
                f"{file:.2f}x (this machine's bound for a copy that hashes: {bound:.2f}x, see below)",
                verdict(file >= 0.8),
            ]
        )
    big = sizes[-1]
    for anchor, target in (("naive_s3", 1.5), ("boto3_s3", 0.8)):
        measured = ratio("runcomfy_s3", anchor, big)
        verdicts.append(
            [
                f"`runcomfy_s3` >= {target}x `{anchor}`, {big // MiB} MiB",
                f"{measured:.2f}x",
                verdict(measured >= target),
            ]
        )
    for contender in ("runcomfy_file", "runcomfy_s3"):
        each = [added(contender, size) for size in sizes]
        flat = max(each) - min(each) <= FLAT_MIB
        verdicts.append(
            [
                f"memory added by the copy <= {ADDED_MIB} MiB, flat over "
                + ", ".join(f"{size // MiB} MiB" for size in sizes)
                + f", `{contender}`",
                " -> ".join(f"{value:.0f} MiB" for value in each),
                verdict(max(each) <= ADDED_MIB and flat) + ("" if flat else " (grows)"),
            ]
        )
    headers = [
        "size",
        "copier",
        "MB/s",
        "vs curl",
        "CPU ms / MiB",
        "peak RSS MiB",
        "RSS before copying MiB",
        "added by the copy MiB",
    ]
    completing = {
        contender: (
            _common.median_of(samples[contender, big], "complete_s"),
            _common.median_of(samples[contender, big], "seconds"),
        )
        for contender in ("runcomfy_s3", "boto3_s3")
    }
    (runcomfy_complete, runcomfy_seconds), (boto3_complete, boto3_seconds) = completing.values()
    runcomfy_cpu = _common.median_of(samples["runcomfy_file", big], "cpu_ms_per_mib")
    curl_rate = _common.median_of(samples["curl", big], "mb_per_s")
    return "\n\n".join(
        [
            "## Copying outputs: `bench/download.py`",
            f"_{_common.machine()}. Synthetic output from the local server over loopback, to `file://` on "
            f"{'tmpfs (`/dev/shm`)' if tmpfs else 'the temporary directory'} and to `s3://` on moto. {rounds[0]} "
            f"round(s), {rounds[1]} with the S3 rows; medians; ratios are medians of per-round ratios._",
            _common.table(headers, rows),
            _common.table(["target", "measured", "verdict"], verdicts),
            f"A process that only imports `airflow.sdk` peaks at {airflow:.0f} MiB here: the floor of any Python "
            "copier in an Airflow worker, before it holds a byte of the file.",
            NOTES.format(
                sha=sha256_ms_per_mib(),
                size=big // MiB,
                server=_common.median_of(samples["runcomfy_file", big], "server_cpu_ms_per_mib"),
                curl_cpu=_common.median_of(samples["curl", big], "cpu_ms_per_mib"),
                curl_and_sha=_common.median_of(samples["curl", big], "cpu_ms_per_mib") + sha256_ms_per_mib(),
                runcomfy_cpu=runcomfy_cpu,
                curl_rate=curl_rate,
                bound=two_core_bound(big),
                bound_ratio=two_core_bound(big) / curl_rate,
                need=0.8 * curl_rate / two_core_bound(big),
                reached=_common.median_of(samples["runcomfy_file", big], "mb_per_s") / two_core_bound(big),
                coreutils=ratio("runcomfy_file", "curl_sha256sum", big),
                runcomfy_complete=runcomfy_complete,
                runcomfy_parts=runcomfy_seconds - runcomfy_complete,
                boto3_complete=boto3_complete,
                boto3_parts=boto3_seconds - boto3_complete,
            ),
            "![downloads](download.png)",
        ]
    )


ADDED_MIB = 64  # the target for what a copy adds to its process's memory
FLAT_MIB = 8  # "flat": what it adds grows by at most one part from the smaller file to the larger
NOTES = """Memory. The RSS before copying is the contender's own process after its imports (Airflow, the provider,
requests, and s3fs for `s3://`; boto3's S3 client for `boto3_s3`); the copy adds what it holds on top. `runcomfy`
holds the chunks its writer thread has yet to write (up to an 8 MiB part and a 4 MiB chunk: the next part is
received and hashed while the writer sends one) and, on S3, four 8 MiB part buffers (the part being filled and up
to three in flight, each until S3 has it), reused from part to part, so what it adds does not grow with the file;
`naive` holds the whole body, twice while `requests` joins it and more on S3; `boto3_s3` reads up to ten parts ahead
of its four upload threads (s3transfer's `max_in_memory_upload_chunks`). (Joining each part into new bytes instead,
as the first version of the S3 writer did, added 45 MiB at 100 MiB and 61 MiB at 1 GiB: glibc kept some of the freed
8 MiB blocks.) No process that has imported Airflow is under 100 MB, whatever it copies.

Speed to files. `curl` only moves bytes; `runcomfy` also computes the sha256 it records, which alone costs {sha:.2f}
ms of CPU per MiB on this machine (OpenSSL's, through hashlib; the CPU column counts every thread). It hashes each
chunk on the thread that received it, while the chunk is still in the CPU's cache, and writes on a second thread
(writes release the GIL). It spends {runcomfy_cpu:.2f} ms of CPU per MiB, against `curl`'s {curl_cpu:.2f} plus the
sha256's {sha:.2f} ({curl_and_sha:.2f}): beyond the hash, a copy costs what `curl` does (receiving, writing; a
profile of one copy: 0.40-0.43 ms per MiB in the kernel, 2 page faults per MiB). The local server sending the file
shares the same two cores: {server:.2f} ms of CPU per MiB it sent, measured in this run. With `runcomfy`'s
{runcomfy_cpu:.2f} ms per MiB, the two would fill both cores at {bound:.0f} MB/s without a moment's wait:
{bound_ratio:.2f}x this run's `curl` ({curl_rate:.0f} MB/s at {size} MiB, {curl_cpu:.2f} ms per MiB on one thread).
0.8x `curl` would keep both cores busy {need:.0%} of the time; `runcomfy` reached {reached:.0%} of that bound (its
two threads and the server's one do not keep both cores busy all the time). The runs that met the target
(0.86x-0.93x at 1 GiB) had a slower `curl`, on a busier machine. Receiving on a third thread, so that the first one
only hashes, made no difference beyond the noise (1 GiB, alternated, quiet machine: 1095-1212 against 995-1206
MB/s). The same file and its checksum from a shell, `curl_sha256sum` (coreutils' `sha256sum`, which here does not
use the CPU's SHA instructions), is {coreutils:.1f}x slower than `runcomfy`. A copy also pays about 6 ms once that
`curl` does not: Airflow loads its filesystem registry on the first open of an `ObjectStoragePath` (about 3 ms a
process) and `requests` sets up its first request (session, proxy settings from the environment, connection): about
6 % of a 100 MiB copy (0.1 s). Files go to tmpfs so that the disk's writeback does not decide, and 1 GiB is written
and deleted before the first sample (first touches of this virtual machine's memory are several times slower).

Speed to S3. The S3 rows go through moto's server on the same two cores, far slower than S3. `runcomfy` writes
straight to the final key, as a multipart upload completed only once the size matched `Content-Length`: no
temporary key to copy and delete afterwards. s3fs's own writer sends one part at a time (fsspec has no setting for
more), so the provider sends the parts itself, three at once, through the destination's s3fs client
(`io/s3.py`). Like boto3, it names CRC32 when it starts the upload and sends each part's; for an upload that names
no checksum, moto computes S3's default CRC64NVME when completing it, over one more copy of the whole object. At
{size} MiB, everything before the last request (CompleteMultipartUpload) took {runcomfy_parts:.1f} s for
`runcomfy_s3` and {boto3_parts:.1f} s for `boto3_s3`; that last request took {runcomfy_complete:.1f} s and
{boto3_complete:.1f} s. `runcomfy_s3` spends more CPU per MiB than `boto3_s3` (the CPU column): the sha256, which
boto3 does not compute, is {sha:.2f} ms of it."""


def chart(samples: dict[tuple[str, int], list[dict[str, Any]]], sizes: tuple[int, ...]) -> None:
    """Throughput and peak RSS per copier and size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (speed, memory) = plt.subplots(1, 2, figsize=(13, 4.5))
    width = 0.8 / len(sizes)
    positions = range(len(CONTENDERS))
    for index, size in enumerate(sizes):
        xs = [position + (index - (len(sizes) - 1) / 2) * width for position in positions]
        label = f"{size // MiB} MiB"
        bars = speed.bar(xs, [_common.median_of(samples[c, size], "mb_per_s") for c in CONTENDERS], width, label=label)
        speed.bar_label(bars, fmt="%.0f", fontsize=8)
        bars = memory.bar(
            xs, [_common.median_of(samples[c, size], "peak_rss_mb") for c in CONTENDERS], width, label=label
        )
        memory.bar_label(bars, fmt="%.0f", fontsize=8)
    curl = _common.median_of(samples["curl", sizes[-1]], "mb_per_s")
    speed.axhline(0.8 * curl, color="grey", linestyle="--", linewidth=1, label="0.8x curl (1 GiB)")
    speed.set_title("throughput, MB/s (higher is better)")
    memory.set_yscale("log")
    memory.set_title("peak RSS of the copying process, MiB (log scale)")
    for ax in (speed, memory):
        ax.set_xticks(list(positions), CONTENDERS, rotation=15)
        ax.legend(fontsize=8)
    fig.suptitle("Copying a generated output from its URL to storage")
    fig.tight_layout()
    fig.savefig(CHART, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
