"""Benchmark: item-level fan-out stages against Prefect 3 (``.map`` on a DaskTaskRunner).

Not a test. Run with the project's environment, Prefect living in an environment of its own::

    python -m venv PREFECT_VENV && PREFECT_VENV/bin/pip install "prefect>=3,<4" prefect-dask "dask[distributed]"
    export SDPFLOW_BENCH_PREFECT_PYTHON=PREFECT_VENV/bin/python      # or --peer-python
    python bench/fanout.py                          # sdpflow at 10^3, 10^4, 10^5; Prefect at 10^3, 10^4
    python bench/fanout.py --items 1000 --peer-items 1000 --json results.json

Both sides run a no-op function over N items on a local Dask cluster of ``--workers`` worker
processes with one thread each, and wait for every result.

* Prefect: a flow with ``DaskTaskRunner`` on ``LocalCluster(n_workers=W, threads_per_worker=1)``
  that ``.map``s a no-op ``@task`` over N items and waits for all results, against Prefect's
  local ephemeral server (default settings; ``PREFECT_HOME`` is a fresh temporary folder per N,
  so nothing leaks into the user's Prefect home). Each N runs three flows, each in a fresh
  process of the Prefect environment (this script re-invoking itself with ``--peer-child``):

  1. ``plain``: the task with Prefect's defaults;
  2. ``cache fill``: the task with ``cache_policy=INPUTS, persist_result=True`` (every result
     written to local result storage);
  3. ``resume``: the same cached flow again, in the same ``PREFECT_HOME``: every item is a
     cache hit, Prefect's closest equivalent of resuming a fan-out whose items all completed.

  A flow that exceeds ``--peer-timeout`` seconds is killed (its process group) and recorded as
  timed out; the later phases of that N are then skipped.
* sdpflow: :func:`run_sdpflow` (the fan-out engine's stage over N items, then the same stage
  resumed from its run database).

Wall = seconds from the start of the flow body (cluster up, server up) to the last result;
``outer`` in the JSON adds server and cluster start-up. ``first_result_s`` is when Prefect's
``as_completed`` yields its first future: it registers its callbacks only once ``.map`` has
returned, so this is about the time ``.map`` takes to hand out all N items (the workers finish
items meanwhile), and ``steady_items_per_s`` = (N - 1) / (wall - first_result_s) is the rate
after that. items/s = N / wall. A timed-out flow records how many items its log shows finished
(``completed_before_kill``) and the driver's peak RSS sampled from ``/proc`` while it ran. Client peak =
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the driving process (the Prefect flow's
process, not its server or workers), MiB. Resume = wall of the re-run over the same N items.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import load_average

PEER_PYTHON_VARIABLE = "SDPFLOW_BENCH_PREFECT_PYTHON"
PHASES = ("plain", "fill", "resume")


def peak_mib() -> float:
    """Peak resident set size of this process, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------
# sdpflow side


def run_sdpflow(n_items: int, workers: int, db_url: str, out_dir: Path) -> dict:
    """Run sdpflow's item-level fan-out stage over ``n_items`` no-op items, then resume it.

    Each size runs in a fresh process (``bench/fanout_sdpflow.py``, so its peak memory is its
    own) on a local cluster of ``workers`` worker processes × 1 thread, as for Prefect. Keys:
    ``wall_s`` (start_run to completion, cluster start included), ``items_per_s``,
    ``steady_items_per_s`` (without the cluster's start), ``resume_s`` (resume of the completed
    run: all N item records checked, none run), ``client_peak_mib``.
    """
    from fanout_sdpflow import run_sdpflow as measure

    return measure(n_items, workers, db_url, str(out_dir))


# --------------------------------------------------------------------------------------------
# Prefect side: this part runs inside the Prefect environment (--peer-child)


def noop(i):
    return i


