"""The imaging pipelines' section of the report: headline figures, major cycles, images and gains."""

from __future__ import annotations

import html
from pathlib import Path

from sdpflow.pipelines.imaging.summary import format_figure as _figure
from sdpflow.pipelines.imaging.summary import format_channel_beams, format_noise, read_summary
from sdpflow.report.html import FigureSpec, ReportSection

_IMAGES = (("restored.fits", "restored", "image"), ("residual.fits", "residual", "symmetric"),
           ("psf.fits", "PSF", "symmetric"))


def imaging_section(run_dir: str | Path) -> ReportSection:
    """The section of an imaging run, from its summary and files."""
    from sdpflow.radio import hdf5

    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    beam, image = summary.restoring_beam, summary.image
    rows = [
        ("pipeline", summary.pipeline), ("MeasurementSet", summary.ms),
        ("image", f"{image.size[0]} × {image.size[1]} pixels of {image.cell_arcsec:.2f} arcsec"),
        ("restoring beam", f"{beam.bmaj_arcsec:.1f}″ × {beam.bmin_arcsec:.1f}″, PA {beam.bpa_deg:.1f}°"),
        ("peak", f"{_figure(summary.peak_jy_per_beam, '.4g')} Jy/beam"),
        ("noise (MAD)", f"{_figure(summary.noise_jy_per_beam, '.3g')} Jy/beam"),
        ("dynamic range", _figure(summary.dynamic_range, ".0f")),
        *([("noise per Stokes parameter (MAD)", format_noise(summary))] if len(summary.stokes_noise_jy_per_beam) > 1 else []),
        *([("restoring beam per channel", format_channel_beams(summary))] if len(summary.channel_beams) > 1 else []),
        ("major cycles", f"{summary.major_cycles_run} run of {len(summary.cycles)} allowed "
                         f"(the last stopped by {summary.stop_reason})"),
        ("chunks", str(summary.chunks)),
        ("samples flagged as non-finite", str(summary.non_finite_flagged)),
    ]
    cycles = "".join(
        f"<tr><td>{c.cycle}</td><td>{_figure(c.peak_residual_jy, '.4g')}</td><td>{_figure(c.rms_residual_jy, '.3g')}</td>"
        f"<td>{c.components}</td><td>{html.escape(str(c.stop_reason))}</td>"
        f"<td>{html.escape(', '.join(c.calibrated_terms) or '-')}</td></tr>"
        for c in summary.cycles
    )
    cycles_table = ("<h3>Major cycles</h3><table><tr><th>cycle</th><th>peak residual (Jy/beam)</th><th>RMS (Jy/beam)</th>"
                    f"<th>components</th><th>stopped by</th><th>gains solved</th></tr>{cycles}</table>")
    figures: list[FigureSpec] = [(kind, name, title) for name, title, kind in _IMAGES if (run_dir / name).exists()]
    figures.append(("cycles", "", "residual per major cycle"))
    if (run_dir / "gains.h5").exists():
        figures += [("gains", term, f"{term} gains") for term in hdf5.read_gaintables_hdf5(run_dir / "gains.h5")]
    return ReportSection(f"{summary.pipeline} imaging", rows, cycles_table, figures, render_imaging_figure)


def render_imaging_figure(run_dir: str, spec: FigureSpec) -> bytes | None:
    """One figure of :func:`imaging_section` as PNG bytes, read from the run's files."""
    from sdpflow.radio import fits, hdf5
    from sdpflow.report import plots  # matplotlib: only where figures are drawn

    run_dir_path = Path(run_dir)
    kind, argument, title = spec
    if kind in ("image", "symmetric"):
        data = fits.read_fits_image(run_dir_path / argument).data[0, 0]
        cell = read_summary(run_dir_path).image.cell_arcsec
        return plots.image_png(data, title, cell, symmetric=kind == "symmetric")
    if kind == "cycles":
        return plots.cycles_png([cycle.model_dump() for cycle in read_summary(run_dir_path).cycles])
    if kind == "gains":
        table = hdf5.read_gaintables_hdf5(run_dir_path / "gains.h5")[argument]
        return plots.gains_png(argument, table.time, table.gain[:, :, 0, 0])
    raise ValueError(f"unknown imaging figure kind {kind!r}")

