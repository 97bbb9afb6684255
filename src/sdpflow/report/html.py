"""``report.html``: one self-contained page per imaging run (images, cycles, gains, timeline)."""

from __future__ import annotations

import base64
import html
import json
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Callable

from sdpflow.engine.events import read_events


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


#: A figure of the report: (kind, argument, alt text); :func:`render_figure` draws it from the run's files.
FigureSpec = tuple[str, str, str]

_IMAGES = (("restored.fits", "restored", "image"), ("residual.fits", "residual", "symmetric"),
           ("psf.fits", "PSF", "symmetric"))


def figure_specs(run_dir: Path) -> list[FigureSpec]:
    """The figures the report of ``run_dir`` holds, in page order (only those whose files exist)."""
    from sdpflow.radio import hdf5

    run_dir = Path(run_dir)
    specs: list[FigureSpec] = [(kind, name, title) for name, title, kind in _IMAGES if (run_dir / name).exists()]
    specs.append(("cycles", "", "residual per major cycle"))
    if (run_dir / "gains.h5").exists():
        specs += [("gains", term, f"{term} gains") for term in hdf5.read_gaintables_hdf5(run_dir / "gains.h5")]
    specs.append(("stages", "", "stage timeline"))
    specs.append(("tasks", "", "task timeline per worker"))
    return specs


def render_figure(run_dir: str | Path, spec: FigureSpec) -> bytes | None:
    """One figure of the report as PNG bytes, read from the run's files (None: nothing to draw)."""
    from sdpflow.radio import fits, hdf5
    from sdpflow.report import plots  # matplotlib: only where figures are drawn

    run_dir = Path(run_dir)
    kind, argument, title = spec
    if kind in ("image", "symmetric"):
        data = fits.read_fits_image(run_dir / argument).data[0, 0]
        cell = json.loads((run_dir / "summary.json").read_text())["image"]["cell_arcsec"]
        return plots.image_png(data, title, cell, symmetric=kind == "symmetric")
    if kind == "cycles":
        return plots.cycles_png(json.loads((run_dir / "summary.json").read_text())["cycles"])
    if kind == "gains":
        table = hdf5.read_gaintables_hdf5(run_dir / "gains.h5")[argument]
        return plots.gains_png(argument, table.time, table.gain[:, :, 0, 0])
    if kind == "stages":
        timeline = _stage_timeline(run_dir / "events.jsonl")
        return plots.timeline_png(timeline) if timeline else None
    if kind == "tasks":
        tasks = list(read_events(run_dir / "tasks.jsonl")) if (run_dir / "tasks.jsonl").exists() else []
        return plots.tasks_png(tasks[-20000:]) if tasks else None
    raise ValueError(f"unknown report figure kind {kind!r}")


def write_report(run_dir: Path, path: Path, *, map_function: Callable = map) -> None:
    """Write the HTML report of the imaging run in ``run_dir`` to ``path``.

    ``map_function(function, specs)`` draws the figures; the default draws them here, one
    after the other, and a pipeline may pass one that draws them on its workers in parallel.
    """
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    cell = summary["image"]["cell_arcsec"]
    specs = figure_specs(run_dir)
    pngs = list(map_function(partial(render_figure, str(run_dir)), specs))
    figures = [_img(png, spec[2]) for spec, png in zip(specs, pngs) if png is not None]
    beam = summary["restoring_beam"]
    rows = [
        ("pipeline", summary["pipeline"]), ("MeasurementSet", summary["ms"]),
        ("image", f"{summary['image']['size'][0]} × {summary['image']['size'][1]} pixels of {cell:.2f} arcsec"),
        ("restoring beam", f"{beam['bmaj_arcsec']:.1f}″ × {beam['bmin_arcsec']:.1f}″, PA {beam['bpa_deg']:.1f}°"),
        ("peak", f"{summary['peak_jy_per_beam']:.4g} Jy/beam"),
        ("noise (MAD)", f"{summary['noise_jy_per_beam']:.3g} Jy/beam"),
        ("dynamic range", f"{summary['dynamic_range']:.0f}"),
        ("major cycles", f"{summary['major_cycles_run']} run of {len(summary['cycles'])} allowed "
                         f"(the last stopped by {summary['stop_reason']})"),
        ("chunks", str(summary["chunks"])),
    ]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    cycles = "".join(
        f"<tr><td>{c['cycle']}</td><td>{c['peak_residual_jy']:.4g}</td><td>{c['rms_residual_jy']:.3g}</td>"
        f"<td>{c['components']}</td><td>{html.escape(c['stop_reason'])}</td>"
        f"<td>{html.escape(', '.join(c.get('calibrated_terms', [])) or '-')}</td></tr>"
        for c in summary["cycles"]
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>sdpflow {html.escape(summary['pipeline'])} report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse;margin:1em 0}}
th,td{{border:1px solid #ccc;padding:4px 8px;text-align:left}} img{{margin:6px;border:1px solid #eee}}</style></head>
<body><h1>sdpflow {html.escape(summary['pipeline'])} run</h1>
<p>written {datetime.now().isoformat(timespec='seconds')} from {html.escape(str(run_dir.resolve()))}</p>
<table>{table}</table>
<h2>Major cycles</h2>
<table><tr><th>cycle</th><th>peak residual (Jy/beam)</th><th>RMS (Jy/beam)</th><th>components</th><th>stopped by</th>
<th>gains solved</th></tr>{cycles}</table>
<h2>Figures</h2>{''.join(figures)}
</body></html>"""
    Path(path).write_text(page, encoding="utf-8")


def _stage_timeline(events_path: Path) -> list[tuple[str, float, float]]:
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
