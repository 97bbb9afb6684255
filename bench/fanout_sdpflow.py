"""The sdpflow half of bench/fanout.py: N no-op items through a fan-out stage with per-item records.

Each measurement runs in a fresh process (so its peak memory is its own):

    python bench/fanout_sdpflow.py N WORKERS DB_URL OUT_DIR    # prints one JSON line

Every item returns one result row, so each item costs an item record and a result-table row
in the run database, both written by the client in bulk. Wall time runs from ``start_run``
to the run's completion (cluster start included); ``steady`` items/s leave out the cluster's
start (from the cluster-opened event to the stage's completion). Resume: ``resume_run`` of
the completed run, which checks all N item records and runs none.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from sdpflow.config.base import Section
from sdpflow.config.cluster import ClusterConfig
from sdpflow.engine.fanout import FanOut, Item
from sdpflow.engine.flow import Stage
from sdpflow.pipelines import Pipeline
from sdpflow.store.results import ResultTable

NOOP_TABLE = ResultTable("noop", {"n": int})


class NoopConfig(Section):
    count: int = 1000
    cluster: ClusterConfig = ClusterConfig(spec="local:2")


def noop(item) -> dict:
    return {"n": item.payload}


def _items(count: int):
    return lambda ctx: [Item(f"item-{n:07d}", n) for n in range(count)]


def build(config: NoopConfig) -> list[Stage]:
    return [Stage("noop", fan_out=FanOut(_items(config.count), noop, table=NOOP_TABLE), config={"count": config.count})]


NOOP = Pipeline("noop-items", NoopConfig, build)


def run_sdpflow(n_items: int, workers: int, db_url: str, out_dir: str) -> dict:
    """Measure sdpflow on ``n_items`` no-op items in a fresh process; the figures as a dict."""
    done = subprocess.run([sys.executable, __file__, str(n_items), str(workers), db_url, out_dir],
                          capture_output=True, text=True, cwd=Path(__file__).parent)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure(n_items: int, workers: int, db_url: str, out_dir: str) -> dict:
    from sdpflow.pipelines import resume_run, start_run
    from sdpflow.store import RunStore

    events: dict[str, float] = {}

    def observe(record: dict) -> None:
        if record["event"] in ("cluster-opened", "stage-completed"):
            events.setdefault(record["event"], time.perf_counter())

    store = RunStore(db_url)
    config = NoopConfig(count=n_items, cluster=ClusterConfig(spec=f"local:{workers}"))
    started = time.perf_counter()
    result = start_run("fanout_sdpflow:NOOP", config, out_dir, store=store, observers=[observe])
    wall = time.perf_counter() - started
    resume_started = time.perf_counter()
    again = resume_run(result.run_id, store=store)
    resume_s = time.perf_counter() - resume_started
    assert again.skipped == ["noop"], again
    assert store.item_counts(result.run_id) == {"noop": {"completed": n_items}}
    steady = events["stage-completed"] - events["cluster-opened"]
    return {"items": n_items, "wall_s": round(wall, 3), "items_per_s": round(n_items / wall, 1),
            "steady_items_per_s": round(n_items / steady, 1), "resume_s": round(resume_s, 3),
            "client_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


if __name__ == "__main__":
    print(json.dumps(_measure(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])))
