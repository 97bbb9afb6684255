"""``report.html``: one page per run, made of sections, rendered by Jinja2 templates.

Every run gets :func:`run_section` (its stages, item counts and the stage and task timelines);
a pipeline adds its own section (``Pipeline.report_section``: the imaging pipelines' images,
major cycles and gains). A section names the figures it wants and the function that draws
them; :func:`write_report` draws them all through ``map_function`` (the imaging flow passes
one that draws them on its workers in parallel), writes each as a full-resolution PNG (and an
SVG thumbnail where the figure was drawn by :func:`sdpflow.report.plots.save`) into a folder
beside the page, ``<page name>-figures/``, and writes the page.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Callable

from sdpflow.engine.events import read_events

#: A figure of a section: (kind, argument, alt text), drawn by the section's ``render(run_dir, spec)``.
FigureSpec = tuple[str, str, str]
#: A renderer returns PNG bytes, a :class:`sdpflow.report.plots.Drawn`, a matplotlib Figure, or None (nothing to draw).
Render = Callable[[str, FigureSpec], Any]


@dataclass(frozen=True)
class Table:
    """A table of a section: a title, column names and rows of text."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass(frozen=True)
class ReportSection:
    """A part of the report: facts as (name, value) rows, tables, figures, and links to files of the run."""

    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] | Callable[[], list[Table]] = field(default_factory=list)  # a callable: made beside the figures
    figures: list[FigureSpec] = field(default_factory=list)
    render: Render | None = None  # a module-level function (figures may be drawn on workers)
    links: list[tuple[str, str]] = field(default_factory=list)  # (label, file name relative to the run folder)


def template(name: str):
    """The Jinja2 template ``name`` of ``sdpflow/report/templates`` (HTML autoescaped)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(loader=PackageLoader("sdpflow.report", "templates"), autoescape=select_autoescape(["html"]),
                              trim_blocks=True, lstrip_blocks=True)
    return environment.get_template(name)


def figures_folder(path: str | Path) -> Path:
    """Where the figures of the page ``path`` go: ``report.html`` -> ``report-figures/``."""
    path = Path(path)
    return path.with_name(f"{path.stem}-figures")


def run_section(run_dir: str | Path, item_counts: dict[str, dict[str, int]] | None = None) -> ReportSection:
    """What every run's report holds: its stages (time, items) and the stage and task timelines."""
    run_dir = Path(run_dir)
    spans = stage_timeline(run_dir / "events.jsonl")
    counts = item_counts or {}
    rows = [(name, f"{end - start:.1f} s" + (", " + ", ".join(f"{n} {status}" for status, n in
                                                             sorted(counts[name].items())) if counts.get(name) else ""))
            for name, start, end in spans]
    figures = [("stages", "", "stage timeline")] if spans else []
    if (run_dir / "tasks.jsonl").exists():
        figures.append(("tasks", "", "task timeline per worker"))
    return ReportSection("Stages", rows, figures=figures, render=render_run_figure)


def render_run_figure(run_dir: str, spec: FigureSpec):
    """A figure of :func:`run_section` (None: nothing to draw)."""
    from sdpflow.report import plots  # matplotlib: only where figures are drawn

    kind = spec[0]
    if kind == "stages":
        spans = stage_timeline(Path(run_dir) / "events.jsonl")
        return plots.save(plots.timeline_figure(spans)) if spans else None
    if kind == "tasks":
        tasks = list(read_events(Path(run_dir) / "tasks.jsonl"))
        return plots.save(plots.tasks_figure(tasks[-20000:]), svg=True) if tasks else None
    raise ValueError(f"unknown report figure kind {kind!r}")


def _draw(run_dir: str, job: tuple[Render, FigureSpec]):
    """Draw one figure (on a worker or here): a :class:`~sdpflow.report.plots.Drawn` or None."""
    from sdpflow.report import plots

    render, spec = job
    drawn = render(run_dir, spec)
    if drawn is None or isinstance(drawn, plots.Drawn):
        return drawn
    if isinstance(drawn, bytes):
        return plots.Drawn(drawn)
    return plots.save(drawn)


def _call(function: Callable[[], Any]) -> Any:
    return function()


def _file_name(spec: FigureSpec) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(part for part in spec[:2] if part)).strip("-") or "figure"


