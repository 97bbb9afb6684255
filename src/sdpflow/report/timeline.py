"""Gantt charts of task pools from their JSON-lines event logs: a PNG and a standalone HTML.

One row per worker thread: tasks of a worker are packed into the fewest rows in which they
do not overlap. Bars are coloured by outcome; times are seconds from the first start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sdpflow.engine.events import read_events
from sdpflow.errors import InputError

#: Colours of outcomes.
COLOURS = {"finished": "#4c9a2a", "failed": "#c0392b", "timed-out": "#e67e22", "cancelled": "#7f8c8d"}
#: Most bars drawn in the HTML (the PNG draws all).
HTML_MAX_BARS = 5000


@dataclass(frozen=True)
class Bar:
    """One task attempt that ended: seconds since the epoch, where it ran, how it ended."""

    task: str
    start: float
    end: float
    worker: str
    status: str


def load_bars(path: str | Path) -> list[Bar]:
    """The ended tasks of an event log, in start order."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"event log {path} does not exist: give the events.jsonl of a pool")
    try:
        bars = [
            Bar(str(record.get("task")), float(record["start"]), float(record["end"]), str(record.get("worker")),
                record["event"])
            for record in read_events(path)
            if isinstance(record, dict) and record.get("event") in COLOURS
            and record.get("start") is not None and record.get("end") is not None
        ]
    except UnicodeDecodeError:
        raise InputError(f"event log {path} is not text: give the events.jsonl of a pool") from None
    except (TypeError, ValueError) as error:
        raise InputError(f"event log {path} has a task record whose start or end is not a time ({error}): "
                         "give the events.jsonl of a pool") from None
    if not bars:
        raise InputError(f"event log {path} holds no finished tasks")
    return sorted(bars, key=lambda bar: bar.start)


def assign_rows(bars: list[Bar]) -> tuple[list[int], list[str]]:
    """A row for each bar and the label of each row (``worker #lane``)."""
    lanes: dict[str, list[float]] = {}  # worker -> end time of each of its lanes
    placed: list[tuple[str, int]] = []
    for bar in bars:
        ends = lanes.setdefault(bar.worker, [])
        for lane, end in enumerate(ends):
            if end <= bar.start + 1e-9:
                ends[lane] = bar.end
                break
        else:
            ends.append(bar.end)
            lane = len(ends) - 1
        placed.append((bar.worker, lane))
    labels = [f"{worker} #{lane}" for worker in sorted(lanes) for lane in range(len(lanes[worker]))]
    index = {label: row for row, label in enumerate(labels)}
    return [index[f"{worker} #{lane}"] for worker, lane in placed], labels


def draw_timeline(events: str | Path, out: str | Path) -> tuple[Path, Path]:
    """Write ``out.png`` and ``out.html`` (``out`` without suffix); returns both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    bars = load_bars(events)
    rows, labels = assign_rows(bars)
    origin = min(bar.start for bar in bars)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png, page = out.with_suffix(".png"), out.with_suffix(".html")

    figure, axes = plt.subplots(figsize=(12, max(2.5, 0.3 * len(labels) + 1.5)))
    for status, colour in COLOURS.items():
        by_row: dict[int, list[tuple[float, float]]] = {}
        for bar, row in zip(bars, rows):
            if bar.status == status:
                by_row.setdefault(row, []).append((bar.start - origin, max(bar.end - bar.start, 1e-4)))
        for row, spans in by_row.items():
            axes.broken_barh(spans, (row - 0.4, 0.8), facecolors=colour)
    axes.set_yticks(range(len(labels)), labels, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("time since first start (s)")
    axes.set_title(f"{len(bars)} tasks on {len(labels)} worker threads")
    axes.legend(handles=[Patch(color=c, label=s) for s, c in COLOURS.items()], loc="upper right", fontsize=7)
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)

    page.write_text(_html(bars, rows, labels, origin), encoding="utf-8")
    return png, page


def _html(bars: list[Bar], rows: list[int], labels: list[str], origin: float) -> str:
    from sdpflow.report.html import template

    span = max(bar.end for bar in bars) - origin or 1.0
    width, row_h, left = 1000, 18, 220
    scale = width / span
    shown = [{"x": left + (bar.start - origin) * scale, "y": row * row_h + 2,
              "w": max((bar.end - bar.start) * scale, 0.5), "colour": COLOURS[bar.status],
              "tip": f"{bar.task}: {bar.status}, {bar.end - bar.start:.3f} s from {bar.start - origin:.3f} s on {bar.worker}"}
             for bar, row in list(zip(bars, rows))[:HTML_MAX_BARS]]
    counts = {status: sum(1 for bar in bars if bar.status == status) for status in COLOURS}
    return template("taskpool_timeline.html").render(
        n_bars=len(bars), summary=", ".join(f"{count} {status}" for status, count in counts.items() if count),
        span=span, shown=shown, labels=labels, width=width, row_h=row_h, left=left,
        height=row_h * len(labels) + 30)
