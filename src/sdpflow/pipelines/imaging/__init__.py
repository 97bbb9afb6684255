"""The imaging pipelines as registry values: ``ical`` and ``continuum``.

A light module: the registry imports it to list and describe the pipelines, so the science
(:mod:`sdpflow.pipelines.imaging.flow`, casacore, ducc0) is imported only when a run builds its stages.
"""

from __future__ import annotations

from pathlib import Path

from sdpflow.config.imaging import ContinuumConfig, IcalConfig
from sdpflow.pipelines.registry import Pipeline, lazy_build

#: What the imaging pipelines' worker tasks import (gridding, deconvolution, MS reading, FITS).
IMAGING_TASKS = ("sdpflow.pipelines.imaging.chunks", "sdpflow.pipelines.imaging.products", "casacore.tables", "astropy.io.fits")


def imaging_summary(out_dir: Path) -> str:
    """The headline numbers of an imaging run from its ``summary.json`` ("" before the run wrote it)."""
    from sdpflow.pipelines.imaging.summary import SUMMARY_NAME, format_channel_beams, format_noise, read_summary
    from sdpflow.pipelines.imaging.summary import format_figure as _number

    if not (Path(out_dir) / SUMMARY_NAME).exists():
        return ""
    summary = read_summary(out_dir)
    beam, cycles = summary.restoring_beam, summary.major_cycles_run
    return (
        f"peak {_number(summary.peak_jy_per_beam, '.4g')} Jy/beam, noise {_number(summary.noise_jy_per_beam, '.3g')} "
        f"Jy/beam, dynamic range {_number(summary.dynamic_range, '.0f')}, "
        f"beam {beam.bmaj_arcsec:.1f}″×{beam.bmin_arcsec:.1f}″ "
        f"after {cycles} major cycle{'' if cycles == 1 else 's'} (the last stopped by {summary.stop_reason})\n"
        + (f"noise per Stokes parameter: {format_noise(summary)}\n" if len(summary.stokes_noise_jy_per_beam) > 1 else "")
        + (f"beam per channel: {format_channel_beams(summary)}\n" if len(summary.channel_beams) > 1 else "")
        + f"report: {Path(out_dir).resolve() / 'report.html'}"
    )


def lazy_read_summary(run_dir: Path):
    """The typed ``summary.json`` of an imaging run (:class:`~sdpflow.pipelines.imaging.summary.ImagingSummary`)."""
    from sdpflow.pipelines.imaging.summary import read_summary

    return read_summary(run_dir)


def lazy_section(run_dir: Path):
    """The imaging section of a run's report (imported only when a report is drawn)."""
    from sdpflow.pipelines.imaging.report import imaging_section

    return imaging_section(run_dir)


ICAL = Pipeline(
    "ical", IcalConfig, lazy_build("sdpflow.pipelines.imaging.flow", "build_ical"), IMAGING_TASKS,
    summary=imaging_summary, report_section=lazy_section, read_summary=lazy_read_summary,
    description="ICAL: imaging with self-calibration between major cycles (options named as in WSClean).",
)

CONTINUUM = Pipeline(
    "continuum", ContinuumConfig, lazy_build("sdpflow.pipelines.imaging.flow", "build_continuum"), IMAGING_TASKS,
    summary=imaging_summary, report_section=lazy_section, read_summary=lazy_read_summary,
    description="Continuum imaging: Cotton-Schwab major/minor cycles, no self-calibration.",
)

