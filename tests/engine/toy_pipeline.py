"""A toy two-stage pipeline for the flow tests (importable as tests.engine.toy_pipeline:TOY).

``first`` reads an input file and writes ``a.txt`` (its text times ``first.repeat``);
``second`` reads ``a.txt`` and writes ``b.txt`` (upper-cased, with ``second.suffix``).
Every stage execution appends its name to ``ledger.txt`` beside the input, so a test can
count what really ran. ``TOY_KILL_IN=<stage>`` makes that stage kill its own process;
``TOY_GATE=<path>`` makes every stage wait (up to a minute) until that path exists.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from sdpflow.config.base import Section
from sdpflow.engine.flow import Stage
from sdpflow.pipelines import Pipeline


class FirstConfig(Section):
    repeat: int = 2


class SecondConfig(Section):
    suffix: str = "!"
    failures_before_success: int = 0


class ToyConfig(Section):
    input: str
    env: dict[str, str] = {}  # unused by the stages: a place for secret-named values (tests/store/test_secrets.py)
    first: FirstConfig = FirstConfig()
    second: SecondConfig = SecondConfig()


def _note(config: ToyConfig, stage: str) -> None:
    with open(Path(config.input).parent / "ledger.txt", "a") as ledger:
        ledger.write(stage + "\n")
    if os.environ.get("TOY_KILL_IN") == stage:
        os.kill(os.getpid(), signal.SIGKILL)
    gate = os.environ.get("TOY_GATE")
    deadline = time.monotonic() + 60
    while gate and not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _first(ctx, config: ToyConfig) -> None:
    _note(config, "first")
    ctx.output("a.txt").write_text(Path(config.input).read_text() * config.first.repeat)


def _second(ctx, config: ToyConfig) -> None:
    _note(config, "second")
    ledger = (Path(config.input).parent / "ledger.txt").read_text().split()
    if ledger.count("second") <= config.second.failures_before_success:
        raise RuntimeError("transient failure")
    ctx.output("b.txt").write_text(ctx.product("a.txt").read_text().upper() + config.second.suffix)


def build(config: ToyConfig) -> list[Stage]:
    return [
        Stage("first", lambda ctx: _first(ctx, config), outputs=("a.txt",), inputs=(config.input,),
              config=config.first.model_dump()),
        Stage("second", lambda ctx: _second(ctx, config), outputs=("b.txt",), after=("first",),
              config=config.second.model_dump(), retries=2, backoff_s=0.01),
    ]


TOY = Pipeline("toy", ToyConfig, build)
