"""Correlations and Stokes parameters: the conventions, conversions both ways, and ``--pol`` selections.

The convention is CASA's and WSClean's (no factor ½ on the correlations; Stokes I of a
linear feed is the mean of XX and YY, so an unpolarised source of flux S gives XX = YY = S):

* linear feeds:   XX = I + Q,  XY = U + iV,  YX = U − iV,  YY = I − Q
* circular feeds: RR = I + V,  RL = Q + iU,  LR = Q − iU,  LL = I − V

and back: I = (XX + YY)/2, Q = (XX − YY)/2, U = (XY + YX)/2, V = (XY − YX)/(2i); I = (RR + LL)/2,
V = (RR − LL)/2, Q = (RL + LR)/2, U = (RL − LR)/(2i). A Stokes sample's weight is
2 min(w_a, w_b) of the two correlations it is made of (:func:`stokes_weight`, WSClean's rule), and
it is flagged when either is. Feeds are taken as ideal (no leakage) with zero parallactic-angle rotation,
as the simulator writes them; ``tests/radio/test_polarisation.py`` checks the convention
against WSClean.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from sdpflow.radio.datamodels import Visibility

#: FITS STOKES axis codes (Greisen & Calabretta 2002, table 7): CRVAL4/CDELT4 count in these.
FITS_STOKES_CODES = {"I": 1, "Q": 2, "U": 3, "V": 4, "RR": -1, "LL": -2, "RL": -3, "LR": -4,
                     "XX": -5, "YY": -6, "XY": -7, "YX": -8}
FITS_STOKES_NAMES = {code: name for name, code in FITS_STOKES_CODES.items()}

LINEAR = ("XX", "XY", "YX", "YY")
CIRCULAR = ("RR", "RL", "LR", "LL")

# Each Stokes parameter as (a, b, scale): S = (corr_a + sign * corr_b) * scale, per feed type.
_FROM_CORRELATIONS = {
    "linear": {"I": ("XX", "YY", 1, 0.5), "Q": ("XX", "YY", -1, 0.5), "U": ("XY", "YX", 1, 0.5),
               "V": ("XY", "YX", -1, -0.5j)},
    "circular": {"I": ("RR", "LL", 1, 0.5), "V": ("RR", "LL", -1, 0.5), "Q": ("RL", "LR", 1, 0.5),
                 "U": ("RL", "LR", -1, -0.5j)},
}

#: WSClean's ``-pol`` values this package images: Stokes selections and the instrumental hands.
POL_CHOICES = ("I", "IQUV", "IQU", "QU", "V", "Q", "U", "xx,yy", "rr,ll")


def stokes_weight(weight_a: np.ndarray, weight_b: np.ndarray) -> np.ndarray:
    """The weight of a Stokes sample made of two correlations of weights ``weight_a``, ``weight_b``: 2 min(w_a, w_b),
    float32, 0 where either is 0.

    WSClean 3.1 weighs a Stokes sample 4 min(w_a, w_b); images do not depend on a common factor,
    and 2 min(w_a, w_b) is the inverse variance of (a ± b)/2 when the two weights are equal (their
    inverse variance 4 / (1/w_a + 1/w_b) otherwise, which WSClean does not use).
    """
    return (2.0 * np.minimum(np.asarray(weight_a, np.float64), np.asarray(weight_b, np.float64))).astype(np.float32)


def parse_pol(text: str) -> tuple[str, ...]:
    """The images a WSClean ``-pol`` value asks for: "IQUV" -> ("I", "Q", "U", "V"), "xx,yy" -> ("XX", "YY").

    Stokes letters may come run together (IQUV) or comma-separated (i,q,u); correlations
    comma-separated (xx,yy / rr,ll / xx,xy,yx,yy). Raises ValueError for anything else.
    """
    cleaned = str(text).strip()
    parts = [p.strip().upper() for p in cleaned.split(",")] if "," in cleaned else None
    if parts is None:
        upper = cleaned.upper()
        parts = [upper] if upper in FITS_STOKES_CODES and len(upper) == 2 else list(upper)
    if not parts or any(p not in FITS_STOKES_CODES for p in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"pol {text!r}: use I, IQUV, IQU, QU, V or the correlations xx,yy / rr,ll (as WSClean)")
    stokes = [p for p in parts if p in "IQUV"]
    if stokes and len(stokes) != len(parts):
        raise ValueError(f"pol {text!r}: do not mix Stokes parameters and correlations")
    order = list(FITS_STOKES_CODES)
    return tuple(sorted(parts, key=order.index)) if stokes else tuple(parts)


def feed_type(polarisation: Sequence[str]) -> str:
    """"linear", "circular" or "stokes" from correlation names."""
    if any(p[0] in "XY" for p in polarisation):
        return "linear"
    if any(p[0] in "RL" for p in polarisation):
        return "circular"
    return "stokes"


def missing_correlations(polarisation: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """The correlations ``polarisation`` lacks to form each of ``wanted`` (Stokes or correlations), sorted."""
    have = set(polarisation)
    kind = feed_type(polarisation)
    missing: set[str] = set()
    for name in wanted:
        if name in have:
            continue
        recipe = _FROM_CORRELATIONS.get(kind, {}).get(name)
        if recipe is None:
            missing.add(name)
        else:
            missing.update(c for c in recipe[:2] if c not in have)
    return sorted(missing)


def to_stokes(vis: Visibility, wanted: Sequence[str]) -> Visibility:
    """Visibilities of the Stokes parameters (or correlations) ``wanted`` from the MS correlations.

    vis: [row, chan, corr] with polarisation e.g. ("XX", "XY", "YX", "YY"); returns [row, chan,
    len(wanted)] complex (the input's dtype), weights float32 by the rule of the module, flags
    or-ed. A name already among the correlations (e.g. "XX", or "I" of a Stokes MS) is copied.
    Raises ValueError naming the missing correlations.
    """
    wanted = tuple(wanted)
    missing = missing_correlations(vis.polarisation, wanted)
    if missing:
        raise ValueError(f"cannot form {','.join(wanted)} from correlations {','.join(vis.polarisation)}: "
                         f"{','.join(missing)} missing")
    n_rows, n_chan, _ = vis.vis.shape
    data = np.empty((n_rows, n_chan, len(wanted)), vis.vis.dtype)
    weight = np.empty((n_rows, n_chan, len(wanted)), np.float32)
    flag = np.empty((n_rows, n_chan, len(wanted)), bool)
    index = {name: k for k, name in enumerate(vis.polarisation)}
    for k, name in enumerate(wanted):
        if name in index:
            data[..., k] = vis.vis[..., index[name]]
            weight[..., k] = vis.weight[..., index[name]]
            flag[..., k] = vis.flag[..., index[name]]
            continue
        first, second, sign, scale = _FROM_CORRELATIONS[feed_type(vis.polarisation)][name]
        a, b = index[first], index[second]
        data[..., k] = (vis.vis[..., a] + sign * vis.vis[..., b]) * scale
        weight[..., k] = stokes_weight(vis.weight[..., a], vis.weight[..., b])
        flag[..., k] = vis.flag[..., a] | vis.flag[..., b]
    return replace(vis, vis=data, weight=weight, flag=flag, polarisation=wanted)


def correlations_from_stokes(stokes: np.ndarray, feeds: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """The four correlations of Stokes visibilities [..., 4] ordered (I, Q, U, V).

    feeds: "linear" -> [..., (XX, XY, YX, YY)]; "circular" -> [..., (RR, RL, LR, LL)] (the MS
    order of CORR_TYPE 9-12 and 5-8). Returns (correlations, their names).
    """
    i, q, u, v = (stokes[..., k] for k in range(4))
    if feeds == "linear":
        return np.stack([i + q, u + 1j * v, u - 1j * v, i - q], axis=-1), LINEAR
    if feeds == "circular":
        return np.stack([i + v, q + 1j * u, q - 1j * u, i - v], axis=-1), CIRCULAR
    raise ValueError(f"feeds {feeds!r}: use linear or circular")


def stokes_axis(polarisation: Sequence[str]) -> tuple[int, int]:
    """(CRVAL4, CDELT4) of a FITS STOKES axis holding these planes in order; ValueError unless they are
    evenly spaced in FITS codes (a FITS axis is linear)."""
    codes = [FITS_STOKES_CODES[p] for p in polarisation]
    step = codes[1] - codes[0] if len(codes) > 1 else 1
    if step == 0 or any(b - a != step for a, b in zip(codes, codes[1:])):
        raise ValueError(f"Stokes planes {','.join(polarisation)} are not evenly spaced on a FITS STOKES axis")
    return codes[0], step
