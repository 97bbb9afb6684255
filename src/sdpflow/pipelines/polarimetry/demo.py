"""``sdpflow demo polarimetry``: simulate a polarised field, image its I, Q, U cubes, run the polarimetry
pipeline with the simulation's truth catalogue as the Stokes I catalogue, and compare RMs with the truth.

The ``pol`` simulation preset (288 × 1 MHz channels from 800 MHz, 14 sources with p 5-30% and
|RM| ≤ 20 rad/m²) imaged by ``run continuum --pol IQU --channels-out 16`` (256² pixels of 12″),
then ``run polarimetry --rmsynth3d`` on the cubes; each is an ordinary run in the run database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from sdpflow.config.imaging import ContinuumConfig, DeconvolutionConfig, ImagingConfig
from sdpflow.config.polarimetry import CatalogueColumns, PolarimetryConfig
from sdpflow.config.simulate import SimulateConfig
from sdpflow.engine.flow import Observer
from sdpflow.pipelines.runner import start_run
from sdpflow.pipelines.simulate import MS_NAME, SUMMARY, TRUE_GAINS, TRUTH_SKY, simulate_observation
from sdpflow.store import RunStore

#: Output channels of the demo's cubes (18 MHz each: Faraday rotation across a channel ≤ 0.13 rad at |RM| 20).
DEMO_CHANNELS_OUT = 16

#: The truth catalogue's columns (``truth_sky.csv``): one component per island, fluxes in Jy.
TRUTH_COLUMNS = CatalogueColumns(source_id=None, component_id=None, ra="ra_deg", dec="dec_deg", peak_flux="flux_jy",
                                 total_flux="flux_jy", maj=None, min=None, pa=None, flux_unit="Jy",
                                 truth_rm="rm_radm2", truth_fracpol="pol_frac", truth_polangle="pol_angle_deg")


@dataclass
class DemoPolarimetry:
    """What the demo made: the imaging and polarimetry runs and their folders."""

    imaging_run: str
    imaging_dir: Path
    polarimetry_run: str
    polarimetry_dir: Path
    truth_sky: Path


def imaging_config(ms: Path, simulation: SimulateConfig) -> ContinuumConfig:
    npix = simulation.image_npix
    return ContinuumConfig(
        ms=str(ms),
        imaging=ImagingConfig(size=(npix, npix), scale=f"{simulation.image_cell_arcsec}asec", weight="briggs 0",
                              channels_out=DEMO_CHANNELS_OUT, pol="IQU"),
        deconvolution=DeconvolutionConfig(niter=20000, mgain=0.8, auto_threshold=3.0, nmajor=6))


def run_demo_polarimetry(out: str | Path, *, store: RunStore, cluster_spec: str | None = None,
                         observers: Iterable[Observer] = (),
                         on_step: Callable[[str, float], None] | None = None,
                         overwrite: bool = False) -> DemoPolarimetry:
    """Simulate into ``out/obs.ms``, image into ``out/continuum``, run polarimetry into ``out/polarimetry``.

    ``overwrite``: accept an ``out`` holding files sdpflow did not write (none of them is replaced)."""
    from sdpflow.engine.outdir import claim_output_folder, refuse_foreign

    # a file, or a folder of someone else's files, is refused before anything is written
    writes = (MS_NAME, TRUTH_SKY, TRUE_GAINS, SUMMARY, "continuum", "polarimetry")
    out = claim_output_folder(out, writer="sdpflow demo polarimetry", overwrite=overwrite, writes=writes)
    refuse_foreign(out, writes)
    simulation = SimulateConfig(preset="pol")
    products = simulate_observation(simulation, out / MS_NAME, progress=on_step, overwrite=overwrite)
    imaging = start_run("continuum", imaging_config(products.ms, simulation), out / "continuum", store=store,
                        cluster_spec=cluster_spec, observers=observers, overwrite=overwrite)
    config = PolarimetryConfig(images=str(imaging.out_dir), catalogue=str(products.truth_sky), columns=TRUTH_COLUMNS,
                               rmsynth3d=True)
    polarimetry = start_run("polarimetry", config, out / "polarimetry", store=store, cluster_spec=cluster_spec,
                            observers=observers, overwrite=overwrite)
    return DemoPolarimetry(imaging.run_id, imaging.out_dir, polarimetry.run_id, polarimetry.out_dir, products.truth_sky)


def recovery_rows(polarimetry_dir: Path) -> list[tuple[str, float, float, float, float, float, float]]:
    """(component, RM true, RM measured, rm_err, p true, p measured, S/N) per catalogued component, brightest first."""
    import csv

    with open(Path(polarimetry_dir) / "truth_match.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    found = [(row["cat_id"], float(row["truth_rm"]), float(row["rm"]), float(row["rm_err"]),
              float(row["truth_fracpol"]), float(row["fracpol"]), float(row["snr_polint"])) for row in rows
             if np.isfinite(float(row["truth_rm"]))]
    return sorted(found, key=lambda row: -np.nan_to_num(row[6], nan=-np.inf))
