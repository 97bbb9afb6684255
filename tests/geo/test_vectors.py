"""Reading vector files, reprojection, tile assignment and staged contributions."""

from __future__ import annotations

import numpy as np
import pytest

shapely = pytest.importorskip("shapely")
pytest.importorskip("pyogrio")

from sdpflow.errors import DataError  # noqa: E402
from sdpflow.geo.synthetic import ice_wedge_polygons, write_vector_file  # noqa: E402
from sdpflow.geo.tilemath import TileIndex, get_tms, tile_bounds, tms_crs  # noqa: E402
from sdpflow.geo.vectors import (assign_to_tiles, load_contribution, read_polygons, repair,  # noqa: E402
                                 reproject, save_contribution, simplify)

BOUNDS = (-150.2, 70.0, -150.17, 70.01)


@pytest.fixture(scope="module")
def polygons():
    return ice_wedge_polygons(BOUNDS, (0.0012, 0.0004), seed=9)


@pytest.mark.parametrize("suffix, crs", [(".gpkg", "EPSG:4326"), (".shp", "EPSG:3338"), (".geojson", "EPSG:3857"),
                                         (".parquet", "EPSG:32606")])
def test_files_in_any_crs_come_back_in_lon_lat(polygons, tmp_path, suffix, crs):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    path = write_vector_file(tmp_path / f"cells{suffix}", polygons, crs)
    read, file_crs = read_polygons(path)
    assert len(read) == len(polygons)
    back = reproject(read, file_crs, tms_crs(get_tms("WGS1984Quad")))
    shift = np.abs(shapely.get_coordinates(back) - shapely.get_coordinates(polygons)).max()
    assert shift < 1e-9  # degrees: about 0.1 mm


def test_an_unreadable_file_is_named(tmp_path):
    broken = tmp_path / "broken.gpkg"
    broken.write_text("not a geopackage")
    with pytest.raises(DataError, match=rf"^{broken}: cannot be read as a vector file .*check or replace the file$"):
        read_polygons(broken)
    with pytest.raises(DataError, match="missing.geojson"):
        read_polygons(tmp_path / "missing.geojson")


def test_each_polygon_counted_in_one_tile_and_covering_all_it_touches(polygons):
    tms = get_tms("WGS1984Quad")
    assigned = assign_to_tiles(tms, polygons, 15)
    counted = np.concatenate([indices[flags] for indices, flags in assigned.values()])
    assert np.array_equal(np.sort(counted), np.arange(len(polygons)))  # every polygon counted exactly once
    for tile, (indices, _) in assigned.items():
        box = shapely.box(*tile_bounds(tms, tile))
        touching = np.flatnonzero(shapely.intersects(polygons, box))
        assert set(touching) <= set(indices.tolist())  # nothing that overlaps the tile is missing
    assert sum(len(indices) for indices, _ in assigned.values()) > len(polygons)  # some straddle tile edges
    assert all(isinstance(tile, TileIndex) and tile.z == 15 for tile in assigned)


def test_contributions_round_trip_and_simplify_keeps_polygons(polygons, tmp_path):
    flags = np.arange(len(polygons)) % 3 == 0
    save_contribution(tmp_path / "t.npz", polygons, flags)
    back, back_flags = load_contribution(tmp_path / "t.npz")
    assert all(shapely.equals_exact(back, polygons, 0)) and np.array_equal(back_flags, flags)
    simpler = simplify(polygons, 0.0001)
    assert len(simpler) == len(polygons) and shapely.get_num_coordinates(simpler).sum() < \
        shapely.get_num_coordinates(polygons).sum()
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.npz: not a readable staged tile"):
        load_contribution(tmp_path / "bad.npz")


def test_repair_keeps_both_halves_of_a_bow_tie_and_drops_what_has_no_area():
    bow_tie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])  # two triangles of area 1 crossing at (1, 1)
    flat = shapely.Polygon([(0, 0), (1, 1), (2, 2)])
    good = shapely.box(5, 5, 6, 6)
    repaired = repair(np.array([bow_tie, flat, good], dtype=object))
    assert len(repaired) == 2 and all(shapely.is_valid(repaired))
    assert shapely.area(repaired).tolist() == pytest.approx([2.0, 1.0])
