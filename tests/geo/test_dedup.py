"""Deduplication of overlapping files: footprints and neighbours, with copies reprojected through another CRS."""

from __future__ import annotations

import numpy as np
import pytest

shapely = pytest.importorskip("shapely")

from sdpflow.geo.dedup import footprint, not_neighbours, outside_footprints  # noqa: E402
from sdpflow.geo.synthetic import ice_wedge_polygons, split_overlapping  # noqa: E402
from sdpflow.geo.vectors import reproject  # noqa: E402

BOUNDS = (-150.2, 70.0, -150.16, 70.02)


@pytest.fixture(scope="module")
def halves():
    polygons = ice_wedge_polygons(BOUNDS, (0.0012, 0.0004), seed=2)
    west, east = split_overlapping(polygons, BOUNDS, 2, 1, 0.25)
    # the east file went through Web Mercator and back, as a file in another CRS would
    east = reproject(reproject(east, "EPSG:4326", "EPSG:3857"), "EPSG:3857", "EPSG:4326")
    return polygons, west, east


def test_footprints_keep_each_polygon_once(halves):
    polygons, west, east = halves
    assert len(west) + len(east) > len(polygons) + 100  # they overlap
    kept = east[outside_footprints(east, [footprint(west)])]
    assert len(west) + len(kept) == len(polygons)
    assert outside_footprints(east, [None]).all() and footprint(np.zeros(0, dtype=object)) is None


def test_neighbours_keep_each_polygon_once_and_spare_true_neighbours(halves):
    polygons, west, east = halves
    kept = east[not_neighbours(east, west, centroid_tolerance=1e-7, overlap_fraction=0.5)]
    assert len(west) + len(kept) == len(polygons)
    # distinct cells (centroids within the tolerance, areas apart) are not duplicates
    assert not_neighbours(polygons[0::2], polygons[1::2], centroid_tolerance=0.01, overlap_fraction=0.5).all()
    shifted = shapely.affinity.translate(polygons[0], 0.0002, 0)  # overlaps the original by about 80%
    assert not not_neighbours(np.array([shifted]), polygons[:1], 0.0003, 0.5)[0]
    assert not_neighbours(np.array([shifted]), polygons[:1], 0.0003, 0.95)[0]
