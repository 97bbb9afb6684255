"""A slow fan-out pipeline for the worker-replacement test (tests.integration.replacement_pipeline:SLOW).

Item ``k`` sleeps ``seconds_per_item``, appends one line ``<start time> <SLURM job id>`` to
``marks/k`` (every execution, so reruns are counted outside the run database), and returns the
row ``{"n": k, "square": k*k, "job": <SLURM job id>}``. A plain stage writes their sum after.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from sdpflow.config.base import Section
from sdpflow.config.cluster import ClusterConfig
from sdpflow.engine.fanout import FanOut, Item
from sdpflow.engine.flow import Stage
from sdpflow.pipelines import Pipeline
from sdpflow.store.results import ResultTable

TABLE = ResultTable("slow_squares", {"n": int, "square": float, "job": str}, indexed=("n",))


class SlowConfig(Section):
    count: int = 60
    seconds_per_item: float = 1.0
    marks: str = "marks"
    cluster: ClusterConfig = ClusterConfig(spec="local:1")


def slow_square(item) -> dict:
    n, seconds, marks = item.payload
    job = os.environ.get("SLURM_JOB_ID", "local")
    with open(Path(marks) / str(n), "a") as handle:
        handle.write(f"{time.time()} {job}\n")
    time.sleep(seconds)
    return {"n": n, "square": float(n * n), "job": job}


def build(config: SlowConfig) -> list[Stage]:
    def items(ctx):
        return [Item(f"n{n:04d}", (n, config.seconds_per_item, config.marks)) for n in range(config.count)]

    def total(ctx):
        ctx.output("total.json").write_text(json.dumps({"sum": sum(n * n for n in range(config.count))}))

    return [
        Stage("squares", fan_out=FanOut(items, slow_square, table=TABLE),
              config={"count": config.count, "seconds": config.seconds_per_item}),
        Stage("total", total, outputs=("total.json",), after=("squares",), config={}),
    ]


SLOW = Pipeline("slow-squares", SlowConfig, build)
