"""What every CLI module shares: the global settings and the consoles."""

from __future__ import annotations

from dataclasses import dataclass

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


@dataclass
class Settings:
    """Global options given before the subcommand."""

    db_url: str | None = None
    cluster_spec: str | None = None
    verbose: int = 0


def settings(ctx: typer.Context) -> Settings:
    """The global settings of this invocation."""
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, Settings) else Settings()

