"""A fan-out test pipeline (importable as tests.engine.fanout_pipeline:SQUARES).

``squares`` maps ``count`` items; item ``k`` returns one row ``{"n": k, "square": k*k}`` of
result table ``squares`` and, when ``files`` is set, writes ``items/k.txt``. Items named in
``poisoned`` raise every time. ``summary`` is a plain stage after it. ``sleep_ms`` slows each item (for the kill test).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel

from sdpflow.config.base import Section
from sdpflow.config.cluster import ClusterConfig
from sdpflow.engine.fanout import FanOut, Item
from sdpflow.engine.flow import Stage
from sdpflow.pipelines import Pipeline
from sdpflow.store.results import ResultTable

TABLE = ResultTable("squares", {"n": int, "square": float}, indexed=("n",))


class SquaresConfig(Section):
    count: int = 100
    poisoned: list[int] = []
    files: bool = False
    sleep_ms: float = 0.0
    max_failed_fraction: float = 0.0
    cluster: ClusterConfig = ClusterConfig(spec="local:2")


def _key(n: int) -> str:
    return f"n{n:06d}"


def square(item) -> dict:
    n, config = item.payload
    if config["sleep_ms"]:
        time.sleep(config["sleep_ms"] / 1000)
    if n in config["poisoned"]:
        raise ValueError(f"item {n} is poisoned")
    if config["files"]:
        item.output(f"items/{n}.txt").write_text(str(n * n))
    return {"n": n, "square": float(n * n), "parity": "even" if n % 2 == 0 else "odd"}


def build(config: SquaresConfig) -> list[Stage]:
    settings = {"sleep_ms": config.sleep_ms, "poisoned": config.poisoned, "files": config.files}

    def items(ctx):
        return [Item(_key(n), (n, settings)) for n in range(config.count)]

    def summary(ctx):
        ctx.output("summary.json").write_text(json.dumps({"count": config.count}))

    return [
        Stage("squares", fan_out=FanOut(items, square, table=TABLE, max_failed_fraction=config.max_failed_fraction),
              config={"count": config.count, **settings}),
        Stage("summary", summary, outputs=("summary.json",), after=("squares",), config={}),
    ]


class SquaresSummary(BaseModel):
    count: int


def read_summary(run_dir: Path) -> SquaresSummary:
    """The typed ``summary.json`` the ``summary`` stage writes."""
    return SquaresSummary.model_validate_json((Path(run_dir) / "summary.json").read_text())


SQUARES = Pipeline("squares", SquaresConfig, build, read_summary=read_summary)
