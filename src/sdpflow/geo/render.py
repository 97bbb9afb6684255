"""PNG web tiles: a statistic's values coloured through a palette (Pillow), RGBA, zero as the nodata colour.

A palette is a list of colours (CSS names or ``#rrggbb[aa]``, spread evenly from the low to the
high end of the range) or the name of a matplotlib colormap. Values at or below zero (no
polygons) take the nodata colour, transparent by default; the rest map linearly from
``value_range`` onto the palette, clipped at both ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from sdpflow.errors import InputError

#: Entries in a palette's lookup table.
LUT_SIZE = 256


def parse_colour(colour: str) -> tuple[int, int, int, int]:
    """RGBA (0..255) of a CSS colour name or ``#rgb``/``#rrggbb``/``#rrggbbaa``."""
    from PIL import ImageColor

    try:
        rgba = ImageColor.getcolor(colour, "RGBA")
    except ValueError:
        raise InputError(f"colour {colour!r} is not a colour name or #rrggbb[aa]: fix the palette") from None
    return tuple(int(channel) for channel in rgba)


def palette_lut(palette: str | Sequence[str]) -> np.ndarray:
    """A ``(256, 4)`` uint8 RGBA lookup table from a list of colours or a matplotlib colormap name."""
    if isinstance(palette, str):
        try:
            from matplotlib import colormaps
        except ImportError:
            raise InputError(f"palette {palette!r} names a matplotlib colormap: install matplotlib or give colours") from None
        if palette not in colormaps:
            raise InputError(f"palette {palette!r} is not a matplotlib colormap: name one (viridis, magma...) or give colours")
        return np.asarray(colormaps[palette](np.linspace(0, 1, LUT_SIZE), bytes=True), dtype=np.uint8)
    stops = np.array([parse_colour(colour) for colour in palette], dtype=float)
    if len(stops) == 0:
        raise InputError("a palette needs at least one colour")
    if len(stops) == 1:
        return np.repeat(stops.astype(np.uint8), LUT_SIZE, axis=0)
    positions = np.linspace(0, 1, len(stops))
    samples = np.linspace(0, 1, LUT_SIZE)
    channels = [np.interp(samples, positions, stops[:, channel]) for channel in range(4)]
    return np.rint(np.stack(channels, axis=1)).astype(np.uint8)


#: The asinh stretch's softening: the fraction of the range over which it is still nearly linear.
ASINH_SOFTENING = 0.02


def stretched(values: np.ndarray, value_range: tuple[float, float], stretch: str = "linear") -> np.ndarray:
    """``values`` mapped onto 0..1 over ``value_range`` (clipped): ``linear``, or ``asinh``.

    asinh: ``asinh(t / a) / asinh(1 / a)`` of the linear ``t`` with ``a`` = :data:`ASINH_SOFTENING`,
    linear near the low end and logarithmic above ``a``, as radio and optical images are shown
    (Lupton et al. 1999). A range with ``high ≤ low`` maps every value to 1.
    """
    low, high = value_range
    with np.errstate(invalid="ignore"):
        scaled = np.clip((values - low) / (high - low), 0.0, 1.0) if high > low else np.ones_like(values)
    if stretch == "asinh":
        return np.arcsinh(scaled / ASINH_SOFTENING) / np.arcsinh(1.0 / ASINH_SOFTENING)
    return scaled


def colourise(values: np.ndarray, lut: np.ndarray, value_range: tuple[float, float], nodata_colour: str,
              stretch: str = "linear", blank_at_or_below_zero: bool = True) -> np.ndarray:
    """RGBA uint8 ``(height, width, 4)`` of a ``(height, width)`` array through :func:`stretched`.

    Values that are not finite take ``nodata_colour``, and so do values ≤ 0 when
    ``blank_at_or_below_zero`` (statistics, where zero means no polygons; not images, where
    negative values are data).
    """
    scaled = stretched(values, value_range, stretch)
    index = np.clip(np.rint(np.nan_to_num(scaled) * (LUT_SIZE - 1)), 0, LUT_SIZE - 1).astype(np.intp)
    rgba = lut[index]
    blank = ~(values > 0) if blank_at_or_below_zero else ~np.isfinite(values)
    rgba[blank] = parse_colour(nodata_colour)
    return rgba


def write_png(path: Path, rgba: np.ndarray) -> None:
    """Write an RGBA tile as PNG (no timestamps or text chunks: the same pixels give the same bytes)."""
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(rgba), mode="RGBA").save(path, format="PNG", compress_level=6)


#: Points of a tile's quantile sketch (its positive values at ranks 0, 1/64, ..., 1).
SKETCH_POINTS = 65


def quantile_sketch(values: np.ndarray) -> list:
    """``[n, [q0 .. q64]]``: how many positive values an array holds and their quantiles at 65 even ranks ([0, []] if none).

    Sketches of many tiles merge into percentiles of all their values (:func:`merged_percentiles`)
    without the client reading every pixel; ranks are exact to 1/64 of a tile's positive pixels.
    """
    positive = values[values > 0]
    if positive.size == 0:
        return [0, []]
    return [int(positive.size), [float(q) for q in np.quantile(positive, np.linspace(0, 1, SKETCH_POINTS))]]


def merged_percentiles(sketches: list, percentiles: tuple[float, float]) -> list[float] | None:
    """Percentiles (0..100) of the positive values of several tiles from their sketches; None when all are empty.

    Each sketch point stands for ``n / 65`` values; the percentile is the weighted quantile
    (the value below which that share of the weight lies, interpolated between points).
    """
    points, weights = [], []
    for count, quantiles in sketches:
        if count:
            points.extend(quantiles)
            weights.extend([count / len(quantiles)] * len(quantiles))
    if not points:
        return None
    order = np.argsort(points, kind="stable")
    values, weight = np.asarray(points)[order], np.asarray(weights)[order]
    ranks = (np.cumsum(weight) - weight / 2) / weight.sum()
    return [float(np.interp(percentile / 100, ranks, values)) for percentile in percentiles]
