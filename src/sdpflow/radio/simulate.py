"""Simulation kernels: observing times, uvw from earth rotation, random skies, gains and noise."""

from __future__ import annotations

import warnings

import numpy as np

from sdpflow.radio.datamodels import ArrayConfiguration, GainTable, SkyModel, Visibility
from sdpflow.radio.layouts import LOW_SITE, enu_axes
from sdpflow.radio.sky import directions_from_cosines, gaussian_beam, survey_fluxes

#: Solar seconds per sidereal second.
SIDEREAL_TO_SOLAR = 1.0 / 1.002737909350795


def _astropy_offline():
    """Use astropy's bundled Earth-orientation tables, never a download."""
    from astropy.utils import iers

    return iers.conf.set_temp("auto_download", False)


def transit_time_mjd_s(phase_centre: tuple[float, float], *, date: str, site: tuple[float, float, float] = LOW_SITE) -> float:
    """The UTC time (seconds of MJD) on ``date`` (ISO) when the phase centre crosses the site's meridian."""
    from astropy import units as u
    from astropy.time import Time

    with _astropy_offline(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = Time(date, scale="utc")
        lst = start.sidereal_time("apparent", longitude=site[0] * u.rad).to_value(u.rad)
    hour_angle = np.mod(lst - phase_centre[0], 2 * np.pi)  # radians the source is past the meridian
    to_transit = (2 * np.pi - hour_angle) / (2 * np.pi) * 86400.0 * SIDEREAL_TO_SOLAR
    return float(start.mjd * 86400.0 + to_transit)


def observation_times(phase_centre: tuple[float, float], *, n_times: int, hour_angle_start_h: float,
                      hour_angle_stop_h: float, date: str = "2025-01-01",
                      site: tuple[float, float, float] = LOW_SITE) -> tuple[np.ndarray, float]:
    """Integration centres [time] (seconds of MJD, UTC) and the integration time (seconds).

    The ``n_times`` integrations evenly cover hour angles from ``hour_angle_start_h`` to
    ``hour_angle_stop_h`` (hours) of the phase centre at the site, on the transit of ``date``.
    """
    if n_times < 1 or hour_angle_stop_h <= hour_angle_start_h:
        raise ValueError("need n_times >= 1 and hour_angle_stop_h > hour_angle_start_h")
    transit = transit_time_mjd_s(phase_centre, date=date, site=site)
    step_h = (hour_angle_stop_h - hour_angle_start_h) / n_times
    hour_angles = hour_angle_start_h + step_h * (np.arange(n_times) + 0.5)
    interval = step_h * 3600.0 * SIDEREAL_TO_SOLAR
    return transit + hour_angles * 3600.0 * SIDEREAL_TO_SOLAR, interval


def antenna_uvw(positions: np.ndarray, times: np.ndarray, phase_centre: tuple[float, float]) -> np.ndarray:
    """uvw [time, antenna, 3] in metres of ITRF antenna positions [antenna, 3] towards a phase centre.

    The rotation of the Earth (ITRS to GCRS, through astropy) is evaluated at each time
    (seconds of MJD, UTC); u points east, v north and w to the phase centre (ICRS).
    """
    from astropy import units as u
    from astropy.coordinates import GCRS, ITRS, CartesianRepresentation
    from astropy.time import Time

    times = np.asarray(times, dtype=float)
    radius = 6.4e6  # transform the ITRF axes as points on a sphere, to get one rotation per time
    axes = np.eye(3) * radius
    with _astropy_offline(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obstime = Time(times / 86400.0, format="mjd", scale="utc")[:, None]
        points = CartesianRepresentation(np.broadcast_to(axes.T[:, None, :], (3, len(times), 3)) * u.m)
        gcrs = ITRS(points, obstime=obstime).transform_to(GCRS(obstime=obstime))
        rotated = gcrs.cartesian.xyz.to_value(u.m) / radius  # [xyz_gcrs, time, itrf_axis]
    rotation = np.transpose(rotated, (1, 0, 2))  # [time, gcrs, itrf]
    basis = enu_axes(*phase_centre)  # u, v, w: east, north, up at (ra, dec) on the celestial sphere
    centred = positions - positions.mean(axis=0)
    return np.einsum("ug,tgi,ai->tau", basis, rotation, centred)


def make_visibility(configuration: ArrayConfiguration, *, phase_centre: tuple[float, float], times: np.ndarray,
                    interval: float, frequency: np.ndarray, channel_width: np.ndarray,
                    dtype: type = np.complex128) -> Visibility:
    """Empty Stokes I visibilities (data 0, weight 1) of all cross-correlations, time-major.

    Baselines are ordered antenna1 < antenna2; uvw = uvw(antenna2) - uvw(antenna1).
    """
    n_antennas = configuration.n_antennas
    antenna1, antenna2 = np.triu_indices(n_antennas, k=1)
    per_antenna = antenna_uvw(configuration.positions, times, phase_centre)  # [time, ant, 3]
    uvw = (per_antenna[:, antenna2] - per_antenna[:, antenna1]).reshape(-1, 3)
    n_times, n_baselines, n_chan = len(times), len(antenna1), len(frequency)
    n_rows = n_times * n_baselines
    return Visibility(
        uvw=uvw,
        time=np.repeat(np.asarray(times, float), n_baselines),
        interval=np.full(n_rows, float(interval)),
        antenna1=np.tile(antenna1, n_times).astype(np.int32),
        antenna2=np.tile(antenna2, n_times).astype(np.int32),
        frequency=np.asarray(frequency, float),
        channel_width=np.asarray(channel_width, float),
        vis=np.zeros((n_rows, n_chan, 1), dtype),
        weight=np.ones((n_rows, n_chan, 1), np.float32),
        flag=np.zeros((n_rows, n_chan, 1), bool),
        phase_centre=(float(phase_centre[0]), float(phase_centre[1])),
        polarisation=("I",),
        configuration=configuration,
    )


def random_sky(*, phase_centre: tuple[float, float], field_radius_rad: float, n_faint: int, n_bright: int,
               faint_flux_jy: tuple[float, float], bright_flux_jy: tuple[float, float], ref_frequency_hz: float,
               rng: np.random.Generator, primary_beam_diameter_m: float | None = None,
               min_separation_rad: float = 0.0) -> SkyModel:
    """Point sources: a few bright and many faint (dN/dS ∝ S**-1.6), power-law spectra.

    Positions are uniform in a square of half-width ``field_radius_rad`` (direction cosines)
    about the phase centre; spectral indices ~ N(-0.7, 0.2). With a primary-beam diameter,
    fluxes are attenuated by a Gaussian beam evaluated at ``ref_frequency_hz`` (so spectra stay
    power laws): the returned fluxes are apparent, as an image shows them.
    """
    n_total = n_faint + n_bright
    bright = rng.uniform(*bright_flux_jy, n_bright)
    faint = survey_fluxes(n_faint, flux_min_jy=faint_flux_jy[0], flux_max_jy=faint_flux_jy[1], rng=rng)
    l = np.empty(0)
    m = np.empty(0)
    while len(l) < n_total:
        cl, cm = rng.uniform(-field_radius_rad, field_radius_rad, 2)
        if len(l) == 0 or np.min(np.hypot(l - cl, m - cm)) >= min_separation_rad:
            l, m = np.append(l, cl), np.append(m, cm)
    flux = np.concatenate([bright, faint])
    if primary_beam_diameter_m:
        flux = flux * gaussian_beam(l, m, frequency_hz=ref_frequency_hz, diameter_m=primary_beam_diameter_m)
    ra, dec = directions_from_cosines(l, m, phase_centre)
    return SkyModel(ra=ra, dec=dec, flux=flux, ref_frequency=np.full(n_total, float(ref_frequency_hz)),
                    spectral_index=rng.normal(-0.7, 0.2, n_total))


def random_gains(*, n_antennas: int, times: np.ndarray, interval: float, gain_interval_s: float | None,
                 frequency: np.ndarray, phase_error_rad: float, amplitude_error: float,
                 rng: np.random.Generator) -> GainTable:
    """Antenna gains per solution interval: phase ~ N(0, phase_error_rad), log amplitude ~ N(0, amplitude_error).

    One gain per antenna and interval, the same at all frequencies (one channel); each
    interval spans ``gain_interval_s`` seconds of whole integrations (None = one integration).
    The amplitudes of each interval are scaled to a geometric mean of 1: self-calibration
    cannot tell a common amplitude from the sky's brightness (the flux scale comes from a
    flux calibrator), so the errors simulated are those relative to a flux-calibrated array.
    """
    per_slot = 1 if not gain_interval_s else max(1, int(round(gain_interval_s / interval)))
    slots = [np.asarray(times[i:i + per_slot]) for i in range(0, len(times), per_slot)]
    n_slots = len(slots)
    phase = rng.normal(0.0, phase_error_rad, (n_slots, n_antennas))
    log_amplitude = rng.normal(0.0, amplitude_error, (n_slots, n_antennas))
    amplitude = np.exp(log_amplitude - log_amplitude.mean(axis=1, keepdims=True))
    gain = (amplitude * np.exp(1j * phase))[:, :, None, None]
    return GainTable(
        gain=gain, weight=np.ones(gain.shape), time=np.array([s.mean() for s in slots]),
        interval=np.array([len(s) * interval for s in slots]), frequency=np.array([float(np.mean(frequency))]),
        receptors=("I",), mode="truth",
    )


def add_noise(vis: np.ndarray, *, sigma_jy: float, rng: np.random.Generator) -> np.ndarray:
    """vis plus complex Gaussian noise with standard deviation ``sigma_jy`` in each of real and imaginary."""
    if sigma_jy <= 0:
        return vis
    noise = rng.normal(0.0, sigma_jy, vis.shape) + 1j * rng.normal(0.0, sigma_jy, vis.shape)
    return vis + noise.astype(vis.dtype)
