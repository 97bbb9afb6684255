"""A small two-stage flow that exercises the engine end to end.

Stage ``squares`` sums the squares of ``0..count-1`` in ``chunks`` Dask tasks and writes
``squares.json``; stage ``report`` turns it into ``report.txt``. Useful to try a cluster,
and as the engine's test subject (kill after stage 1, resume, change config...).
"""

from __future__ import annotations

import json
from pathlib import Path

from sdpflow.config.demo import DemoFlowConfig
from sdpflow.engine.flow import Stage, StageContext
from sdpflow.engine.futures import gather
from sdpflow.pipelines.registry import Pipeline


def _partial_sum(start: int, stop: int) -> int:
    return sum(value * value for value in range(start, stop))


def _squares(ctx: StageContext, config: DemoFlowConfig) -> int:
    count, chunks = config.squares.count, config.squares.chunks
    bounds = [count * index // chunks for index in range(chunks + 1)]
    futures = ctx.client.map(_partial_sum, bounds[:-1], bounds[1:], pure=False)
    total = sum(gather(futures))
    ctx.output("squares.json").write_text(json.dumps({"count": count, "sum_of_squares": total}))
    return total


def _report(ctx: StageContext, config: DemoFlowConfig) -> str:
    data = json.loads(ctx.product("squares.json").read_text())
    text = f"{config.report.title}: sum of k^2 for k < {data['count']} = {data['sum_of_squares']}\n"
    ctx.output("report.txt").write_text(text)
    return text


def build(config: DemoFlowConfig) -> list[Stage]:
    """The stages of the demo flow."""
    return [
        Stage("squares", lambda ctx: _squares(ctx, config), outputs=("squares.json",), config=config.squares.model_dump()),
        Stage("report", lambda ctx: _report(ctx, config), outputs=("report.txt",), after=("squares",),
              config=config.report.model_dump()),
    ]


def report_text(out_dir: Path) -> str:
    """The demo flow's one-line result, from ``report.txt`` ("" before the run wrote it)."""
    report = Path(out_dir) / "report.txt"
    return report.read_text().strip() if report.exists() else ""


DEMO_FLOW = Pipeline(
    "demo-flow", DemoFlowConfig, build, summary=report_text,
    description="A small two-stage flow (sum of squares on the cluster, then a report): try a cluster or the engine.",
)
