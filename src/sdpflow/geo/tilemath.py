"""Tile maths through morecantile: a tile's bounds, the tiles of some bounds, tile indices of points.

Coordinates are in the tile matrix set's own CRS (``tms.crs``: degrees lon/lat for WGS1984Quad,
metres for WebMercatorQuad), always in x/y (easting/northing, lon/lat) order. Tiles are
``(z, x, y)`` with ``x`` growing east and ``y`` growing south from the top-left corner, as in
OGC TileMatrixSet and morecantile.

>>> import numpy as np
>>> tms = get_tms("WGS1984Quad")                  # lon/lat degrees; 2 x 1 tiles at zoom 0
>>> matrix_size(tms, 1)                           # (columns, rows)
(4, 2)
>>> tile_bounds(tms, TileIndex(1, 0, 0))          # (left, bottom, right, top), degrees
(-180.0, 0.0, -90.0, 90.0)
>>> tiles_of_bounds(tms, (-150.2, 70.0, -150.0, 70.08), 10)
[TileIndex(z=10, x=169, y=113), TileIndex(z=10, x=170, y=113)]
>>> columns, rows = tile_indices(tms, np.array([-150.1, 10.0]), np.array([70.04, -45.0]), 10)
>>> columns.tolist(), rows.tolist(), columns.dtype  # int64 [point]
([170, 1080], [113, 768], dtype('int64'))
>>> parent(TileIndex(10, 170, 113)), children(TileIndex(0, 0, 0))[3]
(TileIndex(z=9, x=85, y=56), TileIndex(z=1, x=1, y=1))
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from sdpflow.errors import InputError


class TileIndex(NamedTuple):
    """A tile: zoom level ``z``, column ``x`` (east), row ``y`` (south)."""

    z: int
    x: int
    y: int


@lru_cache(maxsize=16)
def get_tms(tms_id: str):
    """The morecantile TileMatrixSet named ``tms_id`` (e.g. ``WGS1984Quad``, ``WebMercatorQuad``)."""
    import morecantile

    try:
        return morecantile.tms.get(tms_id)
    except Exception:  # morecantile raises its own InvalidIdentifier
        known = ", ".join(sorted(morecantile.tms.list()))
        raise InputError(f"unknown tms_id {tms_id!r}: choose one of morecantile's: {known}") from None


def tms_crs(tms):
    """The matrix set's CRS as a pyproj CRS (what :func:`sdpflow.geo.vectors.reproject` and rasterio take)."""
    from pyproj import CRS

    return CRS.from_wkt(tms.crs.to_wkt())


def tile_bounds(tms, tile: TileIndex) -> tuple[float, float, float, float]:
    """``(left, bottom, right, top)`` of a tile in the TMS CRS (x/y order)."""
    import morecantile

    bounds = tms.xy_bounds(morecantile.Tile(tile.x, tile.y, tile.z))
    return (float(bounds.left), float(bounds.bottom), float(bounds.right), float(bounds.top))


def matrix_size(tms, z: int) -> tuple[int, int]:
    """``(columns, rows)`` of the tile matrix at zoom ``z``."""
    matrix = tms.matrix(z)
    return int(matrix.matrixWidth), int(matrix.matrixHeight)


def _grid(tms, z: int) -> tuple[float, float, float, float]:
    """Origin (left, top) and tile span (width, height) at zoom ``z``, in TMS CRS units."""
    left, bottom, right, top = tile_bounds(tms, TileIndex(z, 0, 0))
    return left, top, right - left, top - bottom


def tile_indices(tms, xs: np.ndarray, ys: np.ndarray, z: int) -> tuple[np.ndarray, np.ndarray]:
    """Column and row (int64 arrays, clipped to the matrix) of the tiles holding points ``(xs, ys)`` at zoom ``z``.

    Points on a tile edge belong to the tile east / south of it, as morecantile's ``tms.tile`` assigns them.
    """
    left, top, width, height = _grid(tms, z)
    columns, rows = matrix_size(tms, z)
    x = np.floor((np.asarray(xs, dtype=float) - left) / width).astype(np.int64)
    y = np.floor((top - np.asarray(ys, dtype=float)) / height).astype(np.int64)
    return np.clip(x, 0, columns - 1), np.clip(y, 0, rows - 1)


def tiles_of_bounds(tms, bounds: tuple[float, float, float, float], z: int) -> list[TileIndex]:
    """Every tile at zoom ``z`` that the box ``(left, bottom, right, top)`` (TMS CRS) overlaps, row by row."""
    left, bottom, right, top = bounds
    x0, y0 = tile_indices(tms, np.array([left]), np.array([top]), z)
    x1, y1 = tile_indices(tms, np.array([right]), np.array([bottom]), z)
    return [TileIndex(z, x, y) for y in range(int(y0[0]), int(y1[0]) + 1) for x in range(int(x0[0]), int(x1[0]) + 1)]


def parent(tile: TileIndex) -> TileIndex:
    """The tile one zoom level up that holds ``tile`` (quadtree matrix sets)."""
    return TileIndex(tile.z - 1, tile.x // 2, tile.y // 2)


def children(tile: TileIndex) -> list[TileIndex]:
    """The 2×2 tiles one zoom level down, in order top-left, top-right, bottom-left, bottom-right."""
    z, x, y = tile.z + 1, 2 * tile.x, 2 * tile.y
    return [TileIndex(z, x, y), TileIndex(z, x + 1, y), TileIndex(z, x, y + 1), TileIndex(z, x + 1, y + 1)]


def check_quadtree(tms, z_min: int, z_max: int) -> None:
    """Refuse a matrix set whose levels ``z_min..z_max`` do not each double the one above (parents need 2×2 children)."""
    for z in range(max(z_min, 1), z_max + 1):
        (c0, r0), (c1, r1) = matrix_size(tms, z - 1), matrix_size(tms, z)
        if (c1, r1) != (2 * c0, 2 * r0) or tms.matrix(z).variableMatrixWidths:
            raise InputError(f"tms_id {tms.id}: zoom {z} does not split each tile of zoom {z - 1} in 2×2: "
                             "choose a quadtree matrix set such as WGS1984Quad or WebMercatorQuad")
