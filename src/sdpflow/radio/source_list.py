"""Clean components as a text sky model in WSClean's -save-source-list (BBS/DP3) format.

One line per model pixel with flux: a POINT component named s0cN, RA as hh:mm:ss.ssss, Dec as
±dd.mm.ss.sss, I in Jy at the reference frequency, SpectralIndex as the ordinary polynomial
terms [c1, c2, ...] of I(ν) = I + c1 (ν/ν0 − 1) + c2 (ν/ν0 − 1)² + ... (LogarithmicSI false).
Multi-scale components are written pixel by pixel (their kernels as the model image holds them).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from sdpflow.provenance import atomic_path, replace_atomically

_FORMAT = ("Format = Name, Type, Ra, Dec, I, SpectralIndex, LogarithmicSI, ReferenceFrequency='{frequency!r}', "
           "MajorAxis, MinorAxis, Orientation")


class Component(NamedTuple):
    """A line of a source list: ra, dec radians; flux Jy at reference_hz; spectral terms (ordinary polynomial)."""

    name: str
    kind: str
    ra: float
    dec: float
    flux: float
    spectral: tuple[float, ...]
    reference_hz: float


def write_source_list(path: str | Path, model: np.ndarray, *, phase_centre: tuple[float, float], cell_rad: float,
                      frequency: Sequence[float], weights: Sequence[float] | None = None, terms: int = 1) -> int:
    """Write the components of a Stokes I model [chan, y, x] (Jy/pixel) atomically; returns how many.

    phase_centre: (ra, dec) radians of pixel (ny // 2, nx // 2); cell_rad: pixel size (radians,
    RA decreasing with x); frequency: [chan] Hz; weights: [chan] channel weights (default equal),
    which give the reference frequency (their weighted mean) and each component's I (the weighted
    mean of its channels); terms: polynomial terms fitted across channels (1: no spectral terms).
    """
    from sdpflow.radio.fits import image_wcs

    model = np.asarray(model, dtype=np.float64)
    if model.ndim == 2:
        model = model[None]
    frequency = np.asarray(frequency, dtype=np.float64)
    weights = np.ones(len(frequency)) if weights is None else np.asarray(weights, dtype=np.float64)
    weights = weights / weights.sum()
    reference = float(np.sum(weights * frequency))
    ys, xs = np.nonzero(np.any(model != 0, axis=0))
    values = model[:, ys, xs]  # [chan, component]
    flux = weights @ values
    spectral = np.zeros((len(ys), 0))
    terms = min(int(terms), len(frequency))
    if terms > 1:
        basis = np.vander(frequency / reference - 1.0, terms, increasing=True) * np.sqrt(weights)[:, None]
        coefficients = np.linalg.lstsq(basis, values * np.sqrt(weights)[:, None], rcond=None)[0]  # [terms, comp]
        flux, spectral = coefficients[0], coefficients[1:].T
    wcs = image_wcs(model.shape[2], model.shape[1], phase_centre=phase_centre, cell_rad=cell_rad,
                    frequency=[reference]).celestial
    ra_deg, dec_deg = wcs.pixel_to_world_values(xs, ys)
    lines = [_FORMAT.format(frequency=reference)]
    for index in range(len(ys)):
        terms_text = ",".join(repr(float(value)) for value in spectral[index])
        lines.append(f"s0c{index},POINT,{_ra_text(ra_deg[index])},{_dec_text(dec_deg[index])},"
                     f"{float(flux[index])!r},[{terms_text}],false,{reference!r},,,")
    path = Path(path)
    tmp = atomic_path(path)
    tmp.write_text("\n".join(lines) + "\n")
    replace_atomically(tmp, path)
    return len(ys)


def read_source_list(path: str | Path) -> list[Component]:
    """The components of a source list in the format :func:`write_source_list` writes (and WSClean's)."""
    lines = Path(path).read_text().splitlines()
    reference = float(lines[0].split("ReferenceFrequency='")[1].split("'")[0])
    components = []
    for line in lines[1:]:
        if not line.strip():
            continue
        name, kind, ra, dec, flux, rest = line.split(",", 5)
        spectral_text, rest = rest[1:].split("]", 1)
        fields = rest.split(",")  # "", LogarithmicSI, ReferenceFrequency, MajorAxis, MinorAxis, Orientation
        spectral = tuple(float(value) for value in spectral_text.split(",") if value)
        components.append(Component(name, kind, _ra_rad(ra), _dec_rad(dec), float(flux), spectral,
                                    float(fields[2]) if fields[2] else reference))
    return components


def _ra_text(ra_deg: float) -> str:
    tenths_ms = int(round((ra_deg % 360.0) / 15.0 * 3600.0 * 1e4)) % (24 * 3600 * 10**4)
    seconds, fraction = divmod(tenths_ms, 10**4)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{fraction:04d}"


def _dec_text(dec_deg: float) -> str:
    milli = int(round(abs(dec_deg) * 3600.0 * 1e3))
    seconds, fraction = divmod(milli, 1000)
    sign = "-" if dec_deg < 0 else "+"
    return f"{sign}{seconds // 3600:02d}.{seconds // 60 % 60:02d}.{seconds % 60:02d}.{fraction:03d}"


def _ra_rad(text: str) -> float:
    hours, minutes, seconds = (float(part) for part in text.split(":"))
    return float(np.radians((hours + minutes / 60.0 + seconds / 3600.0) * 15.0))


def _dec_rad(text: str) -> float:
    sign = -1.0 if text.strip().startswith("-") else 1.0
    degrees, minutes, seconds = text.strip().lstrip("+-").split(".", 2)
    return float(sign * np.radians(float(degrees) + float(minutes) / 60.0 + float(seconds) / 3600.0))
