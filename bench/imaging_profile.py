"""Where a continuum run's time goes: client-side stage events and the workers' task stream.

Not a test. Runs ``continuum`` in this process on a fresh default local cluster with the
settings of ``bench/vs_wsclean.py`` and prints a timeline (seconds from start) of stage
events, then per stage the worker seconds by task kind (Dask key prefix)::

    python bench/imaging_profile.py --ms obs.ms --out DIR [--set imaging.epsilon=1e-4 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections import defaultdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ms", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--scale", default="20.0asec")
    parser.add_argument("--time-chunks", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], help="SECTION.KEY=VALUE overrides, e.g. imaging.epsilon=1e-4")
    parser.add_argument("--db", default="sqlite:///:memory:")
    args = parser.parse_args()
    started = time.perf_counter()

    from distributed import get_task_stream

    from sdpflow.config import load_config
    from sdpflow.config.imaging import ContinuumConfig
    from sdpflow.pipelines import runner
    from sdpflow.store.db import RunStore

    imported = time.perf_counter() - started
    settings = {"ms": args.ms,
                "imaging": {"size": [args.size, args.size], "scale": args.scale, "weight": "briggs 0.0"},
                "deconvolution": {"niter": 10000, "mgain": 0.8, "auto_threshold": 3.0},
                "partition": {"time_chunks": args.time_chunks, "frequency_chunks": 1}}
    config = load_config(ContinuumConfig, None, args.set, values=settings, name="continuum")
    streams: list = []
    real_open = runner.open_cluster

    @contextlib.contextmanager
    def open_cluster(cluster_config, **options):
        with real_open(cluster_config, **options) as client, get_task_stream(client) as stream:
            marks.append((time.perf_counter() - started, "cluster-open", None))
            yield client
            streams.append(stream)

    marks: list[tuple[float, str, str | None]] = []
    runner.open_cluster = open_cluster
    observer = lambda record: marks.append((time.perf_counter() - started, record["event"], record.get("stage")))
    runner.start_run("continuum", config, args.out, store=RunStore(args.db), observers=[observer])
    total = time.perf_counter() - started
    print(f"imports {imported:.2f} s, total {total:.2f} s, this process (client and scheduler) "
          f"{time.process_time():.2f} CPU-s")
    for t, event, stage in marks:
        print(f"{t:7.2f}  {event:18} {stage or ''}")
    if not streams:
        return
    by_stage: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    t0 = min(task["startstops"][0]["start"] for task in streams[0].data)
    for task in streams[0].data:
        for ss in task["startstops"]:
            if ss["action"] != "compute":
                continue
            prefix = task["key"][0] if isinstance(task["key"], tuple) else task["key"]
            prefix = str(prefix).rsplit("-", 1)[0]
            by_stage[f"{task['worker'][-5:]}"][prefix] += ss["stop"] - ss["start"]
    for worker, kinds in by_stage.items():
        print(worker, {k: round(v, 2) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])})
    rows = sorted((ss["start"] - t0, ss["stop"] - t0, str(task["key"])[:50], task["worker"][-5:])
                  for task in streams[0].data for ss in task["startstops"] if ss["action"] == "compute")
    for start, stop, key, worker in rows:
        if stop - start > float(__import__("os").environ.get("PROFILE_MIN_S", "0.05")):
            print(f"  {start:7.2f} {stop:7.2f} {stop - start:6.2f} {worker} {key}")


if __name__ == "__main__":
    main()
