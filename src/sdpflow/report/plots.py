"""Figures for the run report (matplotlib, no display needed).

A figure is saved by :func:`save`: a PNG at full resolution (the file a click opens)
and, for sky images, an SVG thumbnail whose text stays text (axis labels) and whose beam is an
element of its own, so a page can be checked for what it shows.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams["svg.fonttype"] = "none"  # SVG text as <text>, searchable and selectable

#: Resolution of the full-size PNGs unless a figure asks for more (``dpi_for_full_resolution``).
PNG_DPI = 110


@dataclass(frozen=True)
class Drawn:
    """A drawn figure: full-resolution PNG bytes, an SVG thumbnail where asked for, and named regions
    of the PNG [(label, (x0, y0, x1, y1) pixels from the top left)] for an image map."""

    png: bytes
    svg: bytes | None = None
    regions: tuple[tuple[str, tuple[int, int, int, int]], ...] = ()


def save(figure, *, svg: bool = False, tight: bool = True) -> Drawn:
    """The figure as a full-resolution PNG (and an SVG thumbnail with ``svg``); the figure is closed.

    A figure may carry ``dpi_for_full_resolution`` (its PNG's dpi) and ``regions`` ((label,
    (x0, y0, x1, y1)) as fractions of the figure from the top left; drawn without ``tight``
    so that they stay where the layout put them).
    """
    dpi = getattr(figure, "dpi_for_full_resolution", PNG_DPI)
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    thumbnail = None
    if svg:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="svg", dpi=72, bbox_inches="tight" if tight else None)
        thumbnail = buffer.getvalue()
    width, height = figure.get_size_inches() * dpi
    regions = tuple((label, (round(x0 * width), round(y0 * height), round(x1 * width), round(y1 * height)))
                    for label, (x0, y0, x1, y1) in getattr(figure, "regions", ()))
    plt.close(figure)
    return Drawn(png.getvalue(), thumbnail, regions)


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def distinct_colours(count: int) -> list:
    """``count`` colours that stay apart: tab10, then tab20's lighter halves, tab20b and tab20c (60), then hsv."""
    palette = [*plt.cm.tab20.colors[0::2], *plt.cm.tab20.colors[1::2], *plt.cm.tab20b.colors, *plt.cm.tab20c.colors]
    if count <= len(palette):
        return list(palette[:count])
    return [plt.cm.hsv(index / count) for index in range(count)]


def cycles_figure(cycles: list[dict[str, Any]]):
    """Peak and RMS of the residual at each major cycle (log scale); skipped cycles marked as skipped."""
    figure, axes = plt.subplots(figsize=(5.2, 3.4))
    run = [c for c in cycles if not c.get("skipped")]
    numbers = [c["cycle"] for c in run]
    axes.semilogy(numbers, [c["peak_residual_jy"] for c in run], "o-", label="peak residual")
    axes.semilogy(numbers, [c["rms_residual_jy"] for c in run], "s-", label="RMS residual")
    skipped = [c["cycle"] for c in cycles if c.get("skipped")]
    if skipped:
        axes.axvspan(min(skipped) - 0.5, max(skipped) + 0.5, color="lightgrey", alpha=0.5,
                     label=f"skipped ({cycles[-1].get('skipped') or 'converged'})")
    axes.set_xlim(0.5, max(c["cycle"] for c in cycles) + 0.5)
    axes.set_xlabel("major cycle")
    axes.set_ylabel("Jy/beam")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return figure


def timeline_figure(stages: list[tuple[str, float, float]]):
    """A Gantt chart of stages: (name, start s, end s) from the run's start."""
    figure, axes = plt.subplots(figsize=(6.0, 0.35 * len(stages) + 1.0))
    colours = distinct_colours(len(stages))
    for row, (name, start, end) in enumerate(stages):
        axes.barh(row, end - start, left=start, color="lightgrey" if name == "starting cluster" else colours[row])
    axes.set_yticks(range(len(stages)), [name for name, _, _ in stages])
    axes.invert_yaxis()
    axes.set_xlabel("seconds from start")
    axes.grid(axis="x", alpha=0.3)
    return figure


def tasks_figure(tasks: list[dict[str, Any]]):
    """A Gantt chart of Dask tasks per worker, coloured by what they run (readable names)."""
    workers = sorted({task["worker"] for task in tasks})
    kinds = sorted({task_name(task["key"]) for task in tasks})
    colours = dict(zip(kinds, distinct_colours(len(kinds))))
    origin = min(task["start"] for task in tasks)
    figure, axes = plt.subplots(figsize=(8.0, 0.5 * len(workers) + 1.8 + 0.22 * ((len(kinds) + 2) // 3)))
    spans: dict[tuple[int, Any], list[tuple[float, float]]] = {}  # one collection per (worker, colour)
    for task in tasks:
        colour = colours[task_name(task["key"])] if task["action"] == "compute" else "lightgrey"
        spans.setdefault((workers.index(task["worker"]), colour), []).append(
            (task["start"] - origin, task["stop"] - task["start"]))
    for (row, colour), bars in spans.items():
        axes.broken_barh(bars, (row - 0.4, 0.8), facecolors=colour)
    axes.set_yticks(range(len(workers)), workers)
    axes.set_xlabel("seconds from the first task")
    axes.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=colours[k]) for k in kinds], labels=kinds,
                fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3)
    return figure


#: Readable names of the Dask functions whose own names say little.
READABLE_TASKS = {
    "operator.itemgetter(0)": "first part of a result",
    "operator.itemgetter(1)": "second part of a result",
    "add": "sum of partial images",
    "_draw": "report figure",
    "chunk": "weigh_chunk",
}


def task_name(key: str) -> str:
    """The function a Dask key runs, readable: ``major_cycle-3f2a...`` -> ``major_cycle``,
    ``read-chunk-0003-7ff4...`` -> ``read-chunk``, ``operator.itemgetter(0)-...`` -> ``first part of a result``."""
    name = key.strip("()'\" ").split(",")[0].strip("'\" ")
    words = [part for part in name.split("-")
             if not (re.fullmatch(r"[0-9a-f]+", part) and re.search(r"[0-9]", part)) and part.strip()]
    while words and re.fullmatch(r"[0-9a-f]{4,}", words[-1]):  # the rest of a uuid
        words.pop()
    name = "-".join(words) or name
    return READABLE_TASKS.get(name, name)
