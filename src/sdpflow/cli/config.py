"""``sdpflow config``: show a pipeline's defaults, check a configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import BaseModel

from sdpflow.cli.common import console
from sdpflow.config import defaults_yaml, load_config

config_app = typer.Typer(help="Show and check pipeline configurations.", no_args_is_help=True)

NAME_HELP = "A registered pipeline (see `sdpflow run --help`), `simulate`, or your own as module:ATTRIBUTE."


def config_model(name: str) -> type[BaseModel]:
    """The configuration model ``name`` stands for: ``simulate`` (a command, not a pipeline) or a pipeline's."""
    if name == "simulate":
        from sdpflow.config.simulate import SimulateConfig

        return SimulateConfig
    from sdpflow.pipelines import get_pipeline

    return get_pipeline(name).config_model


@config_app.command("show")
def show(pipeline: Annotated[str, typer.Argument(help=NAME_HELP)] = "ical") -> None:
    """Print a pipeline's default configuration as YAML (a starting point for --config)."""
    print(defaults_yaml(config_model(pipeline)), end="")


@config_app.command("check")
def check(
    pipeline: Annotated[str, typer.Argument(help=NAME_HELP)],
    path: Annotated[Path, typer.Argument(help="YAML configuration file.")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override: section.key=value.")] = None,
) -> None:
    """Validate a configuration file (and overrides) without running anything."""
    load_config(config_model(pipeline), path, set_ or (), name=pipeline)
    console.print(f"{path}: valid {pipeline} configuration")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
