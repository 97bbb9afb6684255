"""Rich progress for flows: one bar for the stages, one for the work inside the current stage."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class FlowProgress:
    """An observer of flow events that draws progress bars and prints the dashboard link."""

    def __init__(self, console: Console, total_label: str = "stages"):
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            # Redrawing runs in a thread of the client process, which also hosts a local
            # cluster's scheduler: a few redraws a second on a terminal, none into a file.
            auto_refresh=console.is_terminal,
            refresh_per_second=4,
        )
        self.total_label = total_label
        self.flow_task = None
        self.stage_task = None

    def __enter__(self) -> "FlowProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, record: dict[str, Any]) -> None:
        event = record.get("event")
        stage = record.get("stage")
        if event == "flow-started":
            self.flow_task = self.progress.add_task(self.total_label, total=record["total"])
        elif event == "cluster-opened" and record.get("dashboard"):
            self.progress.console.print(f"Dask dashboard: [link={record['dashboard']}]{record['dashboard']}[/link]")
        elif event == "stage-started":
            if self.stage_task is not None:
                self.progress.remove_task(self.stage_task)
            self.stage_task = self.progress.add_task(f"  {stage}", total=None)
            if record.get("attempt", 1) > 1:
                self.progress.console.print(f"  {stage}: attempt {record['attempt']}")
        elif event == "stage-progress" and self.stage_task is not None:
            description = f"  {stage}" + (f": {record['description']}" if record.get("description") else "")
            self.progress.update(self.stage_task, completed=record["done"], total=record["total"],
                                 description=description)
        elif event in ("stage-completed", "stage-skipped"):
            if self.stage_task is not None:
                self.progress.remove_task(self.stage_task)
                self.stage_task = None
            verb = "done" if event == "stage-completed" else "skipped (outputs intact)"
            elapsed = f" in {record['elapsed_s']:.1f} s" if "elapsed_s" in record else ""
            self.progress.console.print(f"  [green]✓[/] {stage} {verb}{elapsed}")
            if self.flow_task is not None:
                self.progress.advance(self.flow_task)
        elif event == "stage-retrying":
            self.progress.console.print(f"  [yellow]![/] {stage} failed ({record['error']}); retrying in {record['delay_s']:.0f} s")
        elif event == "stage-failed":
            self.progress.console.print(f"  [red]✗[/] {stage} failed: {record['error']}")
