"""Benchmark: task-pool throughput against raw Dask, Parsl and IPS (where it runs), and scaling.

Not a test. Run with the project's environment::

    python bench/taskpool.py                      # 2,000 functions, 500 /bin/true, scale 1k and 10k
    python bench/taskpool.py --scale 1000 10000 100000 --workers 2

Every measurement starts a fresh LocalCluster of ``--workers`` worker processes with one
thread each, so the pool and raw Dask see the same cluster, warmed by one task (and a one-task
pool) as the peers are warmed by one task. The event log is on for sdpflow.
Throughput = tasks / wall seconds from submit to the last result. Client memory = growth of
the client process's resident set size during the pool, MiB.

Parsl: ``bench/taskpool_parsl.py`` is run by the Python of a Parsl environment
(``--parsl-python``, default ``$SDPFLOW_BENCH_PARSL_PYTHON``; make one with ``python -m venv DIR &&
DIR/bin/pip install parsl``): HighThroughputExecutor, LocalProvider, ``--workers`` workers, the
same numbers of no-op functions and ``/bin/true`` executables, in the same run.

IPS: ``bench/taskpool_ips.py`` is run the same way by the Python of an IPS environment
(``--ips-python``, default ``$SDPFLOW_BENCH_IPS_PYTHON``): ipsframework 0.8.1 with Dask 2026.3.0,
the newest that still installs the ``dask-scheduler``/``dask-worker`` programs IPS starts its
pools with. Its timing includes that start-up, as its users see it; whatever stops a peer is
printed as "could not run: reason".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from distributed import Client, LocalCluster, as_completed

from sdpflow import TaskPool


def noop(i):
    return i


def run_true(_i):
    return subprocess.run(["/bin/true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True).returncode


def cluster(workers: int):
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0")


def raw_dask(client, function, n: int) -> float:
    """``client.map`` over n tasks, results gathered as they complete; seconds."""
    began = time.perf_counter()
    futures = client.map(function, range(n), pure=False)
    for batch in as_completed(futures).batches():
        client.gather(batch)
    del futures
    return time.perf_counter() - began


def raw_submit(client, function, n: int) -> float:
    """One ``client.submit`` per task; seconds."""
    began = time.perf_counter()
    futures = [client.submit(function, i, pure=False) for i in range(n)]
    client.gather(futures)
    return time.perf_counter() - began


def pool_run(client, kind: str, n: int, events: Path, chunk_size="auto") -> tuple[float, float]:
    """A TaskPool of n tasks with its event log; (seconds, client RSS growth in MiB)."""
    process = psutil.Process()
    before = process.memory_info().rss
    pool = TaskPool(f"bench-{kind}", events=events, chunk_size=chunk_size)
    for i in range(n):
        if kind == "function":
            pool.add_task(f"t{i}", noop, i)
        else:
            pool.add_task(f"t{i}", "/bin/true")
    began = time.perf_counter()
    pool.submit(client)
    results = pool.finished()
    seconds = time.perf_counter() - began
    grown = (process.memory_info().rss - before) / 2**20
    expected = 0 if kind == "executable" else None
    assert len(results) == n and all((v == 0) if expected == 0 else True for v in results.values())
    return seconds, grown


def peer_throughput(script: str, python: Path, functions: int, executables: int, workers: int) -> dict | str:
    """A peer's tasks/s for the same work (``script`` run by the Python of the peer's environment),
    or why it could not run."""
    env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}"}  # its programs first
    result = subprocess.run([str(python), str(Path(__file__).with_name(script)), "--functions", str(functions),
                             "--executables", str(executables), "--workers", str(workers)],
                            capture_output=True, text=True, timeout=3600, env=env, cwd=tempfile.gettempdir())
    if result.returncode:
        return f"could not run: {(result.stderr.strip().splitlines() or ['no output'])[-1]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=2000)
    parser.add_argument("--executables", type=int, default=500)
    parser.add_argument("--scale", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ips-python", type=Path, default=os.environ.get("SDPFLOW_BENCH_IPS_PYTHON"),
                        help="Python of an environment with ipsframework (default: $SDPFLOW_BENCH_IPS_PYTHON)")
    parser.add_argument("--parsl-python", type=Path, default=os.environ.get("SDPFLOW_BENCH_PARSL_PYTHON"),
                        help="Python of an environment with parsl (default: $SDPFLOW_BENCH_PARSL_PYTHON)")
    parser.add_argument("--scale-only", action="store_true", help="skip the throughput comparison")
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="sdpflow-bench-"))
    rows = []

    def measure(n, function):
        with cluster(options.workers) as local, Client(local) as client:
            # Warm, as the peers are warmed by one task: workers have imported what tasks run.
            client.run(lambda: None)
            client.submit(noop, -1, pure=False).result()
            pool_run(client, "function", 1, scratch / "warm.jsonl")
            return function(client, n)

    if not options.scale_only:
        for label, n, target, kind, stem in (("no-op functions", options.functions, noop, "function", "f"),
                                             ("/bin/true executables", options.executables, run_true, "executable", "e")):
            raw = measure(n, lambda c, n: raw_dask(c, target, n))
            raw_each = measure(n, lambda c, n: raw_submit(c, target, n))
            ours, _ = measure(n, lambda c, n: pool_run(c, kind, n, scratch / f"{stem}.jsonl"))
            ours1, _ = measure(n, lambda c, n: pool_run(c, kind, n, scratch / f"{stem}1.jsonl", chunk_size=1))
            rows.append((label, n, n / raw, n / raw_each, n / ours, n / ours1))

        print(f"\nthroughput, tasks/s ({options.workers} workers x 1 thread, {os.cpu_count()} cores, event log on)")
        print("| tasks | n | raw Dask client.map | raw Dask client.submit | sdpflow (auto chunks) | sdpflow (chunk 1) | ratio auto / map | ratio chunk-1 / map |")
        print("|---|---|---|---|---|---|---|---|")
        for label, n, raw, each, ours, ours1 in rows:
            print(f"| {label} | {n} | {raw:.0f} | {each:.0f} | {ours:.0f} | {ours1:.0f} | {ours / raw:.2f} | {ours1 / raw:.2f} |")

        peers = (("Parsl", "taskpool_parsl.py", options.parsl_python, "HighThroughputExecutor, LocalProvider"),
                 ("IPS", "taskpool_ips.py", options.ips_python, "submit_tasks(use_dask=True), its Dask start-up included"))
        for name, script, python, how in peers:
            if not python:
                continue
            peer = peer_throughput(script, python, options.functions, options.executables, options.workers)
            if isinstance(peer, str):
                print(f"\n{name}: {peer}")
                continue
            version = peer.get("parsl") or peer.get("ips")
            print(f"\nagainst {name} {version} ({how}, {options.workers} workers)")
            print(f"| tasks | n | {name} | sdpflow (auto chunks) | ratio sdpflow / {name} |")
            print("|---|---|---|---|---|")
            for (label, n, _, _, ours, _), key in zip(rows, ("functions", "executables")):
                print(f"| {label} | {n} | {peer[key]:.0f} | {ours:.0f} | {ours / peer[key]:.2f} |")
                if f"{key}_net" in peer:
                    net = peer[f"{key}_net"]
                    print(f"| {label}, {name}'s start-up left out | {n} | {net:.0f} | {ours:.0f} | {ours / net:.2f} |")

    print("\nscale: no-op function pools (auto chunks, event log on)")
    print("| tasks | seconds | tasks/s | µs per task | client RSS growth (MiB) | event-log lines |")
    print("|---|---|---|---|---|---|")
    for n in options.scale:
        events = scratch / f"scale-{n}.jsonl"
        seconds, grown = measure(n, lambda c, n: pool_run(c, "function", n, events))
        lines = sum(1 for _ in open(events))
        print(f"| {n} | {seconds:.2f} | {n / seconds:.0f} | {1e6 * seconds / n:.0f} | {grown:.1f} | {lines} |")

    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
