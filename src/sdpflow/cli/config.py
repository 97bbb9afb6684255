"""``sdpflow config``: show a pipeline's defaults, check a configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sdpflow.cli.common import console
from sdpflow.config import PIPELINE_CONFIGS, defaults_yaml, load_config

config_app = typer.Typer(help="Show and check pipeline configurations.", no_args_is_help=True)


@config_app.command("show")
def show(
    pipeline: Annotated[
        str, typer.Argument(help=f"Pipeline: {', '.join(PIPELINE_CONFIGS)}.")
    ] = next(iter(PIPELINE_CONFIGS)),
) -> None:
    """Print a pipeline's default configuration as YAML (a starting point for --config)."""
    print(defaults_yaml(pipeline), end="")


@config_app.command("check")
def check(
    pipeline: Annotated[str, typer.Argument(help="Pipeline the file configures.")],
    path: Annotated[Path, typer.Argument(help="YAML configuration file.")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override: section.key=value.")] = None,
) -> None:
    """Validate a configuration file (and overrides) without running anything."""
    load_config(pipeline, path, set_ or ())
    console.print(f"{path}: valid {pipeline} configuration")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
