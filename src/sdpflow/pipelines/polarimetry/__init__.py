"""The polarimetry pipeline as a registry value: ``polarimetry`` (Arrakis-like: Stokes I catalogue and
I/Q/U cubes → cutouts → spectra → RM synthesis and RM-CLEAN → an RMTable catalogue).

A light module: the registry imports it to list and describe the pipeline; the science
(:mod:`sdpflow.pipelines.polarimetry.flow`, astropy, numba) is imported when a run builds its stages.
``POLARIMETRY_INIT`` (not registered: ``sdpflow polarimetry init`` names it) runs only the stages
that load the catalogue's islands and components into the run database.
"""

from __future__ import annotations

import json
from pathlib import Path

from sdpflow.config.polarimetry import PolarimetryConfig
from sdpflow.pipelines.registry import Pipeline, lazy_build

#: What the polarimetry pipeline's worker tasks import.
POLARIMETRY_TASKS = ("sdpflow.pipelines.polarimetry.tasks", "sdpflow.polarimetry.rmtable", "astropy.io.fits",
                     "astropy.wcs")


def polarimetry_summary(out_dir: Path) -> str:
    """Components measured, polarised ones, failed islands and RM recovery, from ``summary.json``."""
    path = Path(out_dir) / "summary.json"
    if not path.exists():
        return ""
    summary = json.loads(path.read_text())
    text = (f"{summary['components_measured']} of {summary['components']} components measured "
            f"({summary['islands_failed']} of {summary['islands']} islands failed); "
            f"{summary['polarised_above_snr_threshold']} with polarised S/N ≥ {summary['snr_threshold']:g}")
    truth = summary.get("truth")
    if truth and truth.get("compared"):
        text += (f"\nRM against the truth ({truth['compared']} components with S/N > 10): "
                 f"{100 * truth['within_3_sigma']:.1f}% within 3 rm_err, median |ΔRM| "
                 f"{truth['median_abs_delta_rm_radm2']:.3f} rad/m² = {truth['median_abs_delta_rm_fwhm']:.4f} FWHM")
    folder = Path(out_dir).resolve()
    return f"{text}\ncatalogue: {folder / 'catalogue.fits'} (and catalogue.vot); report: {folder / 'report.html'}"


def lazy_section(run_dir: Path):
    """The polarimetry section of a run's report (imported only when a report is drawn)."""
    from sdpflow.pipelines.polarimetry.report import polarimetry_section

    return polarimetry_section(run_dir)


POLARIMETRY = Pipeline(
    "polarimetry", PolarimetryConfig, lazy_build("sdpflow.pipelines.polarimetry.flow", "build"), POLARIMETRY_TASKS,
    summary=polarimetry_summary, report_section=lazy_section,
    description="Polarimetry (Arrakis-like): catalogue → cutouts → spectra → RM synthesis and RM-CLEAN → RMTable.",
)

POLARIMETRY_INIT = Pipeline(
    "polarimetry", PolarimetryConfig, lazy_build("sdpflow.pipelines.polarimetry.flow", "build_init"),
    POLARIMETRY_TASKS, description="Load a Stokes I catalogue's islands and components into the run database.",
)
