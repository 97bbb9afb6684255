"""Exact coverage fractions and centroid counts of polygons on a pixel grid.

The grid is a tile: ``(left, bottom, right, top)`` in the polygons' CRS, ``width × height``
pixels, row 0 at the top (as in a GeoTIFF or PNG). The coverage of a pixel is the area of the
polygons inside it divided by the pixel's area, computed exactly (to float rounding), not by
sampling: by Green's theorem, the area of a polygon inside pixel column ``i`` and row band
``j`` is a sum over its edges of the integral of ``clamp(v - j, 0, 1)`` along ``du`` (pixel
units, ``v`` upwards), which has a closed form for a straight edge. Each edge is cut at column
boundaries; rows fully below a piece get its whole length (a cumulative sum up each column),
the few rows it crosses get the closed form. Cost: edges × pixels they cross, plus the grid.
"""

from __future__ import annotations

import numpy as np
import shapely

#: Below this change of v along an edge piece (pixels), the piece is treated as level.
_LEVEL = 1e-12


def _antiderivative(t: np.ndarray) -> np.ndarray:
    """G(t) = ∫_0^t clamp(s, 0, 1) ds."""
    return np.where(t <= 0, 0.0, np.where(t >= 1, t - 0.5, 0.5 * t * t))


def _rings(polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates (n, 2), ring offsets and ring roles (+1 exterior, −1 hole) of polygons and multipolygons."""
    parts = shapely.get_parts(np.asarray(polygons, dtype=object))
    parts = parts[shapely.get_type_id(parts) == 3]  # polygons only (lines and points cover nothing)
    parts = parts[~shapely.is_empty(parts)]
    if len(parts) == 0:
        return np.zeros((0, 2)), np.zeros(1, dtype=np.int64), np.zeros(0)
    _, coords, (ring_offsets, polygon_offsets) = shapely.to_ragged_array(parts)
    roles = -np.ones(len(ring_offsets) - 1)
    roles[polygon_offsets[:-1]] = 1.0  # the first ring of each polygon is its exterior
    return coords[:, :2], ring_offsets, roles


def coverage_fraction(
    polygons, bounds: tuple[float, float, float, float], width: int, height: int, *, clip: bool = True,
) -> np.ndarray:
    """Fraction (0..1, float64, shape ``(height, width)``, row 0 at the top) of each pixel covered by ``polygons``.

    ``polygons``: shapely (multi)polygons in the CRS of ``bounds``. Overlapping polygons add up;
    with ``clip`` the sum is clipped to 1 (deduplicate overlapping inputs first).
    """
    left, bottom, right, top = bounds
    coords, ring_offsets, roles = _rings(polygons)
    area = np.zeros(height * width)
    if len(coords):
        u = (coords[:, 0] - left) * (width / (right - left))
        v = (coords[:, 1] - bottom) * (height / (top - bottom))
        area = _edge_integrals(u, v, ring_offsets, roles, width, height)
    grid = area.reshape(width, height).T[::-1]  # columns × rows-from-bottom → rows from the top
    if clip:
        grid = np.clip(grid, 0.0, 1.0)
    return np.ascontiguousarray(grid)


def _edge_integrals(u, v, ring_offsets, roles, width: int, height: int) -> np.ndarray:
    """Signed area of every ring inside each pixel, summed; flat array indexed ``column * height + row``."""
    ring_of_vertex = np.repeat(np.arange(len(roles)), np.diff(ring_offsets))
    starts = np.ones(len(u), dtype=bool)
    starts[ring_offsets[1:] - 1] = False  # the last vertex of a ring closes it: no edge starts there
    first = np.flatnonzero(starts)
    u0, v0, u1, v1 = u[first], v[first], u[first + 1], v[first + 1]
    ring = ring_of_vertex[first]
    # Orientation: along a counter-clockwise ring the integrals sum to −area; exteriors add, holes subtract.
    shoelace = np.bincount(ring, u0 * v1 - u1 * v0, minlength=len(roles))
    weight_of_ring = -np.sign(shoelace) * roles
    edge_weight = weight_of_ring[ring] * np.sign(u1 - u0)
    keep = (u0 != u1) & (edge_weight != 0)
    u0, v0, u1, v1, edge_weight = u0[keep], v0[keep], u1[keep], v1[keep], edge_weight[keep]
    lo_u, hi_u = np.minimum(u0, u1), np.maximum(u0, u1)
    # One piece per (edge, pixel column) it spans, inside the grid.
    first_col = np.clip(np.floor(lo_u), 0, width).astype(np.int64)
    last_col = np.clip(np.ceil(hi_u) - 1, -1, width - 1).astype(np.int64)
    spans = np.maximum(last_col - first_col + 1, 0)
    edge = np.repeat(np.arange(len(u0)), spans)
    column = np.repeat(first_col, spans) + (np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans))
    a = np.maximum(lo_u[edge], column)
    b = np.minimum(hi_u[edge], column + 1)
    slope = (v1 - v0)[edge] / (u1 - u0)[edge]
    va = v0[edge] + slope * (a - u0[edge])
    vb = v0[edge] + slope * (b - u0[edge])
    length = (b - a) * edge_weight[edge]  # signed by direction and ring role
    # Rows fully below the piece: the whole length (a difference up the column, then a cumulative sum).
    full_rows = np.clip(np.floor(np.minimum(va, vb)), 0, height).astype(np.int64)
    difference = np.bincount(column * (height + 1), length, minlength=width * (height + 1))
    difference -= np.bincount(column * (height + 1) + full_rows, length, minlength=width * (height + 1))
    area = np.cumsum(difference.reshape(width, height + 1), axis=1)[:, :height]
    # Rows the piece crosses: the closed form of ∫ clamp(v - row, 0, 1) du.
    lo_row = np.floor(np.minimum(va, vb)).astype(np.int64)
    hi_row = np.floor(np.maximum(va, vb)).astype(np.int64)
    lo_row_c, hi_row_c = np.clip(lo_row, 0, height), np.clip(hi_row, -1, height - 1)
    crossings = np.maximum(hi_row_c - lo_row_c + 1, 0)
    piece = np.repeat(np.arange(len(column)), crossings)
    row = np.repeat(lo_row_c, crossings) + (np.arange(crossings.sum()) - np.repeat(np.cumsum(crossings) - crossings, crossings))
    pa, pb = va[piece] - row, vb[piece] - row
    rise = pb - pa
    level = np.abs(rise) < _LEVEL
    mean = np.where(level, np.clip(0.5 * (pa + pb), 0, 1),
                    (_antiderivative(pb) - _antiderivative(pa)) / np.where(level, 1.0, rise))
    flat = np.ascontiguousarray(area).reshape(-1)
    flat += np.bincount(column[piece] * height + row, mean * length[piece], minlength=width * height)
    return flat


def centroid_counts(polygons, bounds: tuple[float, float, float, float], width: int, height: int) -> np.ndarray:
    """Polygons whose centroid lies in each pixel (float32, ``(height, width)``, row 0 at the top).

    A centroid on a pixel edge counts in the pixel east / south of it; centroids outside ``bounds`` are not counted.
    """
    left, bottom, right, top = bounds
    centroids = shapely.centroid(np.asarray(polygons, dtype=object))
    x, y = shapely.get_x(centroids), shapely.get_y(centroids)
    column = np.floor((x - left) * (width / (right - left))).astype(np.int64)
    row = np.floor((top - y) * (height / (top - bottom))).astype(np.int64)
    inside = (column >= 0) & (column < width) & (row >= 0) & (row < height)
    counts = np.bincount(row[inside] * width + column[inside], minlength=width * height)
    return counts.reshape(height, width).astype(np.float32)
