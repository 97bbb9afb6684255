"""Every `sdpflow ...` command README.md shows (in its bash blocks and inline code) exists,
takes the positional arguments shown, and has every option it is shown with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.commands import FENCE, Command, check_command, parse, shell_lines

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[Command]:
    found: dict[tuple, Command] = {}
    for line in shell_lines(README.read_text(encoding="utf-8")):
        for command in parse(line):
            found.setdefault((command.global_options, command.words, command.options), command)
    return list(found.values())


def test_parser_reads_the_shapes_readme_uses():
    assert parse("sdpflow --cluster local:4 run demo-flow --out out/   # comment --nope") == [
        Command("sdpflow --cluster local:4 run demo-flow --out out/   # comment --nope", ("--cluster",),
                ("run", "demo-flow"), ("--out",))]
    (chained,) = parse("sdpflow cluster check && sdpflow run demo-flow --out out/")[1:]
    assert (chained.words, chained.options) == (("run", "demo-flow"), ("--out",))
    (shown,) = parse("sdpflow config show ical > ical.yaml")
    assert shown.words == ("config", "show", "ical")
    (wrapped,) = parse("sbatch deploy/slurm/job.sbatch sdpflow run ical --config=ical.yaml")
    assert (wrapped.words, wrapped.options) == (("run", "ical"), ("--config",))


def test_readme_shows_the_cluster_commands():
    shown = {" ".join(c.words) for c in readme_commands()}
    assert {"run demo-flow", "cluster check", "cluster check slurm", "run ical"} <= shown
    assert any(c.global_options == ("--cluster",) for c in readme_commands())


@pytest.mark.parametrize("command", readme_commands(), ids=lambda c: c.line[:70])
def test_readme_command_exists_with_its_options(command):
    check_command(command)


def test_readme_cluster_sections_validate():
    import yaml

    from sdpflow.config.cluster import ClusterConfig

    sections = [yaml.safe_load(body) for language, body in FENCE.findall(README.read_text(encoding="utf-8"))
                if language == "yaml"]
    specs = [ClusterConfig.model_validate(s["cluster"]).spec for s in sections if isinstance(s, dict) and "cluster" in s]
    assert specs == ["slurm", "ssh", "kubernetes", "slurm"]  # the last: the TLS example