def peer_child(n_items: int, workers: int, phase: str, result_file: Path) -> None:
    """One Prefect flow over ``n_items`` items; writes its figures as JSON to ``result_file``."""
    began_outer = time.perf_counter()
    import dask
    import distributed
    import prefect
    import prefect_dask
    from prefect import flow, task
    from prefect.cache_policies import INPUTS
    from prefect.futures import as_completed
    from prefect_dask import DaskTaskRunner

    if phase == "plain":
        item = task(noop, name="noop")
    else:
        item = task(noop, name="noop-cached", cache_policy=INPUTS, persist_result=True)

    runner = DaskTaskRunner(cluster_class="distributed.LocalCluster",
                            cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                            "dashboard_address": "127.0.0.1:0"})

    @flow(name=f"fanout-{phase}", task_runner=runner)
    def fanout(n: int) -> dict:
        began = time.perf_counter()
        futures = item.map(range(n))
        first = None
        for _ in as_completed(list(futures)):
            if first is None:
                first = time.perf_counter() - began
        results = futures.result()
        wall = time.perf_counter() - began
        assert sorted(results) == list(range(n)), "results differ from the items"
        states = {}
        for future in futures:
            name = future.state.name
            states[name] = states.get(name, 0) + 1
        return {"wall_s": wall, "first_result_s": first, "states": states,
                "steady_items_per_s": (n - 1) / (wall - first) if n > 1 and wall > first else None}

    figures = fanout(n_items)
    figures.update(outer_s=time.perf_counter() - began_outer, client_peak_mib=peak_mib(), phase=phase, items=n_items,
                   items_per_s=n_items / figures["wall_s"],
                   versions={"prefect": prefect.__version__, "prefect-dask": prefect_dask.__version__,
                             "dask": dask.__version__, "distributed": distributed.__version__,
                             "python": platform.python_version()})
    result_file.write_text(json.dumps(figures))


