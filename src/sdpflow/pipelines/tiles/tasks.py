"""What the web-tiles pipeline's items do on the workers: one input file, one tile, one PNG set.

Each function takes an :class:`~sdpflow.engine.fanout.ItemContext` whose payload is a plain
tuple (pickled with the item), writes its files with ``item.output`` (committed atomically by
the engine when the item succeeds) and returns its result row. Run-folder layout:

- ``staged/{file}/{z}/{x}/{y}.npz`` one file's polygons for one z_max tile; ``staged/{file}/index.json``
  the tiles it touched; ``staged/{file}/footprint.wkb`` its footprint (for deduplication)
- ``geotiff/{z}/{x}/{y}.tif`` one band per statistic; ``stats/{z}/{x}/{y}.json`` its row and each band's
  quantile sketch (:func:`sdpflow.geo.render.quantile_sketch`)
- ``web/{statistic}/{z}/{x}/{y}.png``
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from sdpflow.geo.coverage import centroid_counts, coverage_fraction
from sdpflow.geo.dedup import footprint, not_neighbours, outside_footprints
from sdpflow.geo.geotiff import read_geotiff, write_geotiff
from sdpflow.geo.pyramid import parent_from_children
from sdpflow.geo.render import colourise, palette_lut, quantile_sketch, write_png
from sdpflow.geo.tilemath import TileIndex, children, get_tms, tile_bounds, tms_crs
from sdpflow.geo.vectors import (assign_to_tiles, load_contribution, read_polygons, repair, reproject, save_contribution,
                                 simplify)


def tile_path(folder: str, tile: TileIndex, suffix: str) -> str:
    return f"{folder}/{tile.z}/{tile.x}/{tile.y}{suffix}"


# -- stage: one input file -------------------------------------------------------------------
def stage_file(item) -> dict[str, Any]:
    """Read one vector file, reproject it to the TMS CRS, simplify, and split it into z_max tiles."""
    file_key, path, settings = item.payload
    tms = get_tms(settings["tms_id"])
    geometries, crs = read_polygons(path)
    geometries = repair(simplify(reproject(geometries, crs, tms_crs(tms)), settings["simplify_tolerance"]))
    z_max = settings["z_max"]
    assigned = assign_to_tiles(tms, geometries, z_max)
    for tile, (indices, counted) in assigned.items():
        save_contribution(item.output(tile_path(f"staged/{file_key}", tile, ".npz")), geometries[indices], counted)
    area = footprint(geometries)
    item.output(f"staged/{file_key}/footprint.wkb").write_bytes(shapely.to_wkb(area) if area is not None else b"")
    index = {"file": str(path), "polygons": int(len(geometries)), "tiles": [list(tile) for tile in assigned]}
    item.output(f"staged/{file_key}/index.json").write_text(json.dumps(index))
    return {"file": str(path), "polygons": int(len(geometries)), "tiles": len(assigned)}


def _footprint(out_dir: str, file_key: str):
    """A file's footprint (:func:`sdpflow.geo.dedup.footprint`), None when it has none (no polygons, or failed)."""
    path = Path(out_dir, f"staged/{file_key}/footprint.wkb")
    if not path.exists():
        return None
    stat = path.stat()
    return _read_footprint(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=4096)
def _read_footprint(path: str, size: int, mtime_ns: int):
    """A footprint file's geometry, read once per worker (size and time in the key: a rewritten file is read again)."""
    blob = Path(path).read_bytes()
    return shapely.from_wkb(blob) if blob else None


