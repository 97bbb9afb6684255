"""Parents from 2×2 children (exact against direct rasterisation), palettes and PNGs, GeoTIFF georeferencing."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

shapely = pytest.importorskip("shapely")
rasterio = pytest.importorskip("rasterio")

from sdpflow.errors import InputError  # noqa: E402
from sdpflow.geo.coverage import centroid_counts, coverage_fraction  # noqa: E402
from sdpflow.geo.geotiff import read_geotiff, write_geotiff  # noqa: E402
from sdpflow.geo.pyramid import parent_from_children  # noqa: E402
from sdpflow.geo.render import colourise, palette_lut, write_png  # noqa: E402
from sdpflow.geo.tilemath import TileIndex, children, get_tms, tile_bounds  # noqa: E402


def _polygons(bounds, count, seed):
    left, bottom, right, top = bounds
    rng = np.random.default_rng(seed)
    centres = rng.uniform((left, bottom), (right, top), (count, 2))
    return np.array([shapely.buffer(shapely.Point(c), rng.uniform(0.002, 0.02) * (right - left), quad_segs=4)
                     for c in centres], dtype=object)


def test_parent_equals_direct_rasterisation_one_zoom_up():
    tms, size = get_tms("WGS1984Quad"), 32
    tile = TileIndex(9, 150, 100)
    polygons = _polygons(tile_bounds(tms, tile), 60, seed=2)
    kids = []
    for child in children(tile):
        bounds = tile_bounds(tms, child)
        kids.append(np.stack([centroid_counts(polygons, bounds, size, size),
                              coverage_fraction(polygons, bounds, size, size, clip=False)]))
    kids[2] = kids[2] if kids[2].any() else None
    parent = parent_from_children(kids, ["sum", "mean"], size)
    bounds = tile_bounds(tms, tile)
    assert np.array_equal(parent[0], centroid_counts(polygons, bounds, size, size))
    assert parent[0].sum() == 60  # every polygon's centroid lies in the tile: counted once
    assert np.abs(parent[1] - coverage_fraction(polygons, bounds, size, size, clip=False)).max() < 1e-6


def test_absent_children_are_zeros():
    one = np.ones((2, 4, 4), dtype=np.float32)
    parent = parent_from_children([one, None, None, None], ["sum", "mean"], 4)
    assert parent[0, :2, :2].tolist() == [[4, 4], [4, 4]] and parent[0, 2:].sum() == 0 and parent[0, :, 2:].sum() == 0
    assert parent[1, :2, :2].tolist() == [[1, 1], [1, 1]] and parent[1].sum() == 4
    with pytest.raises(ValueError, match="shape"):
        parent_from_children([np.ones((2, 3, 3))] * 4, ["sum", "mean"], 4)


def test_palettes_nodata_and_deterministic_pngs(tmp_path):
    lut = palette_lut(["#000000", "#ff0000"])
    assert lut[0].tolist() == [0, 0, 0, 255] and lut[-1].tolist() == [255, 0, 0, 255] and lut[128][0] in (128, 129)
    assert palette_lut("viridis").shape == (256, 4)
    with pytest.raises(InputError, match="not a matplotlib colormap"):
        palette_lut("no-such-map")
    with pytest.raises(InputError, match="not a colour"):
        palette_lut(["#zzzzzz"])
    values = np.array([[0.0, 1.0], [5.0, 100.0]])
    rgba = colourise(values, lut, (1.0, 5.0), "#ffffff00")
    assert rgba[0, 0].tolist() == [255, 255, 255, 0] and rgba[0, 1].tolist() == [0, 0, 0, 255]
    assert rgba[1, 0].tolist() == [255, 0, 0, 255] and rgba[1, 1].tolist() == [255, 0, 0, 255]  # clipped
    write_png(tmp_path / "a.png", rgba)
    write_png(tmp_path / "b.png", rgba.copy())
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), rgba)


def test_geotiff_georeferencing_and_same_bytes(tmp_path):
    tms, size = get_tms("WGS1984Quad"), 256
    tile = TileIndex(12, 682, 455)
    bounds = tile_bounds(tms, tile)
    pixel = (bounds[2] - bounds[0]) / size
    # a polygon on one pixel: column 100, row 40
    x0, y0 = bounds[0] + 100 * pixel, bounds[3] - 41 * pixel
    square = shapely.box(x0, y0, x0 + pixel, y0 + pixel)
    bands = np.stack([centroid_counts([square], bounds, size, size), coverage_fraction([square], bounds, size, size)])
    write_geotiff(tmp_path / "t.tif", bands, bounds, tms.rasterio_crs, ["polygon_count", "coverage"])
    write_geotiff(tmp_path / "u.tif", bands, bounds, tms.rasterio_crs, ["polygon_count", "coverage"])
    assert hashlib.sha256((tmp_path / "t.tif").read_bytes()).digest() == \
        hashlib.sha256((tmp_path / "u.tif").read_bytes()).digest()
    with rasterio.open(tmp_path / "t.tif") as dataset:
        assert dataset.crs.to_epsg() == 4326 and dataset.descriptions == ("polygon_count", "coverage")
        assert dataset.profile["compress"] == "deflate" and dataset.block_shapes == [(256, 256)] * 2
        row, column = np.argwhere(dataset.read(2) == 1.0)[0]
        assert (row, column) == (40, 100)
        centre = dataset.xy(row, column)  # the pixel centre, in degrees
        assert centre == pytest.approx((square.centroid.x, square.centroid.y), abs=1e-12)
        assert "TIFFTAG_DATETIME" not in dataset.tags()
    assert np.array_equal(read_geotiff(tmp_path / "t.tif"), bands)
