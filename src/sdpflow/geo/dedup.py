"""Deduplication where input files overlap: the same polygon delivered by two files is kept once.

Two methods, named as in PDG's viz-staging:

- **footprints**: a file's footprint is the convex hull of its polygons' centroids (grown by a
  hair, :data:`FOOTPRINT_MARGIN` of its diagonal, so that a copy of a polygon reprojected from
  another CRS still falls inside); a polygon whose centroid lies in the footprint of an earlier
  file is dropped.
- **neighbor**: a polygon is dropped when an earlier file has one whose centroid lies within
  ``centroid_tolerance`` of its own and which overlaps it by at least ``overlap_fraction`` of
  the smaller one's area.

Coordinates in any one CRS (the TMS's); tolerances in its units.
"""

from __future__ import annotations

import numpy as np
import shapely

#: Margin of a footprint, as a fraction of its diagonal.
FOOTPRINT_MARGIN = 1e-7


def footprint(geometries: np.ndarray):
    """The footprint of a file's polygons (None when it has none)."""
    if len(geometries) == 0:
        return None
    hull = shapely.convex_hull(shapely.multipoints(shapely.centroid(geometries)))
    minx, miny, maxx, maxy = shapely.bounds(hull)
    return shapely.buffer(hull, FOOTPRINT_MARGIN * max(float(np.hypot(maxx - minx, maxy - miny)), 1e-300))


def outside_footprints(geometries: np.ndarray, footprints) -> np.ndarray:
    """True for each geometry whose centroid lies in none of ``footprints`` (None entries ignored)."""
    centroids = shapely.centroid(geometries)
    x, y = shapely.get_x(centroids), shapely.get_y(centroids)
    keep = np.ones(len(geometries), dtype=bool)
    for area in footprints:
        if area is not None:
            keep &= ~shapely.intersects_xy(area, x, y)  # the boundary counts as inside
    return keep


def not_neighbours(geometries: np.ndarray, earlier: np.ndarray, centroid_tolerance: float,
                   overlap_fraction: float) -> np.ndarray:
    """True for each geometry with no duplicate among ``earlier`` (centroids within the tolerance, overlap enough)."""
    keep = np.ones(len(geometries), dtype=bool)
    if len(geometries) == 0 or len(earlier) == 0:
        return keep
    tree = shapely.STRtree(shapely.centroid(earlier))
    mine, theirs = tree.query(shapely.centroid(geometries), predicate="dwithin", distance=centroid_tolerance)
    if len(mine) == 0:
        return keep
    shared = shapely.area(shapely.intersection(geometries[mine], earlier[theirs]))
    smaller = np.minimum(shapely.area(geometries[mine]), shapely.area(earlier[theirs]))
    duplicate = shared >= overlap_fraction * smaller
    keep[mine[duplicate]] = False
    return keep
