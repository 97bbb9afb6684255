"""The data model: visibilities, images, gain tables and sky models, as plain numpy containers.

Conventions used throughout :mod:`sdpflow.radio`:

* Directions are (RA, Dec) in radians, ICRS/J2000; frequencies in Hz; times in seconds of
  MJD (UTC, the MeasurementSet epoch); baselines and uvw in metres.
* ``uvw`` of a row is ``position(antenna2) - position(antenna1)`` (the MeasurementSet
  definition) and a visibility of a point source of flux S at direction cosines (l, m) is
  ``S * exp(+2j*pi*(u*l + v*m + w*(n - 1)) * f / c)``, with ``n = sqrt(1 - l**2 - m**2)``:
  the sign WSClean and CASA use with MeasurementSet uvw (checked against WSClean in tests).
* Rows are time-major: all baselines of the first integration, then the next, so a time
  range is a contiguous row range.
* An image is ``data[chan, pol, y, x]``; ``x`` is the FITS axis 1 (RA decreasing with ``x``,
  CDELT1 < 0), ``y`` the FITS axis 2 (Dec increasing with ``y``); the phase centre is pixel
  ``(npix_y // 2, npix_x // 2)``. So ``l = -cell * (x - npix_x // 2)`` and
  ``m = cell * (y - npix_y // 2)``. Kernels take Stokes I images as ``[chan, y, x]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

#: Speed of light in m/s.
SPEED_OF_LIGHT = 299_792_458.0

#: The correlations each feed type produces, as MeasurementSet CORR_TYPE numbers.
CORRELATION_CODES = {
    "I": 1, "Q": 2, "U": 3, "V": 4,
    "RR": 5, "RL": 6, "LR": 7, "LL": 8,
    "XX": 9, "XY": 10, "YX": 11, "YY": 12,
}
CORRELATION_NAMES = {code: name for name, code in CORRELATION_CODES.items()}


@dataclass
class ArrayConfiguration:
    """The stations of an array.

    names: station names; positions: ITRF geocentric positions [antenna, 3] in metres;
    diameter: dish or station diameter in metres; telescope: the telescope's name.
    """

    names: list[str]
    positions: np.ndarray
    diameter: float = 38.0
    telescope: str = "SKA-LOW"

    @property
    def n_antennas(self) -> int:
        return len(self.names)


@dataclass
class Visibility:
    """Visibilities of one spectral window and one field, rows in time-major order.

    uvw: [row, 3] float64 metres; time: [row] float64 seconds (MJD, UTC, centre of the
    integration); interval: [row] float64 seconds; antenna1, antenna2: [row] int32;
    frequency, channel_width: [chan] float64 Hz; vis: [row, chan, pol] complex Jy;
    weight: [row, chan, pol] float32 (inverse variance); flag: [row, chan, pol] bool;
    phase_centre: (ra, dec) radians; polarisation: correlation names, e.g. ("I",) or
    ("XX", "YY").
    """

    uvw: np.ndarray
    time: np.ndarray
    interval: np.ndarray
    antenna1: np.ndarray
    antenna2: np.ndarray
    frequency: np.ndarray
    channel_width: np.ndarray
    vis: np.ndarray
    weight: np.ndarray
    flag: np.ndarray
    phase_centre: tuple[float, float]
    polarisation: tuple[str, ...] = ("I",)
    configuration: ArrayConfiguration | None = None

    def __post_init__(self) -> None:
        n_rows, n_chan, n_pol = self.vis.shape
        if self.uvw.shape != (n_rows, 3):
            raise ValueError(f"uvw has shape {self.uvw.shape}, expected ({n_rows}, 3)")
        if self.weight.shape != self.vis.shape or self.flag.shape != self.vis.shape:
            raise ValueError("weight and flag must have the shape of vis [row, chan, pol]")
        if len(self.frequency) != n_chan or len(self.polarisation) != n_pol:
            raise ValueError("frequency and polarisation must match the chan and pol axes of vis")

    @property
    def n_rows(self) -> int:
        return self.vis.shape[0]

    @property
    def n_channels(self) -> int:
        return self.vis.shape[1]

    def unique_times(self) -> np.ndarray:
        """The distinct integration times, ascending, in seconds."""
        return np.unique(self.time)

    def time_row_ranges(self) -> list[tuple[int, int]]:
        """The (start, stop) row range of each integration (rows are time-major)."""
        return time_row_ranges(self.time)

    def uvw_wavelengths(self) -> np.ndarray:
        """uvw in wavelengths, [row, chan, 3]."""
        return self.uvw[:, None, :] * (self.frequency[None, :, None] / SPEED_OF_LIGHT)

    def with_vis(self, vis: np.ndarray, polarisation: Sequence[str] | None = None,
                 weight: np.ndarray | None = None, flag: np.ndarray | None = None) -> "Visibility":
        """A copy sharing the coordinates (uvw, time, ...), with new data; weights and flags are copied
        unless given, so changing them does not change this Visibility."""
        if vis.ndim == 2:
            vis = vis[:, :, None]
        n_pol = vis.shape[2]
        pol = tuple(polarisation) if polarisation is not None else self.polarisation
        if weight is None:
            weight = self.weight.copy() if self.weight.shape == vis.shape else np.broadcast_to(self.weight[:, :, :1], vis.shape).copy()
        if flag is None:
            flag = self.flag.copy() if self.flag.shape == vis.shape else np.broadcast_to(self.flag.any(axis=2, keepdims=True), vis.shape).copy()
        if len(pol) != n_pol:
            raise ValueError(f"{n_pol} correlations but polarisation {pol}")
        return replace(self, vis=vis, polarisation=pol, weight=weight, flag=flag)


def time_row_ranges(time: np.ndarray) -> list[tuple[int, int]]:
    """The (start, stop) row range of each run of equal times in a time-major column."""
    if len(time) == 0:
        return []
    edges = np.flatnonzero(np.diff(time) != 0) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [len(time)]])
    return [(int(a), int(b)) for a, b in zip(starts, stops)]


@dataclass
class Image:
    """An image cube: data [chan, pol, y, x] with its sky coordinates.

    phase_centre: (ra, dec) radians of pixel (npix_y // 2, npix_x // 2); cell_rad: pixel size
    in radians (RA decreases with x); frequency: [chan] Hz; channel_width: [chan] Hz;
    polarisation: Stokes names; beam: restoring beam (bmaj, bmin, bpa) radians, FWHM, position
    angle east of north, or None; unit: brightness unit ("JY/BEAM" or "JY/PIXEL").
    """

    data: np.ndarray
    phase_centre: tuple[float, float]
    cell_rad: float
    frequency: np.ndarray
    channel_width: np.ndarray | None = None
    polarisation: tuple[str, ...] = ("I",)
    beam: tuple[float, float, float] | None = None
    unit: str = "JY/BEAM"

    @property
    def npix_y(self) -> int:
        return self.data.shape[-2]

    @property
    def npix_x(self) -> int:
        return self.data.shape[-1]

    @property
    def wcs(self):
        """The astropy WCS (RA---SIN, DEC--SIN, FREQ, STOKES), as written to FITS."""
        from sdpflow.radio.fits import image_wcs

        return image_wcs(self.npix_x, self.npix_y, phase_centre=self.phase_centre, cell_rad=self.cell_rad,
                         frequency=self.frequency, channel_width=self.channel_width,
                         polarisation=self.polarisation)


@dataclass
class GainTable:
    """Antenna gains per solution interval.

    gain: [time, antenna, chan, receptor] complex128 (a chan axis of length 1 applies to
    all channels); weight: same shape, float64 (0 = no solution); time: [time] seconds (MJD)
    centre of each solution interval; interval: [time] seconds; frequency: [chan] Hz;
    receptors: receptor names; mode: "T", "G" or "B" (or "truth").
    """

    gain: np.ndarray
    weight: np.ndarray
    time: np.ndarray
    interval: np.ndarray
    frequency: np.ndarray
    receptors: tuple[str, ...] = ("I",)
    mode: str = "G"
    residual: np.ndarray | None = field(default=None)

    @property
    def n_antennas(self) -> int:
        return self.gain.shape[1]


def concatenate_gaintables(tables: Sequence[GainTable]) -> GainTable:
    """Join the gain tables of consecutive time chunks into one, ordered by time."""
    if not tables:
        raise ValueError("no gain tables to concatenate")
    ordered = sorted(tables, key=lambda table: float(table.time[0]))
    first = ordered[0]
    return GainTable(
        gain=np.concatenate([t.gain for t in ordered]),
        weight=np.concatenate([t.weight for t in ordered]),
        time=np.concatenate([t.time for t in ordered]),
        interval=np.concatenate([t.interval for t in ordered]),
        frequency=first.frequency,
        receptors=first.receptors,
        mode=first.mode,
        residual=None,
    )


@dataclass
class SkyModel:
    """Point components with power-law spectra, and an optional model image.

    ra, dec: [component] radians; flux: [component] Jy at ref_frequency (apparent, beam
    applied); ref_frequency: [component] Hz; spectral_index: [component], flux ∝ f**alpha.
    """

    ra: np.ndarray
    dec: np.ndarray
    flux: np.ndarray
    ref_frequency: np.ndarray
    spectral_index: np.ndarray
    image: Image | None = None

    def __len__(self) -> int:
        return len(self.flux)

    def flux_at(self, frequency: np.ndarray) -> np.ndarray:
        """Fluxes [component, chan] in Jy at the given frequencies (Hz)."""
        frequency = np.asarray(frequency, dtype=float)
        ratio = frequency[None, :] / self.ref_frequency[:, None]
        return self.flux[:, None] * ratio ** self.spectral_index[:, None]

    def select(self, keep: np.ndarray) -> "SkyModel":
        """The components where ``keep`` is true (a boolean mask or index array)."""
        return SkyModel(self.ra[keep], self.dec[keep], self.flux[keep], self.ref_frequency[keep],
                        self.spectral_index[keep], self.image)


def stokes_i(vis: Visibility) -> Visibility:
    """Stokes I visibilities from linear (XX, YY) or circular (RR, LL) correlations.

    I = (XX + YY) / 2; its weight is :func:`sdpflow.radio.stokes.stokes_weight` of the two (WSClean's
    rule), and a sample is flagged when either correlation is flagged. Stokes I input is returned unchanged.
    """
    from sdpflow.radio.stokes import stokes_weight

    pols = vis.polarisation
    if pols == ("I",):
        return vis
    for first, second in (("XX", "YY"), ("RR", "LL")):
        if first in pols and second in pols:
            a, b = pols.index(first), pols.index(second)
            break
    else:
        raise ValueError(f"cannot form Stokes I from correlations {pols}")
    data = 0.5 * (vis.vis[:, :, a] + vis.vis[:, :, b])
    flag = vis.flag[:, :, a] | vis.flag[:, :, b]
    weight = stokes_weight(vis.weight[:, :, a], vis.weight[:, :, b])
    return replace(vis, vis=data[:, :, None], weight=weight[:, :, None].astype(np.float32),
                   flag=flag[:, :, None], polarisation=("I",))


def single_plane(vis: Visibility) -> Visibility:
    """``vis`` itself when it holds one plane (Stokes I, Q, U, V or one correlation: what the
    imaging kernels grid), else its Stokes I (:func:`stokes_i`)."""
    return vis if vis.vis.shape[2] == 1 else stokes_i(vis)


def unflagged_weights(vis_i: Visibility, weights: np.ndarray | None = None, dtype: type = np.float64) -> np.ndarray:
    """Weights [row, chan] of Stokes I visibilities (theirs, or ``weights``), zero where a sample is flagged."""
    base = vis_i.weight[:, :, 0] if weights is None else weights
    return np.where(vis_i.flag[:, :, 0], dtype(0), np.asarray(base, dtype=dtype))


def stokes_i_to_correlations(vis: Visibility, polarisation: Sequence[str] = ("XX", "YY")) -> Visibility:
    """Unpolarised correlations from Stokes I: XX = YY = I (cross-hands 0), weight w_I / 2 each."""
    if vis.polarisation != ("I",):
        raise ValueError(f"expected Stokes I visibilities, got {vis.polarisation}")
    pols = tuple(polarisation)
    parallel = [p in ("XX", "YY", "RR", "LL") for p in pols]
    data = np.zeros(vis.vis.shape[:2] + (len(pols),), dtype=vis.vis.dtype)
    weight = np.zeros(data.shape, dtype=np.float32)
    for index, is_parallel in enumerate(parallel):
        if is_parallel:
            data[:, :, index] = vis.vis[:, :, 0]
        weight[:, :, index] = vis.weight[:, :, 0] / 2.0
    flag = np.repeat(vis.flag[:, :, :1], len(pols), axis=2)
    return replace(vis, vis=data, weight=weight, flag=flag, polarisation=pols)
