"""``report.html``: one self-contained page per run, made of sections.

Every run gets :func:`run_section` (its stages, item counts and the stage and task timelines);
a pipeline adds its own section (``Pipeline.report_section``: the imaging pipelines' images,
major cycles and gains). A section names the figures it wants and the function that draws
them; :func:`write_report` draws them all through ``map_function`` (the imaging flow passes
one that draws them on its workers in parallel) and writes the page.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Callable

from sdpflow.engine.events import read_events

#: A figure of a section: (kind, argument, alt text), drawn by the section's ``render(run_dir, spec)``.
FigureSpec = tuple[str, str, str]
Render = Callable[[str, FigureSpec], "bytes | None"]


@dataclass(frozen=True)
class ReportSection:
    """A part of the report: facts as rows, extra HTML (already escaped), and figures."""

    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    html: str = ""
    figures: list[FigureSpec] = field(default_factory=list)
    render: Render | None = None  # a module-level function (figures may be drawn on workers)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def table(rows: list[tuple[str, str]]) -> str:
    """An HTML table of (name, value) rows, escaped."""
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                               for k, v in rows) + "</table>"


def run_section(run_dir: str | Path, item_counts: dict[str, dict[str, int]] | None = None) -> ReportSection:
    """What every run's report holds: its stages (time, items) and the stage and task timelines."""
    run_dir = Path(run_dir)
    spans = stage_timeline(run_dir / "events.jsonl")
    rows = [(name, f"{end - start:.1f} s" + (", " + ", ".join(f"{n} {status}" for status, n in
                                                             sorted((item_counts or {}).get(name, {}).items()))
                                             if (item_counts or {}).get(name) else ""))
            for name, start, end in spans]
    figures = [("stages", "", "stage timeline")] if spans else []
    if (run_dir / "tasks.jsonl").exists():
        figures.append(("tasks", "", "task timeline per worker"))
    return ReportSection("Stages", rows, figures=figures, render=render_run_figure)


def render_run_figure(run_dir: str, spec: FigureSpec) -> bytes | None:
    """A figure of :func:`run_section` as PNG bytes (None: nothing to draw)."""
    from sdpflow.report import plots  # matplotlib: only where figures are drawn

    kind = spec[0]
    if kind == "stages":
        spans = stage_timeline(Path(run_dir) / "events.jsonl")
        return plots.timeline_png(spans) if spans else None
    if kind == "tasks":
        tasks = list(read_events(Path(run_dir) / "tasks.jsonl"))
        return plots.tasks_png(tasks[-20000:]) if tasks else None
    raise ValueError(f"unknown report figure kind {kind!r}")


def _draw(run_dir: str, job: tuple[Render, FigureSpec]) -> bytes | None:
    render, spec = job
    return render(run_dir, spec)


def write_report(run_dir: str | Path, path: str | Path, sections: list[ReportSection], *, title: str,
                 map_function: Callable = map) -> None:
    """Write the HTML report of the run in ``run_dir`` with ``sections`` to ``path``.

    ``map_function(function, jobs)`` draws the figures; the default draws them here, one
    after the other.
    """
    run_dir = Path(run_dir)
    jobs = [(section.render, spec) for section in sections for spec in section.figures]
    pngs = iter(list(map_function(partial(_draw, str(run_dir)), jobs)))
    parts = []
    for section in sections:
        figures = [_img(png, spec[2]) for spec in section.figures if (png := next(pngs)) is not None]
        parts.append(f"<h2>{html.escape(section.title)}</h2>{table(section.rows) if section.rows else ''}"
                     f"{section.html}{''.join(figures)}")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse;margin:1em 0}}
th,td{{border:1px solid #ccc;padding:4px 8px;text-align:left}} img{{margin:6px;border:1px solid #eee}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>written {datetime.now().isoformat(timespec='seconds')} from {html.escape(str(run_dir.resolve()))}</p>
{''.join(parts)}
</body></html>"""
    Path(path).write_text(page, encoding="utf-8")


def stage_timeline(events_path: Path) -> list[tuple[str, float, float]]:
    """(stage, start, end) in seconds from the first event, for the stages that completed last time."""
    if not events_path.exists():
        return []
    starts: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    origin = None
    for record in read_events(events_path):
        moment = datetime.fromisoformat(record["time"]).timestamp()
        if record["event"] == "flow-started":
            origin, starts, spans = moment, {}, {}
        if origin is None:
            origin = moment
        if record["event"] == "stage-started":
            starts[record["stage"]] = moment - origin
        elif record["event"] == "stage-completed" and record["stage"] in starts:
            spans[record["stage"]] = (starts[record["stage"]], moment - origin)
    return [(name, start, end) for name, (start, end) in spans.items()]
