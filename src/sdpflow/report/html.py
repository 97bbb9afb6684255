"""``report.html``: one self-contained page per imaging run (images, cycles, gains, timeline)."""

from __future__ import annotations

import base64
import html
import json
from datetime import datetime
from pathlib import Path

from sdpflow.engine.events import read_events
from sdpflow.report import plots


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def write_report(run_dir: Path, path: Path) -> None:
    """Write the HTML report of the imaging run in ``run_dir`` to ``path``."""
    from sdpflow.radio import fits, hdf5

    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    cell = summary["image"]["cell_arcsec"]
    figures = []
    for name, title, symmetric in (("restored.fits", "restored", False), ("residual.fits", "residual", True),
                                   ("psf.fits", "PSF", True)):
        if (run_dir / name).exists():
            data = fits.read_fits_image(run_dir / name).data[0, 0]
            figures.append(_img(plots.image_png(data, title, cell, symmetric=symmetric), title))
    figures.append(_img(plots.cycles_png(summary["cycles"]), "residual per major cycle"))
    if (run_dir / "gains.h5").exists():
        for term, table in hdf5.read_gaintables_hdf5(run_dir / "gains.h5").items():
            figures.append(_img(plots.gains_png(term, table.time, table.gain[:, :, 0, 0]), f"{term} gains"))
    timeline = _stage_timeline(run_dir / "events.jsonl")
    if timeline:
        figures.append(_img(plots.timeline_png(timeline), "stage timeline"))
    if (run_dir / "tasks.jsonl").exists():
        tasks = list(read_events(run_dir / "tasks.jsonl"))
        if tasks:
            figures.append(_img(plots.tasks_png(tasks[-20000:]), "task timeline per worker"))
    beam = summary["restoring_beam"]
    rows = [
        ("pipeline", summary["pipeline"]), ("MeasurementSet", summary["ms"]),
        ("image", f"{summary['image']['size'][0]} × {summary['image']['size'][1]} pixels of {cell:.2f} arcsec"),
        ("restoring beam", f"{beam['bmaj_arcsec']:.1f}″ × {beam['bmin_arcsec']:.1f}″, PA {beam['bpa_deg']:.1f}°"),
        ("peak", f"{summary['peak_jy_per_beam']:.4g} Jy/beam"),
        ("noise (MAD)", f"{summary['noise_jy_per_beam']:.3g} Jy/beam"),
        ("dynamic range", f"{summary['dynamic_range']:.0f}"),
        ("major cycles", str(len(summary["cycles"]))), ("chunks", str(summary["chunks"])),
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
