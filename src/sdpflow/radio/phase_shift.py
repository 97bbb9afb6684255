"""Phase rotation of visibilities to a new phase centre (WSClean's -shift, DP3's phaseshift).

With baselines b (metres) and the unit vectors (u, v, w) of a phase centre's frame, uvw = b · (u, v, w).
Visibilities follow :mod:`sdpflow.radio.imaging`'s convention, V = sum I exp(+2j pi (b·s - w) f / c) for
a source in direction s, so moving the phase centre from s0 to s1 rotates uvw into s1's frame and
multiplies V by exp(+2j pi (w0 - w1) f / c): a source at s1 then has phase 0 on every baseline.
"""

from __future__ import annotations

import numpy as np

from sdpflow.radio.datamodels import SPEED_OF_LIGHT


def uvw_frame(ra: float, dec: float) -> np.ndarray:
    """[3, 3] rows: the unit vectors u (east), v (north) and w (towards ra, dec, radians) in the equatorial frame."""
    sin_ra, cos_ra, sin_dec, cos_dec = np.sin(ra), np.cos(ra), np.sin(dec), np.cos(dec)
    return np.array([[-sin_ra, cos_ra, 0.0],
                     [-sin_dec * cos_ra, -sin_dec * sin_ra, cos_dec],
                     [cos_dec * cos_ra, cos_dec * sin_ra, sin_dec]])


def rephase(data: np.ndarray, uvw_m: np.ndarray, frequency_hz: np.ndarray, *, from_centre: tuple[float, float],
            to_centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Visibilities and uvw rotated from the phase centre ``from_centre`` to ``to_centre`` (RA, Dec radians).

    data: [row, chan, ...] complex (Jy); uvw_m: [row, 3] metres in ``from_centre``'s frame;
    frequency_hz: [chan]. Returns (data [row, chan, ...] of data's dtype, uvw [row, 3] float64 metres in
    ``to_centre``'s frame).
    """
    uvw_m = np.asarray(uvw_m, dtype=np.float64)
    baselines = uvw_m @ uvw_frame(*from_centre)  # [row, 3] equatorial metres
    new_uvw = baselines @ uvw_frame(*to_centre).T
    turns = (uvw_m[:, 2] - new_uvw[:, 2])[:, None] * (np.asarray(frequency_hz, float) / SPEED_OF_LIGHT)[None, :]
    phasor = np.exp(2j * np.pi * turns).astype(data.dtype if np.iscomplexobj(data) else np.complex128)
    phasor = phasor.reshape(phasor.shape + (1,) * (data.ndim - 2))
    return data * phasor, new_uvw
