"""The imaging pipelines as registry values: ``ical`` and ``continuum``.

A light module: the registry imports it to list and describe the pipelines, so the science
(:mod:`sdpflow.pipelines.imaging.flow`, casacore, ducc0) is imported only when a run builds its stages.
"""

from __future__ import annotations

import json
from pathlib import Path

from sdpflow.config.imaging import ContinuumConfig, IcalConfig
from sdpflow.pipelines.registry import Pipeline, lazy_build

#: What the imaging pipelines' worker tasks import (gridding, deconvolution, MS reading, FITS).
IMAGING_TASKS = ("sdpflow.pipelines.imaging.chunks", "sdpflow.pipelines.imaging.products", "casacore.tables", "astropy.io.fits")


def imaging_summary(out_dir: Path) -> str:
    """The headline numbers of an imaging run from its ``summary.json`` ("" before the run wrote it)."""
    path = Path(out_dir) / "summary.json"
    if not path.exists():
        return ""
    summary = json.loads(path.read_text())
    beam = summary["restoring_beam"]
    cycles = summary["major_cycles_run"]
    return (
        f"peak {summary['peak_jy_per_beam']:.4g} Jy/beam, noise {summary['noise_jy_per_beam']:.3g} Jy/beam, "
        f"dynamic range {_number(summary['dynamic_range'], '.0f')}, beam {beam['bmaj_arcsec']:.1f}″×{beam['bmin_arcsec']:.1f}″ "
        f"after {cycles} major cycle{'' if cycles == 1 else 's'} (the last stopped by {summary['stop_reason']})\n"
        f"report: {path.parent.resolve() / 'report.html'}"
    )


ICAL = Pipeline(
    "ical", IcalConfig, lazy_build("sdpflow.pipelines.imaging.flow", "build_ical"), IMAGING_TASKS,
    summary=imaging_summary,
    description="ICAL: imaging with self-calibration between major cycles (options named as in WSClean).",
)

CONTINUUM = Pipeline(
    "continuum", ContinuumConfig, lazy_build("sdpflow.pipelines.imaging.flow", "build_continuum"), IMAGING_TASKS,
    summary=imaging_summary,
    description="Continuum imaging: Cotton-Schwab major/minor cycles, no self-calibration.",
)


def _number(value: float | None, spec: str) -> str:
    """A summary figure, or "n/a" where summary.json holds null (a non-finite value)."""
    return "n/a" if value is None else format(value, spec)
