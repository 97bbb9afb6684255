"""Tile maths against morecantile itself, and Leaflet's EPSG4326 grid against WGS1984Quad."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("morecantile")

import morecantile  # noqa: E402
from pyproj import Transformer  # noqa: E402

from sdpflow.errors import InputError  # noqa: E402
from sdpflow.geo.tilemath import (TileIndex, check_quadtree, children, get_tms, parent, tile_bounds,  # noqa: E402
                                  tile_indices, tiles_of_bounds, tms_crs)


@pytest.mark.parametrize("tms_id", ["WGS1984Quad", "WebMercatorQuad"])
def test_tile_indices_and_bounds_equal_morecantiles(tms_id):
    tms = get_tms(tms_id)
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(-179.9, 179.9, 400), rng.uniform(-84, 84, 400)
    x, y = Transformer.from_crs("EPSG:4326", tms_crs(tms), always_xy=True).transform(lon, lat)
    for z in (0, 1, 5, 12, 17):
        columns, rows = tile_indices(tms, x, y, z)
        expected = [tms.tile(a, b, z) for a, b in zip(lon, lat)]
        assert list(columns) == [t.x for t in expected] and list(rows) == [t.y for t in expected]
        for tile in expected[:20]:
            assert tile_bounds(tms, TileIndex(z, tile.x, tile.y)) == pytest.approx(tuple(tms.xy_bounds(tile)), abs=0)


def test_tiles_of_bounds_equal_morecantiles():
    tms = get_tms("WGS1984Quad")
    for bounds, z in [((-150.2, 70.0, -150.0, 70.08), 13), ((-10.5, -3.2, 20.1, 7.7), 6), ((-179, -89, 179, 89), 2)]:
        ours = {(t.x, t.y) for t in tiles_of_bounds(tms, bounds, z)}
        theirs = {(t.x, t.y) for t in tms.tiles(*bounds, zooms=[z])}
        assert ours == theirs and len(ours) > 1


def test_wgs1984quad_has_two_tiles_at_zoom_0_and_matches_leaflet_epsg4326():
    tms = get_tms("WGS1984Quad")
    assert tile_bounds(tms, TileIndex(0, 0, 0)) == (-180.0, -90.0, 0.0, 90.0)
    assert tile_bounds(tms, TileIndex(0, 1, 0)) == (0.0, -90.0, 180.0, 90.0)
    # Leaflet 1.9 L.CRS.EPSG4326: LonLat projection, Transformation(1/180, 1, -1/180, 0.5), scale(z) = 256·2^z,
    # tile = floor(pixel / 256) with y counted down from the top.
    rng = np.random.default_rng(5)
    for lon, lat in zip(rng.uniform(-179.9, 179.9, 200), rng.uniform(-89.9, 89.9, 200)):
        for z in (0, 3, 9, 14):
            scale = 256 * 2 ** z
            leaflet = (int(np.floor(scale * (lon / 180 + 1) / 256)), int(np.floor(scale * (-lat / 180 + 0.5) / 256)))
            tile = tms.tile(lon, lat, z)
            assert leaflet == (tile.x, tile.y)


def test_parent_children_and_quadtree_check():
    tile = TileIndex(5, 13, 6)
    assert [parent(child) for child in children(tile)] == [tile] * 4
    tms = get_tms("WGS1984Quad")
    left, bottom, right, top = tile_bounds(tms, tile)
    corners = [tile_bounds(tms, child) for child in children(tile)]
    assert (corners[0][0], corners[0][3], corners[3][2], corners[3][1]) == (left, top, right, bottom)
    check_quadtree(tms, 0, 20)
    with pytest.raises(InputError, match="unknown tms_id 'Nope'"):
        get_tms("Nope")
    with pytest.raises(InputError, match="2×2"):
        check_quadtree(morecantile.tms.get("CanadianNAD83_LCC"), 0, 3)
