"""Exact coverage fractions (against shapely's intersection areas) and centroid counts."""

from __future__ import annotations

import numpy as np
import pytest

shapely = pytest.importorskip("shapely")
from shapely.geometry import MultiPolygon, Polygon, box  # noqa: E402

from sdpflow.geo.coverage import centroid_counts, coverage_fraction  # noqa: E402

GRID = (0.0, 0.0, 10.0, 10.0)  # 10×10 pixels of 1×1


def truth(geometry, bounds, width, height) -> np.ndarray:
    """Area fraction of each pixel inside ``geometry``, pixel by pixel with shapely (row 0 at the top)."""
    left, bottom, right, top = bounds
    dx, dy = (right - left) / width, (top - bottom) / height
    return np.array([[shapely.intersection(geometry, box(left + i * dx, top - (j + 1) * dy, left + (i + 1) * dx,
                                                         top - j * dy)).area / (dx * dy)
                      for i in range(width)] for j in range(height)])


def test_a_square_on_k_pixels_gives_k_ones_and_a_half_pixel_strip_gives_halves():
    grid = coverage_fraction([box(2, 3, 5, 7)], GRID, 10, 10)
    assert np.count_nonzero(grid) == 12 and np.all(grid[grid > 0] == 1.0)
    assert np.all(grid[3:7, 2:5] == 1.0)  # rows 3..6 from the top are y 7..3
    strip = coverage_fraction([box(2, 3, 5, 3.5)], GRID, 10, 10)
    assert np.unique(strip).tolist() == [0.0, 0.5] and strip.sum() == 1.5 and np.all(strip[6, 2:5] == 0.5)
    vertical = coverage_fraction([box(4.25, 0, 4.75, 10)], GRID, 10, 10)
    assert np.all(vertical[:, 4] == 0.5) and vertical.sum() == 5.0
    # the same pixel-aligned square on a tile in degrees (not 1×1 pixels): still exactly k ones
    degrees = (-150.0, 70.0, -149.989013671875, 70.010986328125)
    size = (degrees[2] - degrees[0]) / 256
    square = box(degrees[0] + 10 * size, degrees[3] - 30 * size, degrees[0] + 20 * size, degrees[3] - 25 * size)
    ones = coverage_fraction([square], degrees, 256, 256)
    assert np.count_nonzero(ones) == 50 and ones.sum() == pytest.approx(50, abs=1e-9)
    assert np.abs(ones[25:30, 10:20] - 1).max() < 1e-9


def test_holes_multipolygons_and_either_orientation():
    with_hole = box(2, 3, 5, 7).difference(box(3, 4, 4, 5))
    assert coverage_fraction([with_hole], GRID, 10, 10).sum() == 11.0
    clockwise = Polygon([(1, 1), (1, 3), (3, 3), (3, 1)])
    assert coverage_fraction([clockwise], GRID, 10, 10).sum() == 4.0
    pair = MultiPolygon([box(0, 0, 1, 1), box(8.5, 8.5, 9.5, 9.5)])
    grid = coverage_fraction([pair], GRID, 10, 10)
    assert grid[9, 0] == 1.0 and grid[0:2, 8:10].tolist() == [[0.25, 0.25], [0.25, 0.25]]


@pytest.mark.parametrize("seed", range(6))
def test_random_polygons_equal_shapely_intersection_areas(seed):
    rng = np.random.default_rng(seed)
    blob = shapely.buffer(shapely.Point(rng.uniform(0, 10, 2)), rng.uniform(0.5, 4), quad_segs=7)
    hull = shapely.convex_hull(shapely.MultiPoint(rng.uniform(-2, 12, (8, 2))))  # partly outside the grid
    geometry = shapely.union(blob, hull).difference(shapely.buffer(shapely.Point(rng.uniform(2, 8, 2)), 1.0))
    bounds = (0.0, 0.0, 10.0, 5.0)  # pixels 1 wide, 0.5 high
    ours = coverage_fraction([geometry], bounds, 10, 10, clip=False)
    assert np.abs(ours - truth(geometry, bounds, 10, 10)).max() < 1e-12
    assert ours.sum() * 0.5 == pytest.approx(shapely.intersection(geometry, box(*bounds)).area, rel=1e-12)


def test_overlaps_add_then_clip_and_empty_input():
    two = [box(1, 1, 2, 2), box(1, 1, 2, 2)]
    assert coverage_fraction(two, GRID, 10, 10, clip=False).max() == 2.0
    assert coverage_fraction(two, GRID, 10, 10).max() == 1.0
    assert coverage_fraction([], GRID, 10, 10).sum() == 0.0


def test_centroid_counts_place_each_polygon_once():
    polygons = [box(0.2, 9.2, 0.8, 9.8), box(0.1, 9.1, 0.5, 9.5), box(5, 5, 7, 7), box(20, 20, 21, 21)]
    counts = centroid_counts(polygons, GRID, 10, 10)
    assert counts[0, 0] == 2 and counts[4, 6] == 1 and counts.sum() == 3  # (6, 6): top-left corner of pixel (4, 6)
