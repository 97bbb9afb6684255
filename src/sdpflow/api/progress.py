"""Progress of a flow in a notebook: one output area, updated in place (the terminal's is ``cli.progress``)."""

from __future__ import annotations

import html
import time
from typing import Any


def in_notebook() -> bool:
    """Whether this is a Jupyter kernel (IPython with a kernel), where output is HTML rather than a terminal."""
    import sys

    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def flow_progress(enabled: bool = True) -> Any:
    """The progress observer for where this runs: a notebook's output area, a terminal's bars, or none."""
    if not enabled:
        return NoProgress()
    if in_notebook():
        return NotebookProgress()
    from rich.console import Console

    from sdpflow.cli.progress import FlowProgress

    return FlowProgress(Console())


class NoProgress:
    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __call__(self, record: dict[str, Any]) -> None:
        pass


class NotebookProgress:
    """An observer of flow events shown as a small HTML block: the stages done, the current stage's items, the
    Dask dashboard's link, and a line per finished stage. Redrawn at most ``interval_s`` apart, and at the end."""

    def __init__(self, interval_s: float = 0.5):
        self.interval_s = interval_s
        self.total = 0
        self.done = 0
        self.current = ""
        self.dashboard = ""
        self.lines: list[str] = []
        self.handle: Any = None
        self.drawn = 0.0

    def __enter__(self) -> NotebookProgress:
        from IPython.display import HTML, display

        self.handle = display(HTML(self.html()), display_id=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.current = ""
        self.draw(force=True)

    def __call__(self, record: dict[str, Any]) -> None:
        event, stage = record.get("event"), record.get("stage")
        if event == "flow-started":
            self.total = record["total"]
        elif event == "cluster-opened" and record.get("dashboard"):
            self.dashboard = record["dashboard"]
        elif event == "stage-started":
            self.current = f"{stage}"
        elif event == "stage-progress":
            what = f": {record['description']}" if record.get("description") else ""
            self.current = f"{stage}{what} {record['done']}/{record['total']}"
        elif event in ("stage-completed", "stage-skipped"):
            self.done += 1
            verb = "done" if event == "stage-completed" else "skipped (outputs intact)"
            elapsed = f" in {record['elapsed_s']:.1f} s" if "elapsed_s" in record else ""
            self.lines.append(f"✓ {stage} {verb}{elapsed}")
            self.current = ""
        elif event == "stage-retrying":
            self.lines.append(f"! {stage} failed ({record['error']}); retrying in {record['delay_s']:.0f} s")
        elif event == "stage-failed":
            self.lines.append(f"✗ {stage} failed: {record['error']}")
        self.draw(force=event in ("flow-started", "cluster-opened", "stage-failed"))

    def html(self) -> str:
        parts = [f"<b>stages</b> <progress value='{self.done}' max='{max(self.total, 1)}'></progress> "
                 f"{self.done}/{self.total}"]
        if self.current:
            parts.append(f"&nbsp;&nbsp;{html.escape(self.current)}")
        if self.dashboard:
            link = html.escape(self.dashboard, quote=True)
            parts.append(f"Dask dashboard: <a href='{link}' target='_blank'>{link}</a>")
        parts += [html.escape(line) for line in self.lines]
        return "<br>".join(parts)

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.handle is None or (not force and now - self.drawn < self.interval_s):
            return
        from IPython.display import HTML

        self.handle.update(HTML(self.html()))
        self.drawn = now
