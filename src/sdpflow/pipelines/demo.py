"""``sdpflow demo``: simulate a LOW-like observation with phase errors, run ICAL, judge it against the truth."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from sdpflow.config.imaging import CalibrationConfig, DeconvolutionConfig, IcalConfig, ImagingConfig, PartitionConfig
from sdpflow.config.simulate import SimulateConfig
from sdpflow.engine.flow import Observer
from sdpflow.pipelines.imaging import products
from sdpflow.pipelines.imaging.summary import ImagingSummary, read_summary
from sdpflow.errors import InputError
from sdpflow.pipelines.runner import start_run
from sdpflow.pipelines.simulate import MS_NAME, SimulationProducts, simulate_observation
from sdpflow.radio import fits, hdf5, quality
from sdpflow.radio.sky import read_sky_csv
from sdpflow.store import RunStore


@dataclass
class Assessment:
    """How an imaging run compares with the simulation's truth."""

    phase_error_before_deg: float | None
    phase_error_after_deg: float | None
    sources_above_10_sigma: int
    median_flux_ratio: float
    worst_flux_error: float
    worst_flux_error_above_100_sigma: float
    # max over sources above 10σ of (|measured - true| - 5% of true) / noise: how far the worst
    # source lies outside 5%, in units of the noise (a 10σ source has a 10% error from noise alone)
    worst_flux_excess_sigma: float
    worst_offset_pixels: float
    dynamic_range: float
    noise_jy_per_beam: float


def demo_config(products: SimulationProducts, simulation: SimulateConfig) -> IcalConfig:
    """ICAL settings matched to the simulated observation's suggested image."""
    npix = simulation.image_npix
    return IcalConfig(
        ms=str(products.ms),
        imaging=ImagingConfig(size=(npix, npix), scale=f"{simulation.image_cell_arcsec}asec", weight="briggs 0"),
        # ICAL's auto-mask (5 sigma) everywhere, then down to 1 sigma within the components found, as
        # WSClean's -auto-mask 5 -auto-threshold 1, and minor cycles that clean 90% of the peak: with
        # WSClean's weights and beam, mgain 0.8 gave dynamic range 8977 and a phase error of 2.83 deg,
        # 0.9 gives 9237 and 2.46 deg (the model deeper in each cycle calibrates better)
        deconvolution=DeconvolutionConfig(niter=20000, gain=0.1, mgain=0.9, auto_threshold=1.0, nmajor=8),
        calibration=CalibrationConfig(),
        partition=PartitionConfig(time_chunks=4),
    )


def simulate_demo(out_dir: str | Path, *, preset: str = "demo", on_step: Callable[[str, float], None] | None = None,
                  overwrite: bool = False) -> tuple[SimulationProducts, SimulateConfig]:
    """Simulate the demo observation into ``out_dir/obs.ms`` (truth files beside it).

    ``overwrite``: accept an ``out_dir`` holding files sdpflow did not write (none of them is replaced)."""
    ical = Path(out_dir) / "ical"
    if ical.exists() and not ical.is_dir():  # refused before the simulation is written, not after
        raise InputError(f"{ical} is a file, not the ICAL run's folder: move it or choose another --out")
    simulation = SimulateConfig(preset=preset)
    return simulate_observation(simulation, Path(out_dir) / MS_NAME, progress=on_step, overwrite=overwrite), simulation


def run_demo_ical(
    products: SimulationProducts, simulation: SimulateConfig, out_dir: str | Path, *, store: RunStore,
    cluster_spec: str | None = None, observers: Iterable[Observer] = (), overwrite: bool = False,
) -> tuple[str, Path, Assessment]:
    """Run ICAL on the simulated observation into ``out_dir/ical`` and judge it against the truth."""
    result = start_run("ical", demo_config(products, simulation), Path(out_dir) / "ical", store=store,
                       cluster_spec=cluster_spec, observers=observers, overwrite=overwrite)
    assessment = assess(result.out_dir, products.truth_sky, products.true_gains)
    (result.out_dir / "assessment.json").write_text(json.dumps(asdict(assessment), indent=2))
    return result.run_id, result.out_dir, assessment


def measure_truth(run_dir: Path, truth_sky: Path, summary: ImagingSummary) -> tuple[list[quality.SourceMeasurement], float]:
    """The isolated truth sources above 10 σ as measured in ``restored.fits``, and the noise σ (Jy/beam).

    summary: the run's summary (noise and restoring beam).
    """
    image = fits.read_fits_image(run_dir / "restored.fits")
    noise = summary.noise_jy_per_beam
    sky = read_sky_csv(truth_sky)
    flux = sky.flux_at([float(np.mean(image.frequency))])[:, 0]
    ra_deg, dec_deg = np.degrees(sky.ra), np.degrees(sky.dec)
    x, y = image.wcs.celestial.world_to_pixel_values(ra_deg, dec_deg)
    beam = summary.restoring_beam.model_dump()
    beam_pixels = beam["bmaj_arcsec"] / (np.degrees(image.cell_rad) * 3600)
    bright = (flux > 10 * noise) & quality.isolated_sources(x, y, flux, beam_pixels)
    found = quality.measure_sources(image.data[0, 0], np.stack([x, y], axis=1)[bright], flux[bright], noise,
                                    ra_deg=ra_deg[bright], dec_deg=dec_deg[bright], beam=products.beam_rad(beam),
                                    cell_rad=image.cell_rad)
    return found, noise


def assess(run_dir: Path, truth_sky: Path, true_gains: Path | None) -> Assessment:
    """Flux and position recovery of the truth sources, and gain phase errors before and after."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    found, noise = measure_truth(run_dir, truth_sky, summary)
    return judge(run_dir, found, noise, summary, true_gains)


def judge(run_dir: Path, found: list[quality.SourceMeasurement], noise: float, summary: ImagingSummary,
          true_gains: Path | None) -> Assessment:
    """The :class:`Assessment` of truth sources ``found`` by :func:`measure_truth` (and of the gains)."""
    ratios = np.array([source.flux_ratio for source in found]) if found else np.array([np.nan])
    before = after = None
    if true_gains is not None and (run_dir / "gains.h5").exists():
        truth = hdf5.read_gaintable_hdf5(true_gains)
        solved = hdf5.read_gaintable_hdf5(run_dir / "gains.h5")
        before = quality.phase_error_deg(None, truth)
        after = quality.phase_error_deg(solved, truth)
    return Assessment(
        phase_error_before_deg=before, phase_error_after_deg=after, sources_above_10_sigma=len(found),
        median_flux_ratio=float(np.median(ratios)), worst_flux_error=float(np.max(np.abs(ratios - 1))),
        worst_flux_error_above_100_sigma=float(max((abs(s.flux_ratio - 1) for s in found if s.snr > 100), default=np.nan)),
        worst_flux_excess_sigma=float(max((quality.flux_excess_sigma(s, noise) for s in found), default=np.nan)),
        worst_offset_pixels=float(max((s.offset_pixels for s in found), default=np.nan)),
        dynamic_range=float(summary.dynamic_range or np.nan), noise_jy_per_beam=float(noise),
    )
