"""Rich progress for flows: one bar for the stages, one for the work inside the current stage.

Besides the bars it prints one line per event a user waits for: the cluster starting and
ready (workers, dashboard), each stage done or skipped, each major cycle's peak, RMS,
components and the level it cleaned to. Lines carry the time of day when the output is not a
terminal (a log file, a batch job's output), where the bars are not redrawn.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


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
            TextColumn("ETA"),
            TimeRemainingColumn(),
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
        self.converged: set[str] = set()  # stages that carried a converged model on without cleaning

    def __enter__(self) -> "FlowProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def line(self, text: str) -> None:
        """Print a line above the bars; with the time of day when the output is not a terminal."""
        stamp = "" if self.console.is_terminal else f"{datetime.now().strftime('%H:%M:%S')} "
        self.progress.console.print(f"{stamp}{text}", soft_wrap=True)  # one line each, also in an 80-column log

    def __call__(self, record: dict[str, Any]) -> None:
        event = record.get("event")
        stage = record.get("stage")
        if event == "flow-started":
            self.flow_task = self.progress.add_task(self.total_label, total=record["total"])
        elif event == "cluster-starting":
            self.line("starting cluster" + (f" ({record['spec']})" if record.get("spec") else "") + "...")
        elif event == "cluster-opened":
            count = record.get("workers")
            workers = f"{count} worker{'' if count == 1 else 's'}" if count is not None else ""
            took = f" in {record['elapsed_s']:.1f} s" if "elapsed_s" in record else ""
            link = f"; Dask dashboard: [link={record['dashboard']}]{record['dashboard']}[/link]" if record.get("dashboard") else ""
            self.line(f"cluster started ({workers}){took}{link}" if workers else f"cluster started{took}{link}")
        elif event == "stage-started":
            if self.stage_task is not None:
                self.progress.remove_task(self.stage_task)
            self.stage_task = self.progress.add_task(f"  {stage}", total=None)
            if record.get("attempt", 1) > 1:
                self.line(f"  {stage}: attempt {record['attempt']}")
        elif event == "stage-progress" and self.stage_task is not None:
            description = f"  {stage}" + (f": {record['description']}" if record.get("description") else "")
            self.progress.update(self.stage_task, completed=record["done"], total=record["total"],
                                 description=description)
        elif event == "major-cycle":
            self._major_cycle(stage, record)
        elif event in ("stage-completed", "stage-skipped"):
            if self.stage_task is not None:
                self.progress.remove_task(self.stage_task)
                self.stage_task = None
            if stage in self.converged:
                self.line(f"  [green]✓[/] {stage} skipped (converged)")
            else:
                verb = "done" if event == "stage-completed" else "skipped (outputs intact)"
                elapsed = f" in {record['elapsed_s']:.1f} s" if "elapsed_s" in record else ""
                self.line(f"  [green]✓[/] {stage} {verb}{elapsed}")
            if self.flow_task is not None:
                self.progress.advance(self.flow_task)
        elif event == "stage-retrying":
            self.line(f"  [yellow]![/] {stage} failed ({record['error']}); retrying in {record['delay_s']:.0f} s")
        elif event == "stage-failed":
            self.line(f"  [red]✗[/] {stage} failed: {record['error']}")

    def _major_cycle(self, stage: str | None, record: dict[str, Any]) -> None:
        """One line per major cycle: the residual's peak and RMS, the components cleaned and the level reached."""
        if record.get("skipped"):
            self.converged.add(str(stage))
            return
        def jy(name: str) -> str:
            value = record.get(name)
            return "n/a" if value is None else f"{value:.3g}"

        terms = record.get("calibrated_terms") or []
        self.line(f"  {stage}: peak {jy('peak_residual_jy')}, RMS {jy('rms_residual_jy')} Jy/beam; "
                  f"{record.get('components', 0)} components to {jy('peak_after_minor_jy')} Jy/beam "
                  f"({record.get('stop_reason')})" + (f"; solved {', '.join(terms)}" if terms else ""))