def write_report(run_dir: str | Path, path: str | Path, sections: list[ReportSection], *, title: str,
                 map_function: Callable = map, header: list[tuple[str, str]] | None = None,
                 final_path: str | Path | None = None) -> None:
    """Write the HTML report of the run in ``run_dir`` with ``sections`` to ``path``.

    ``map_function(function, jobs)`` draws the figures; the default draws them here, one
    after the other. The figures are written to :func:`figures_folder` of ``path``; links to
    the run's files are made relative to the page, or to ``final_path`` where the page will be
    moved (a stage writes it into its staging folder). ``header``: (name, value) rows shown first
    (default: :func:`run_header`).
    """
    run_dir, path = Path(run_dir), Path(path)
    jobs = [(section.render, spec) for section in sections for spec in section.figures]
    # Deferred tables go to map_function first, beside the figures (on workers when it sends them
    # there: made on the client, they held the GIL its in-process scheduler needs and workers idled).
    made = iter(map_function(_call, [section.tables for section in sections if callable(section.tables)]))
    drawn = iter(map_function(partial(_draw, str(run_dir)), jobs))
    tables = [next(made) if callable(section.tables) else section.tables for section in sections]
    folder = figures_folder(path)
    folder.mkdir(exist_ok=True)
    to_run = os.path.relpath(run_dir, Path(final_path or path).parent)
    shown = []
    for section in sections:
        figures = []
        for spec in section.figures:
            figure = next(drawn)
            if figure is None:
                continue
            name = _file_name(spec)
            (folder / f"{name}.png").write_bytes(figure.png)
            if figure.svg is not None:
                (folder / f"{name}.svg").write_bytes(figure.svg)
            figures.append({"alt": spec[2], "png": f"{folder.name}/{name}.png", "name": name,
                            "thumbnail": f"{folder.name}/{name}.{'svg' if figure.svg is not None else 'png'}",
                            "kind": spec[0], "regions": figure.regions})
        links = [(label, Path(to_run, name).as_posix()) for label, name in section.links if (run_dir / name).exists()]
        shown.append({"section": section, "figures": figures, "links": links, "tables": tables[len(shown)]})
    page = template("report.html").render(
        title=title, header=run_header(run_dir) if header is None else header, sections=shown, written=datetime.now().isoformat(timespec="seconds"),
        run_dir=str(run_dir.resolve()))
    path.write_text(page, encoding="utf-8")


def run_header(run_dir: str | Path) -> list[tuple[str, str]]:
    """Run id, pipeline, start time and status of the run's last invocation (from ``events.jsonl``), and the
    sdpflow version writing the report."""
    from importlib.metadata import version

    rows: list[tuple[str, str]] = []
    events = Path(run_dir) / "events.jsonl"
    started = None
    ended = ""
    for record in read_events(events) if events.exists() else ():
        if record["event"] == "flow-started":
            started, ended = record, ""
        elif record["event"] in ("flow-completed", "flow-failed", "flow-interrupted"):
            ended = record["event"].removeprefix("flow-")
    if started is not None:
        rows += [("run id", str(started.get("run_id"))), ("pipeline", str(started.get("flow"))),
                 ("started", str(started.get("time", ""))[:19].replace("T", " ") + " UTC")]
        if ended:
            rows.append(("status", ended))
    return rows + [("sdpflow version", version("sdpflow"))]


def stage_timeline(events_path: Path) -> list[tuple[str, float, float]]:
    """(stage, start, end) in seconds from the first event, for the stages that completed last time.

    The time a stage waited for the cluster to start (from the flow's start to its
    ``cluster-opened`` event, when a stage was running then) is its own span, "starting cluster",
    and the stage's own span begins after it.
    """
    if not events_path.exists():
        return []
    starts: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    origin = None
    running = None
    for record in read_events(events_path):
        moment = datetime.fromisoformat(record["time"]).timestamp()
        event = record["event"]
        if event == "flow-started":
            origin, starts, spans, running = moment, {}, {}, None
        if origin is None:
            origin = moment
        if event == "stage-started":
            starts[record["stage"]] = moment - origin
            running = record["stage"]
        elif event == "cluster-opened" and running in starts:
            spans["starting cluster"] = (starts[running], moment - origin)
            starts[running] = moment - origin
        elif event == "stage-completed" and record["stage"] in starts:
            spans[record["stage"]] = (starts[record["stage"]], moment - origin)
            running = None
    return sorted(((name, start, end) for name, (start, end) in spans.items()), key=lambda span: span[1])
