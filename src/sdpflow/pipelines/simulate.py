"""Simulate an observation: a MeasurementSet of corrupted, noisy visibilities and its truth beside it.

Plain function, no Dask. The MS's folder is claimed as an sdpflow output folder (see
:mod:`sdpflow.engine.outdir`: a folder of someone else's files is refused, and none of them is
ever replaced). Beside the MS it writes ``truth_sky.csv`` (apparent fluxes), ``true_gains.h5``
(the antenna gains applied) and ``simulation.json`` (the configuration, suggested imaging
parameters and the products' checksums).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from sdpflow.config.simulate import SimulateConfig
from sdpflow.engine.outdir import claim_output_folder, refuse_foreign
from sdpflow.errors import ConfigError
from sdpflow.provenance import atomic_path, checksum, config_hash, provenance_record, replace_atomically
from sdpflow.radio.calibration import apply_gains
from sdpflow.radio.datamodels import stokes_i_to_correlations
from sdpflow.radio.hdf5 import write_gaintable_hdf5
from sdpflow.radio.layouts import configuration_from_csv, configuration_from_ms, low_like_configuration
from sdpflow.radio.ms import write_ms
from sdpflow.radio.polsky import Polarisation, random_polarisation, stokes_spectra
from sdpflow.radio.simulate import add_noise, make_visibility, observation_times, random_gains, random_sky
from sdpflow.radio.sky import predict_components, write_sky_csv
from sdpflow.radio.stokes import correlations_from_stokes

MS_NAME = "obs.ms"  # inside the output folder, as `sdpflow demo` writes it
TRUTH_SKY = "truth_sky.csv"
TRUE_GAINS = "true_gains.h5"
SUMMARY = "simulation.json"

Progress = Callable[[str, float], None]


@dataclass
class SimulationProducts:
    """Paths of what a simulation wrote, and its size."""

    ms: Path
    truth_sky: Path
    true_gains: Path
    summary: Path
    n_visibilities: int
    n_correlations: int = 2


def _configuration(config: SimulateConfig):
    if config.layout is None:
        return low_like_configuration(config.stations, radius_m=config.array_radius_m, seed=config.seed,
                                      diameter_m=config.station_diameter_m)
    path = Path(config.layout)
    if path.suffix.lower() == ".csv":
        return configuration_from_csv(path, diameter_m=config.station_diameter_m)
    return configuration_from_ms(path)


#: Bytes a simulation holds per visibility (baseline × time × channel): the model and the corrupted
#: visibilities (complex128 each), and per correlation the data (complex64), weight and flag.
SIMULATION_BYTES = 16 + 16
SIMULATION_BYTES_PER_CORRELATION = 8 + 4 + 1 + 16  # (+16: the per-correlation intermediate of a polarised sky)


def check_simulation_memory(config: SimulateConfig) -> None:
    """Refuse (exit 2) a simulation this machine cannot hold in memory, before any folder is made."""
    import psutil
    from dask.utils import format_bytes

    visibilities = config.stations * (config.stations - 1) // 2 * config.times * config.channels
    correlations = 4 if config.polarised else 2
    needed = visibilities * (SIMULATION_BYTES + correlations * SIMULATION_BYTES_PER_CORRELATION)
    available = psutil.virtual_memory().available
    if needed > available:
        raise ConfigError(
            f"--stations {config.stations} --times {config.times} --channels {config.channels}: the simulation "
            f"holds {visibilities:.3g} visibilities, about {format_bytes(needed)} in memory, more than the "
            f"{format_bytes(available)} this machine has free: give fewer stations, times or channels")


def simulate_observation(config: SimulateConfig, out_ms: str | Path, *, progress: Progress | None = None,
                         overwrite: bool = False) -> SimulationProducts:
    """Write a simulated MS (DATA = gains × sky + noise) and its truth files beside it.

    An unpolarised simulation writes XX and YY; a polarised one (``config.polarised``) the four
    correlations of ``config.feeds`` from each source's Stokes spectra (:mod:`sdpflow.radio.polsky`,
    convention of :mod:`sdpflow.radio.stokes`), noise ``noise_jy`` on each correlation, and the
    truth catalogue gains the columns pol_frac, pol_angle_deg, rm_radm2, rm_width_radm2.

    The MS's folder is claimed first (InputError for a folder of foreign files unless
    ``overwrite``, and always when a product would replace a foreign file), so nothing is
    computed for a simulation that could not be written.
    """
    report = progress or (lambda step, fraction: None)
    out_ms = Path(out_ms)
    check_simulation_memory(config)
    array = _configuration(config)  # a bad layout file is refused before the folder is made
    written = (out_ms.name, TRUTH_SKY, TRUE_GAINS, SUMMARY)
    folder = claim_output_folder(out_ms.parent, writer="sdpflow simulate", overwrite=overwrite, writes=written)
    refuse_foreign(folder, written)
    rng = np.random.default_rng(config.seed)
    phase_centre = (np.radians(config.ra_deg), np.radians(config.dec_deg))

    report("array and uvw", 0.0)
    times, interval = observation_times(phase_centre, n_times=config.times, hour_angle_start_h=config.hour_angle_start_h,
                                        hour_angle_stop_h=config.hour_angle_stop_h, date=config.date)
    frequency = config.freq_start_hz + config.freq_width_hz * np.arange(config.channels)
    vis = make_visibility(array, phase_centre=phase_centre, times=times, interval=interval, frequency=frequency,
                          channel_width=np.full(config.channels, config.freq_width_hz))

    report("sky", 0.1)
    ref_frequency = float(frequency.mean())
    sky = random_sky(phase_centre=phase_centre, field_radius_rad=np.radians(config.field_radius_deg),
                     n_faint=config.n_faint, n_bright=config.n_bright, faint_flux_jy=config.faint_flux_jy,
                     bright_flux_jy=config.bright_flux_jy, ref_frequency_hz=ref_frequency, rng=rng,
                     primary_beam_diameter_m=config.station_diameter_m if config.primary_beam else None,
                     min_separation_rad=np.radians(3 * config.image_cell_arcsec / 3600))

    polarisation = _polarisation(config, len(sky))
    fluxes = None if polarisation is None else stokes_spectra(sky, polarisation, frequency)  # [comp, chan, IQUV]

    report("visibilities", 0.2)
    model = predict_components(vis, sky, progress=lambda done: report("visibilities", 0.2 + 0.5 * done),
                               fluxes=fluxes)

    report("gains and noise", 0.7)
    gains = random_gains(n_antennas=array.n_antennas, times=times, interval=interval,
                         gain_interval_s=config.gain_interval_s, frequency=frequency,
                         phase_error_rad=config.phase_error_rad, amplitude_error=config.amplitude_error, rng=rng)
    # scalar (direction-independent, feed-independent) gains: the same factor on every correlation
    corrupted = apply_gains(model, gains, vis.antenna1, vis.antenna2, vis.time, inverse=False)
    if polarisation is None:
        correlations = stokes_i_to_correlations(vis.with_vis(corrupted.astype(np.complex64)), ("XX", "YY"))
    else:
        data, names = correlations_from_stokes(corrupted, config.feeds)
        correlations = vis.with_vis(data.astype(np.complex64), polarisation=names)
    correlations.vis[...] = add_noise(correlations.vis, sigma_jy=config.noise_jy, rng=rng)
    correlations.weight[...] = 1.0 / config.noise_jy**2 if config.noise_jy > 0 else 1.0

    report("writing", 0.8)
    settings = config.model_dump(mode="json")
    record = provenance_record(config_hash=config_hash(settings))
    write_ms(out_ms, correlations, history=[f"sdpflow simulate: {json.dumps(settings, sort_keys=True)}"],
             provenance=record)
    truth_sky, true_gains, summary = folder / TRUTH_SKY, folder / TRUE_GAINS, folder / SUMMARY
    write_sky_csv(truth_sky, sky, polarisation)
    write_gaintable_hdf5(true_gains, gains, provenance=record)
    _write_summary(summary, config, settings, record, out_ms, truth_sky, true_gains, vis.n_rows * vis.n_channels)
    report("done", 1.0)
    return SimulationProducts(out_ms, truth_sky, true_gains, summary, vis.n_rows * vis.n_channels,
                              len(correlations.polarisation))


def _polarisation(config: SimulateConfig, n_components: int) -> Polarisation | None:
    """The sources' polarisation (None for an unpolarised, two-correlation simulation).

    Drawn from a generator of its own, so that the sky, gains and noise of a seed are those
    of the unpolarised simulation with the same options.
    """
    if not config.polarised:
        return None
    rng = np.random.default_rng([config.seed, 1])
    return random_polarisation(n_components, fraction=config.pol_fraction, rm_radm2=config.rm_radm2,
                               slab_fraction=config.slab_fraction, slab_depth_radm2=config.slab_depth_radm2,
                               rng=rng)


def _write_summary(path, config, settings, record, ms, truth_sky, true_gains, n_visibilities) -> None:
    summary = {
        "config": settings,
        "n_visibilities": n_visibilities,
        "suggested_imaging": {"npix": config.image_npix, "cell_arcsec": config.image_cell_arcsec},
        "products": {p.name: checksum(p) for p in (ms, truth_sky, true_gains)},
        "provenance": record,
    }
    tmp = atomic_path(path)
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    replace_atomically(tmp, path)
