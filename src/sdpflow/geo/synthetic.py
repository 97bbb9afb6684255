"""Synthetic ice-wedge-like polygons and overlapping vector files, for the demo and the tests.

Ice-wedge polygons tile the tundra in cells of 10–30 m separated by troughs. Here: the Voronoi
cells of a jittered grid of points, clipped to the area and shrunk by a trough width, in
lon/lat degrees (EPSG:4326). Files are written through pyogrio, each holding the polygons
whose centroid lies in its (overlapping) box, so polygons in an overlap appear in several files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import shapely

from sdpflow.geo.vectors import reproject


def ice_wedge_polygons(bounds: tuple[float, float, float, float], spacing: tuple[float, float], *,
                       trough: float = 0.08, seed: int = 0) -> np.ndarray:
    """Polygons over ``bounds`` (west, south, east, north, degrees), one per grid point ``spacing`` (dlon, dlat) apart.

    Each point is jittered by up to 35% of the spacing; each cell is shrunk by ``trough`` × the smaller spacing.
    """
    west, south, east, north = bounds
    rng = np.random.default_rng(seed)
    lons = np.arange(west + spacing[0] / 2, east, spacing[0])
    lats = np.arange(south + spacing[1] / 2, north, spacing[1])
    x, y = np.meshgrid(lons, lats)
    x = x + rng.uniform(-0.35, 0.35, x.shape) * spacing[0]
    y = y + rng.uniform(-0.35, 0.35, y.shape) * spacing[1]
    # Voronoi in a frame where the cells are about square, so the trough has one width.
    aspect = spacing[0] / spacing[1]
    points = shapely.points(x.ravel() / aspect, y.ravel())
    frame = shapely.box(west / aspect, south, east / aspect, north)
    cells = np.asarray(shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(points), extend_to=frame)))
    cells = shapely.buffer(shapely.intersection(cells, frame), -trough * spacing[1], join_style="mitre")
    cells = cells[~shapely.is_empty(cells) & (shapely.get_type_id(cells) == 3)]
    cells = shapely.transform(cells, lambda xy: xy * np.array([aspect, 1.0]))
    order = np.lexsort((shapely.get_x(shapely.centroid(cells)), shapely.get_y(shapely.centroid(cells))))
    return cells[order]


def split_overlapping(polygons: np.ndarray, bounds: tuple[float, float, float, float], columns: int, rows: int,
                      overlap: float) -> list[np.ndarray]:
    """The polygons of each box of a ``columns × rows`` split of ``bounds``, boxes grown by ``overlap`` of their size."""
    west, south, east, north = bounds
    width, height = (east - west) / columns, (north - south) / rows
    centroids = shapely.centroid(polygons)
    cx, cy = shapely.get_x(centroids), shapely.get_y(centroids)
    parts = []
    for row in range(rows):
        for column in range(columns):
            left = west + column * width - overlap * width
            bottom = south + row * height - overlap * height
            inside = (cx >= left) & (cx < left + (1 + 2 * overlap) * width) & \
                     (cy >= bottom) & (cy < bottom + (1 + 2 * overlap) * height)
            parts.append(polygons[inside])
    return parts


def write_vector_file(path: Path, polygons: np.ndarray, crs: str = "EPSG:4326") -> Path:
    """Write lon/lat ``polygons`` to ``path`` (driver from its suffix), reprojected to ``crs``, with an ``area_id`` field."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    geometries = reproject(polygons, "EPSG:4326", crs)
    if path.suffix in (".parquet", ".geoparquet"):
        return _write_geoparquet(path, geometries, crs)
    import pyogrio.raw

    pyogrio.raw.write(path, shapely.to_wkb(geometries), field_data=[np.arange(len(polygons), dtype=np.int64)],
                      fields=["area_id"], crs=crs, geometry_type="Polygon")
    return path


def write_demo_files(folder: Path, polygons: np.ndarray, bounds, *, columns: int = 2, rows: int = 2,
                     overlap: float = 0.15, formats: Sequence[str] = (".gpkg", ".geojson", ".shp", ".parquet"),
                     crss: Sequence[str] = ("EPSG:4326", "EPSG:4326", "EPSG:4326", "EPSG:3857")) -> list[Path]:
    """Overlapping files ``area_00.gpkg``, ``area_01.geojson``, ``area_02.shp``, ``area_03.parquet`` (GeoParquet,
    Web Mercator)... (formats and CRSs in turn)."""
    paths = []
    for index, part in enumerate(split_overlapping(polygons, bounds, columns, rows, overlap)):
        suffix, crs = formats[index % len(formats)], crss[index % len(crss)]
        paths.append(write_vector_file(Path(folder) / f"area_{index:02d}{suffix}", part, crs))
    return paths


def _write_geoparquet(path: Path, geometries: np.ndarray, crs: str) -> Path:
    """GeoParquet 1.0: WKB ``geometry`` column, ``geo`` metadata with the CRS as PROJJSON (pyarrow)."""
    import json

    import pyarrow
    import pyarrow.parquet as parquet
    from pyproj import CRS

    geo = {"version": "1.0.0", "primary_column": "geometry",
           "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Polygon"],
                                    "crs": CRS.from_user_input(crs).to_json_dict()}}}
    table = pyarrow.table({"area_id": np.arange(len(geometries), dtype=np.int64),
                           "geometry": pyarrow.array(list(shapely.to_wkb(geometries)), type=pyarrow.binary())})
    parquet.write_table(table.replace_schema_metadata({"geo": json.dumps(geo)}), path)
    return path
