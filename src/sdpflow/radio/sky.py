"""Sky models: point components, their direction cosines, exact (DFT) visibilities, CSV files."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from sdpflow.errors import DataError
from sdpflow.radio.datamodels import SPEED_OF_LIGHT, SkyModel, Visibility

if TYPE_CHECKING:
    from sdpflow.radio.polsky import Polarisation

#: Columns of a sky-model CSV file (apparent flux at the reference frequency).
SKY_CSV_COLUMNS = ("ra_deg", "dec_deg", "flux_jy", "ref_freq_hz", "spectral_index")
#: The polarisation columns of a polarised truth catalogue (see :func:`write_sky_csv`).
POL_CSV_COLUMNS = ["pol_frac", "pol_angle_deg", "rm_radm2", "rm_width_radm2"]


def direction_cosines(ra: np.ndarray, dec: np.ndarray, phase_centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(l, m) of directions (radians) relative to a phase centre: the SIN projection of FITS.

    l = cos(dec) sin(ra - ra0), m = sin(dec) cos(dec0) - cos(dec) sin(dec0) cos(ra - ra0).
    """
    ra0, dec0 = phase_centre
    dra = np.asarray(ra) - ra0
    l = np.cos(dec) * np.sin(dra)
    m = np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(dra)
    return l, m


def directions_from_cosines(l: np.ndarray, m: np.ndarray, phase_centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) radians of direction cosines (l, m) about a phase centre (inverse SIN projection)."""
    ra0, dec0 = phase_centre
    n = np.sqrt(1.0 - l**2 - m**2)
    dec = np.arcsin(m * np.cos(dec0) + n * np.sin(dec0))
    ra = ra0 + np.arctan2(l, n * np.cos(dec0) - m * np.sin(dec0))
    return np.mod(ra, 2 * np.pi), dec


def predict_components(vis: Visibility, sky: SkyModel, *, batch: int = 32,
                       progress: Callable[[float], None] | None = None, fluxes: np.ndarray | None = None) -> np.ndarray:
    """Exact visibilities [row, chan] complex128 (Jy) of point components by direct Fourier sum.

    V = sum_k S_k(f) exp(+2j*pi*(u*l_k + v*m_k + w*(n_k - 1)) * f / c). Evenly spaced channels
    use a phasor recurrence (one complex exponential per row and component, not per channel).
    fluxes: [comp, chan] or [comp, chan, stokes] Jy instead of the sky's power laws (e.g. the
    Stokes spectra of :func:`sdpflow.radio.polsky.stokes_spectra`); the result is then
    [row, chan] or [row, chan, stokes].
    """
    l, m = direction_cosines(sky.ra, sky.dec, vis.phase_centre)
    n = np.sqrt(1.0 - l**2 - m**2)
    flux = sky.flux_at(vis.frequency) if fluxes is None else np.asarray(fluxes, float)  # [comp, chan(, stokes)]
    scale = 2j * np.pi * vis.frequency / SPEED_OF_LIGHT  # [chan]
    steps = np.diff(vis.frequency)
    evenly_spaced = len(steps) > 0 and np.allclose(steps, steps[0], rtol=1e-9, atol=0.0)
    result = np.zeros((vis.n_rows, vis.n_channels) + flux.shape[2:], np.complex128)
    u, v, w = vis.uvw.T
    for start in range(0, len(sky), batch):
        part = slice(start, start + batch)
        path = np.outer(u, l[part]) + np.outer(v, m[part]) + np.outer(w, n[part] - 1.0)  # [row, comp] metres
        phasor = np.exp(scale[0] * path)
        step = np.exp((scale[1] - scale[0]) * path) if evenly_spaced else None
        for chan in range(vis.n_channels):
            if chan and step is not None:
                phasor *= step
            elif chan:
                phasor = np.exp(scale[chan] * path)
            result[:, chan] += phasor @ flux[part, chan]  # [row, comp] @ [comp(, stokes)]
        if progress is not None:
            progress(min(1.0, (start + batch) / max(len(sky), 1)))
    return result


def survey_fluxes(count: int, *, flux_min_jy: float, flux_max_jy: float, slope: float = 1.6,
                  rng: np.random.Generator) -> np.ndarray:
    """Fluxes from a power-law source count dN/dS ∝ S**-slope between the limits (many faint, few bright)."""
    if count == 0:
        return np.zeros(0)
    a = 1.0 - slope
    u = rng.random(count)
    lo, hi = flux_min_jy**a, flux_max_jy**a
    return (lo + u * (hi - lo)) ** (1.0 / a)


def gaussian_beam(l: np.ndarray, m: np.ndarray, *, frequency_hz: float, diameter_m: float) -> np.ndarray:
    """A Gaussian primary beam (peak 1) with FWHM 1.02 λ / D, at direction cosines (l, m)."""
    fwhm = 1.02 * SPEED_OF_LIGHT / frequency_hz / diameter_m
    sigma = fwhm / np.sqrt(8 * np.log(2))
    return np.exp(-(l**2 + m**2) / (2 * sigma**2))


def write_sky_csv(path: str | Path, sky: SkyModel, polarisation: "Polarisation | None" = None) -> None:
    """Write components as CSV (ra_deg, dec_deg, flux_jy, ref_freq_hz, spectral_index), and with a
    polarisation also :data:`POL_CSV_COLUMNS`: pol_frac (0..1), pol_angle_deg (intrinsic, east of
    north), rm_radm2 (rad m⁻²) and rm_width_radm2 (Burn-slab depth, rad m⁻², 0 = Faraday-thin)."""
    from sdpflow.provenance import atomic_path, replace_atomically

    columns = [np.degrees(sky.ra), np.degrees(sky.dec), sky.flux, sky.ref_frequency, sky.spectral_index]
    header = list(SKY_CSV_COLUMNS)
    if polarisation is not None:
        header += POL_CSV_COLUMNS
        columns += [polarisation.fraction, np.degrees(polarisation.angle_rad), polarisation.rm_radm2,
                    polarisation.rm_width_radm2]
    tmp = atomic_path(path)
    with open(tmp, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        for row in zip(*columns):
            writer.writerow([repr(float(value)) for value in row])
    replace_atomically(tmp, path)


def read_polarisation_csv(path: str | Path) -> "Polarisation | None":
    """The polarisation columns of a sky-model CSV (None when it has none), see :func:`write_sky_csv`."""
    from sdpflow.radio.polsky import Polarisation

    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    if not rows or any(name not in rows[0] for name in POL_CSV_COLUMNS):
        return None
    try:
        columns = {name: np.array([float(row[name]) for row in rows]) for name in POL_CSV_COLUMNS}
    except (ValueError, TypeError):
        raise DataError(f"sky model {path}: columns {', '.join(POL_CSV_COLUMNS)} must be numeric") from None
    return Polarisation(columns["pol_frac"], np.radians(columns["pol_angle_deg"]), columns["rm_radm2"],
                        columns["rm_width_radm2"])


def read_sky_csv(path: str | Path) -> SkyModel:
    """Read a sky-model CSV written by :func:`write_sky_csv`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"sky model {path} does not exist")
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    try:
        columns = {name: np.array([float(row[name]) for row in rows]) for name in SKY_CSV_COLUMNS}
    except (KeyError, ValueError, TypeError):
        raise DataError(f"sky model {path} must have numeric columns {', '.join(SKY_CSV_COLUMNS)}") from None
    return SkyModel(np.radians(columns["ra_deg"]), np.radians(columns["dec_deg"]), columns["flux_jy"],
                    columns["ref_freq_hz"], columns["spectral_index"])
