"""Small simulated observations shared by the radio tests (imported by them; conftest holds the fixtures)."""

from __future__ import annotations

import numpy as np

from sdpflow.radio.datamodels import SkyModel
from sdpflow.radio.layouts import low_like_configuration
from sdpflow.radio.simulate import make_visibility, observation_times

PHASE_CENTRE = (np.radians(15.0), np.radians(-45.0))


def observation(n_stations=20, n_times=6, frequency=(1.0e8,), *, radius_m=1000.0, seed=3,
                hour_angles=(-2.0, 2.0)):
    """An empty Stokes I observation of a random LOW-like core."""
    array = low_like_configuration(n_stations, radius_m=radius_m, seed=seed)
    times, interval = observation_times(PHASE_CENTRE, n_times=n_times, hour_angle_start_h=hour_angles[0],
                                        hour_angle_stop_h=hour_angles[1])
    frequency = np.asarray(frequency, float)
    width = np.full(len(frequency), 1.0e6)
    return make_visibility(array, phase_centre=PHASE_CENTRE, times=times, interval=interval,
                           frequency=frequency, channel_width=width)


def point_sky(ra_deg, dec_deg, flux, ref_frequency=1.0e8, spectral_index=None) -> SkyModel:
    n = len(flux)
    return SkyModel(np.radians(ra_deg), np.radians(dec_deg), np.asarray(flux, float), np.full(n, ref_frequency),
                    np.zeros(n) if spectral_index is None else np.asarray(spectral_index, float))
