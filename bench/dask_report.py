"""Benchmark: what Dask's performance report (``--dask-report``) costs an ICAL run of the demo.

Not a test. Run with the project's environment::

    python bench/dask_report.py [--repeat 2] [--json FILE]

Simulates the demo observation once, then runs ICAL with the demo's configuration
``--repeat`` times without and with ``cluster.dask_report`` (alternating, each run a fresh
output folder and a fresh local cluster) and reports the median wall seconds of each, their
ratio, and the report's size. The peer is the same run without the report, measured in the
same invocation. On a loaded machine the science's own spread swamps the difference, so each
run's close is timed too: from its ``flow-completed`` event to ``start_run`` returning (the
report is fetched and written there, then the cluster closes).
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import datetime, timezone
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_average  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()

    from sdpflow.pipelines.demo import demo_config, simulate_demo
    from sdpflow.pipelines.runner import start_run
    from sdpflow.store import RunStore

    root = Path(tempfile.mkdtemp(prefix="sdpflow-bench-dask-report-"))
    products, simulation = simulate_demo(root / "obs")
    store = RunStore(f"sqlite:///{root / 'runs.db'}")
    walls: dict[bool, list[float]] = {False: [], True: []}
    closes: dict[bool, list[float]] = {False: [], True: []}
    report_bytes = 0
    load_before = load_average()
    for index in range(args.repeat):
        for with_report in (False, True):
            config = demo_config(products, simulation)
            config.cluster.dask_report = with_report
            out = root / f"run-{index}-{'report' if with_report else 'plain'}"
            started = time.perf_counter()
            start_run("ical", config, out, store=store)
            walls[with_report].append(time.perf_counter() - started)
            closes[with_report].append(_seconds_since_completed(out / "events.jsonl"))
            if with_report:
                report_bytes = (out / "dask-report.html").stat().st_size
            print(f"run {index} report={with_report}: {walls[with_report][-1]:.1f} s, close "
                  f"{closes[with_report][-1]:.2f} s", flush=True)
    plain, reported = statistics.median(walls[False]), statistics.median(walls[True])
    figures = {"repeat": args.repeat, "wall_s_without": walls[False], "wall_s_with": walls[True],
               "median_without_s": round(plain, 2), "median_with_s": round(reported, 2),
               "ratio_with_over_without": round(reported / plain, 3),
               "close_s_without": closes[False], "close_s_with": closes[True],
               "median_close_without_s": round(statistics.median(closes[False]), 2),
               "median_close_with_s": round(statistics.median(closes[True]), 2), "report_bytes": report_bytes,
               "load_before": load_before, "load_after": load_average()}
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


def _seconds_since_completed(events: Path) -> float:
    """Seconds from the run's last ``flow-completed`` event to now."""
    completed = [json.loads(line) for line in events.read_text().splitlines() if '"flow-completed"' in line][-1]
    return (datetime.now(timezone.utc) - datetime.fromisoformat(completed["time"])).total_seconds()


if __name__ == "__main__":
    main()