def _tile_polygons(item, tile: TileIndex, file_keys: list[str], settings: dict[str, Any]):
    """The tile's polygons from its files (``file_keys``, in input order) and their counted flags.

    Deduplication (:mod:`sdpflow.geo.dedup`) compares each file with the earlier files that
    also have polygons in this tile (a file with nothing here cannot stand in for it).
    """
    method = settings["deduplicate"]
    polygons: list[np.ndarray] = []
    flags: list[np.ndarray] = []
    for position, file_key in enumerate(file_keys):
        geometries, counted = load_contribution(item.product(tile_path(f"staged/{file_key}", tile, ".npz")))
        if method == "footprints":
            keep = outside_footprints(geometries, [_footprint(item.out_dir, key) for key in file_keys[:position]])
        elif method == "neighbor" and polygons:
            keep = not_neighbours(geometries, np.concatenate(polygons), settings["centroid_tolerance"],
                                  settings["overlap_tolerance"])
        else:
            keep = np.ones(len(geometries), dtype=bool)
        polygons.append(geometries[keep])
        flags.append(counted[keep])
    if not polygons:
        return np.zeros(0, dtype=object), np.zeros(0, dtype=bool)
    return np.concatenate(polygons), np.concatenate(flags)


def _statistic_bands(polygons, counted, names, bounds, size) -> np.ndarray:
    bands = []
    for name in names:
        if name == "polygon_count":
            bands.append(centroid_counts(polygons[counted], bounds, size, size))
        else:
            bands.append(coverage_fraction(polygons, bounds, size, size).astype(np.float32))
    return np.stack(bands)


def _write_tile(item, tile: TileIndex, bands: np.ndarray, names: list[str], tms) -> dict[str, Any]:
    """The GeoTIFF, its stats sidecar, and the tile's result row."""
    write_geotiff(item.output(tile_path("geotiff", tile, ".tif")), bands, tile_bounds(tms, tile), tms.rasterio_crs, names)
    row: dict[str, Any] = {"z": tile.z, "x": tile.x, "y": tile.y}
    sketches = {}
    for name, band in zip(names, bands):
        if name == "polygon_count":
            row[name] = float(band.sum())
        else:
            row[f"{name}_mean"] = float(band.mean())
        sketches[name] = quantile_sketch(band)
    item.output(tile_path("stats", tile, ".json")).write_text(json.dumps({"row": row, "sketches": sketches}))
    return row


# -- rasterize: one z_max tile ---------------------------------------------------------------
def rasterize_tile(item) -> dict[str, Any]:
    """Combine one z_max tile's polygons from every file into a GeoTIFF of the statistics."""
    (z, x, y), file_keys, settings = item.payload
    tms, tile = get_tms(settings["tms_id"]), TileIndex(z, x, y)
    polygons, counted = _tile_polygons(item, tile, file_keys, settings)
    bands = _statistic_bands(polygons, counted, settings["statistics"], tile_bounds(tms, tile), settings["tile_size"])
    return _write_tile(item, tile, bands, settings["statistics"], tms)


# -- parents: one tile from its 2×2 children -------------------------------------------------
def children_bands(item, tile: TileIndex) -> list:
    """The bands of a tile's four children from their GeoTIFFs (None for an absent child: nothing there)."""
    paths = [item.product(tile_path("geotiff", child, ".tif")) for child in children(tile)]
    return [read_geotiff(path) if path.exists() else None for path in paths]


def build_parent(item) -> dict[str, Any]:
    """A parent tile from the GeoTIFFs of its children (an absent child: no polygons there)."""
    (z, x, y), settings = item.payload
    tms, tile = get_tms(settings["tms_id"]), TileIndex(z, x, y)
    bands = parent_from_children(children_bands(item, tile), settings["reducers"], settings["tile_size"])
    return _write_tile(item, tile, bands, settings["statistics"], tms)


# -- webtiles: PNGs of one tile --------------------------------------------------------------
def render_tile(item) -> None:
    """One PNG per statistic of a tile, each coloured over its statistic's value range at the tile's zoom."""
    (z, x, y), settings = item.payload
    tile = TileIndex(z, x, y)
    bands = read_geotiff(item.product(tile_path("geotiff", tile, ".tif")))
    for band, statistic in zip(bands, settings["statistics"]):
        lut = palette_lut(statistic["palette"])
        rgba = colourise(band, lut, tuple(statistic["value_range"]), statistic["nodata_colour"])
        write_png(item.output(tile_path(f"web/{statistic['name']}", tile, ".png")), rgba)