def run_peer_phase(python: str, n_items: int, workers: int, phase: str, home: Path, timeout: float) -> dict:
    """Run one Prefect phase in a fresh process of the Prefect environment; its figures or the failure."""
    result_file = home / f"{phase}.json"
    log = home / f"{phase}.log"
    environment = dict(os.environ, PREFECT_HOME=str(home / "prefect-home"))
    command = [python, str(Path(__file__).resolve()), "--peer-child", phase, "--items", str(n_items),
               "--workers", str(workers), "--result-file", str(result_file)]
    began = time.perf_counter()
    with open(log, "w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=environment, start_new_session=True)
        peak = None
        try:
            while (rc := child.poll()) is None:
                if time.perf_counter() - began > timeout:
                    raise subprocess.TimeoutExpired(command, timeout)
                peak = sampled_peak_mib(child.pid) or peak
                time.sleep(2)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return {"phase": phase, "items": n_items, "failed": f"timed out after {timeout:.0f} s (killed)",
                    "elapsed_s": time.perf_counter() - began, "completed_before_kill": finished_in_log(log),
                    "client_peak_mib_sampled": peak, "log_tail": tail(log)}
        finally:
            try:  # the child's Dask workers or server, should any outlive it
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    elapsed = time.perf_counter() - began
    if rc or not result_file.exists():
        return {"phase": phase, "items": n_items, "failed": f"exit code {rc}", "elapsed_s": elapsed,
                "log_tail": tail(log)}
    figures = json.loads(result_file.read_text())
    figures["elapsed_s"] = elapsed
    return figures


def sampled_peak_mib(pid: int) -> float | None:
    """Peak RSS so far of a running process (Linux ``VmHWM``), MiB; None where unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def finished_in_log(path: Path) -> int:
    """Task runs a Prefect log reports finished."""
    with open(path, errors="replace") as lines:
        return sum(1 for line in lines if "Task run" in line and "Finished in state" in line)


def tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def run_prefect(python: str, n_items: int, workers: int, timeout: float, keep: bool) -> dict:
    """The three Prefect phases over ``n_items`` in one temporary ``PREFECT_HOME``."""
    home = Path(tempfile.mkdtemp(prefix=f"sdpflow-bench-prefect-{n_items}-"))
    phases = {}
    try:
        for phase in PHASES:
            print(f"  Prefect {n_items} items, {phase} ...", flush=True)
            figures = run_peer_phase(python, n_items, workers, phase, home, timeout)
            phases[phase] = figures
            if "failed" in figures:
                done = figures.get("completed_before_kill")
                print(f"  Prefect {n_items} items, {phase}: FAILED: {figures['failed']} ({figures['elapsed_s']:.0f} s"
                      f"{'' if done is None else f', {done} items finished'})\n{figures['log_tail']}", flush=True)
                for later in PHASES[PHASES.index(phase) + 1:]:
                    phases[later] = {"phase": later, "items": n_items, "failed": f"skipped: {phase} failed"}
                break
            print(f"  Prefect {n_items} items, {phase}: {figures['wall_s']:.1f} s, {figures['items_per_s']:.1f} items/s, "
                  f"first result {figures['first_result_s']:.1f} s, states {figures['states']}", flush=True)
    finally:
        if keep:
            print(f"  Prefect scratch kept: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return phases


# --------------------------------------------------------------------------------------------
# harness


def fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def summary(ours: dict | None, peer: dict | None) -> dict:
    """One row per side: items/s, wall s, client peak MiB, resume s (None where not measured)."""
    rows = {}
    if ours is not None and "failed" not in ours:
        # like Prefect's figures, sdpflow's items/s count from a running cluster (its start is in wall_s)
        rows["sdpflow"] = {"items_per_s": ours.get("steady_items_per_s"),
                           **{key: ours.get(key) for key in ("wall_s", "client_peak_mib", "resume_s")}}
    if peer is not None and "failed" not in peer.get("plain", {"failed": ""}):
        plain, fill, resume = peer["plain"], peer.get("fill", {}), peer.get("resume", {})
        rows["Prefect"] = {"items_per_s": plain["items_per_s"], "wall_s": plain["wall_s"],
                           "client_peak_mib": max(p["client_peak_mib"] for p in (plain, fill, resume) if "client_peak_mib" in p),
                           "cache_fill_s": fill.get("wall_s"), "resume_s": resume.get("wall_s")}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--peer-items", type=int, nargs="*", default=[1000, 10000],
                        help="the N at which Prefect runs too (~8 items/s on 2 cores: 10^5 is out of reach)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--peer-python", default=os.environ.get(PEER_PYTHON_VARIABLE),
                        help=f"python of the Prefect environment (default: ${PEER_PYTHON_VARIABLE})")
    parser.add_argument("--peer-timeout", type=float, default=1200, help="seconds allowed to one Prefect flow")
    parser.add_argument("--no-sdpflow", action="store_true", help="the Prefect side only")
    parser.add_argument("--no-peer", action="store_true", help="the sdpflow side only")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders (Prefect logs, databases)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--peer-child", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.peer_child:
        peer_child(options.items[0], options.workers, options.peer_child, options.result_file)
        return

    record = {"machine": {"cores": os.cpu_count(), "load_before": load_average(), "python": platform.python_version(),
                          "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "workers": options.workers, "results": []}
    peer_python = None if options.no_peer else options.peer_python
    if not options.no_peer and not peer_python:
        print(f"Prefect: not run (set ${PEER_PYTHON_VARIABLE} or --peer-python)")

    for n in sorted(set(options.items) | (set(options.peer_items) if peer_python else set())):
        print(f"\n{n} items", flush=True)
        ours = None
        if not options.no_sdpflow and n in options.items:
            scratch = Path(tempfile.mkdtemp(prefix=f"sdpflow-bench-fanout-{n}-"))
            try:
                ours = run_sdpflow(n, options.workers, f"sqlite:///{scratch / 'runs.db'}", scratch / "out")
            except NotImplementedError as why:
                print(f"  sdpflow: not available ({why})")
            except Exception as why:  # noqa: BLE001 - a benchmark records failures
                ours = {"failed": f"{type(why).__name__}: {why}"}
                print(f"  sdpflow: FAILED: {ours['failed']}")
            finally:
                if not options.keep:
                    shutil.rmtree(scratch, ignore_errors=True)
        peer = None
        if peer_python and n in options.peer_items:
            peer = run_prefect(peer_python, n, options.workers, options.peer_timeout, options.keep)
        rows = summary(ours, peer)
        record["results"].append({"items": n, "sdpflow": ours, "prefect": peer, "summary": rows})
        print_table(n, rows, ours, peer)
        if options.json:  # after every N, so a long run leaves what it measured
            options.json.write_text(json.dumps(record, indent=1))
    record["machine"]["load_after"] = load_average()
    if options.json:
        options.json.write_text(json.dumps(record, indent=1))


def print_table(n: int, rows: dict, ours: dict | None, peer: dict | None) -> None:
    print(f"\n{n} items{'' if rows else ' (nothing measured)'}")
    print("| | items/s | wall s | client peak MiB | resume s |")
    print("|---|---|---|---|---|")
    for side in ("sdpflow", "Prefect"):
        row = rows.get(side)
        if row:
            print(f"| {side} | {fmt(row['items_per_s'], '.1f')} | {fmt(row['wall_s'], '.2f')} | "
                  f"{fmt(row['client_peak_mib'], '.0f')} | {fmt(row['resume_s'], '.2f')} |")
        else:
            source = ours if side == "sdpflow" else (peer or {}).get("plain")
            why = (source or {}).get("failed", "not available" if side == "sdpflow" else "not run")
            print(f"| {side} | {why} | | | |")
    if "sdpflow" in rows and "Prefect" in rows:
        print(f"| **ratio sdpflow / Prefect items/s** | **{rows['sdpflow']['items_per_s'] / rows['Prefect']['items_per_s']:.1f}** | | | |")
    if "Prefect" in rows and rows["Prefect"].get("cache_fill_s") is not None:
        print(f"(Prefect with cache_policy=INPUTS, persist_result=True: first run {rows['Prefect']['cache_fill_s']:.2f} s, "
              f"re-run {fmt(rows['Prefect']['resume_s'], '.2f')} s)")


if __name__ == "__main__":
    main()
