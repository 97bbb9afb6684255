"""Vector polygons: reading files (pyogrio), reprojection to a TMS CRS, simplification, tile assignment.

Geometries are numpy object arrays of shapely geometries. Reprojection goes through pyproj in
x/y (lon/lat) axis order. A polygon is *counted* in the max-zoom tile holding its centroid and
*covers* every tile its bounding box overlaps (the rasteriser clips it exactly).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely

from sdpflow.errors import DataError
from sdpflow.geo.tilemath import TileIndex, tile_indices


def read_polygons(path: str | Path) -> tuple[np.ndarray, str | None]:
    """The polygons of a vector file (GeoPackage, Shapefile, GeoJSON, FlatGeobuf, GeoParquet) and its CRS (WKT or None).

    Non-polygonal and empty geometries are dropped. Raises :class:`DataError` naming the file when it cannot be read.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            wkb, crs = _read_geoparquet(path)
        else:
            import pyogrio.raw

            meta, _, wkb, _ = pyogrio.raw.read(path, read_geometry=True, columns=[])
            crs = meta.get("crs")
        geometries = shapely.from_wkb(wkb)
    except DataError:
        raise
    except Exception as error:  # pyogrio, GDAL and shapely raise many kinds
        raise DataError(f"{path}: cannot be read as a vector file ({type(error).__name__}: {str(error)[:200]}); "
                        "check or replace the file") from None
    geometries = np.asarray(geometries, dtype=object)
    polygonal = np.isin(shapely.get_type_id(geometries), (3, 6)) & ~shapely.is_empty(geometries)
    return geometries[polygonal], crs


def _read_geoparquet(path: Path) -> tuple[np.ndarray, str | None]:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise DataError(f"{path}: GeoParquet needs pyarrow: pip install pyarrow, or convert the file to GeoPackage") from None
    import json

    table = parquet.read_table(path)
    geo = json.loads((table.schema.metadata or {}).get(b"geo", b"{}"))
    column = geo.get("primary_column", "geometry")
    crs = geo.get("columns", {}).get(column, {}).get("crs", "OGC:CRS84")
    return np.asarray(table.column(column).to_pylist(), dtype=object), (json.dumps(crs) if isinstance(crs, dict) else crs)


def reproject(geometries: np.ndarray, source_crs, target_crs) -> np.ndarray:
    """``geometries`` from ``source_crs`` to ``target_crs`` (anything pyproj takes; None means lon/lat WGS 84)."""
    from pyproj import CRS, Transformer

    source = CRS.from_user_input(source_crs) if source_crs else CRS.from_epsg(4326)
    target = CRS.from_user_input(target_crs)
    if source == target:
        return geometries
    transformer = Transformer.from_crs(source, target, always_xy=True)

    def move(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometries, move)


def repair(geometries: np.ndarray) -> np.ndarray:
    """Invalid polygons made valid (a bow-tie becomes its two triangles); what is left without area is dropped."""
    geometries = np.asarray(geometries, dtype=object)
    invalid = ~shapely.is_valid(geometries)
    if invalid.any():
        fixed = shapely.make_valid(geometries[invalid])
        for index, geometry in enumerate(fixed):
            if shapely.get_type_id(geometry) == 7:  # a collection: keep its polygonal parts
                parts = [part for part in shapely.get_parts(geometry) if shapely.get_type_id(part) in (3, 6)]
                fixed[index] = shapely.union_all(parts) if parts else shapely.Polygon()
        geometries = geometries.copy()
        geometries[invalid] = fixed
    keep = np.isin(shapely.get_type_id(geometries), (3, 6)) & ~shapely.is_empty(geometries)
    return geometries[keep]


def simplify(geometries: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker simplification, topology preserved; ``tolerance`` in TMS CRS units (0: unchanged)."""
    if tolerance <= 0:
        return geometries
    simplified = shapely.simplify(geometries, tolerance, preserve_topology=True)
    return simplified[~shapely.is_empty(simplified)]


def assign_to_tiles(tms, geometries: np.ndarray, z: int) -> dict[TileIndex, tuple[np.ndarray, np.ndarray]]:
    """For each zoom-``z`` tile touched: indices of the geometries overlapping its box, and whether each is counted there.

    Counted: the geometry's centroid lies in that tile (each geometry is counted in exactly one tile).
    """
    if len(geometries) == 0:
        return {}
    bounds = shapely.bounds(geometries)
    x0, y0 = tile_indices(tms, bounds[:, 0], bounds[:, 3], z)  # top-left tile
    x1, y1 = tile_indices(tms, bounds[:, 2], bounds[:, 1], z)  # bottom-right tile
    centroids = shapely.centroid(geometries)
    cx, cy = tile_indices(tms, shapely.get_x(centroids), shapely.get_y(centroids), z)
    # one (geometry, tile) pair per tile of each bounding box, without a Python loop per geometry
    columns, rows = x1 - x0 + 1, y1 - y0 + 1
    spans = columns * rows
    geometry = np.repeat(np.arange(len(geometries)), spans)
    offset = np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans)
    tile_x = x0[geometry] + offset % columns[geometry]
    tile_y = y0[geometry] + offset // columns[geometry]
    order = np.lexsort((geometry, tile_x, tile_y))  # tiles row by row, geometries in file order
    geometry, tile_x, tile_y = geometry[order], tile_x[order], tile_y[order]
    starts = np.flatnonzero(np.r_[True, (np.diff(tile_x) != 0) | (np.diff(tile_y) != 0)])
    assigned = {}
    for start, stop in zip(starts, np.r_[starts[1:], len(geometry)]):
        tile = TileIndex(z, int(tile_x[start]), int(tile_y[start]))
        indices = geometry[start:stop]
        assigned[tile] = (indices, (cx[indices] == tile.x) & (cy[indices] == tile.y))
    return dict(sorted(assigned.items()))


def save_contribution(path: Path, geometries: np.ndarray, counted: np.ndarray) -> None:
    """Write one file's polygons for one tile: WKB bytes, their offsets and the counted flags (``.npz``)."""
    blobs = shapely.to_wkb(geometries, output_dimension=2)
    offsets = np.cumsum([0] + [len(blob) for blob in blobs]).astype(np.int64)
    buffer = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    with open(path, "wb") as handle:
        np.savez(handle, wkb=buffer, offsets=offsets, counted=np.asarray(counted, dtype=bool))


def load_contribution(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Polygons and counted flags written by :func:`save_contribution`."""
    try:
        with np.load(path) as data:
            buffer, offsets, counted = data["wkb"].tobytes(), data["offsets"], data["counted"]
    except Exception as error:  # a truncated or foreign file
        raise DataError(f"{path}: not a readable staged tile ({error}); rerun the stage stage") from None
    blobs = np.array([buffer[a:b] for a, b in zip(offsets[:-1], offsets[1:])], dtype=object)
    return shapely.from_wkb(blobs), counted
