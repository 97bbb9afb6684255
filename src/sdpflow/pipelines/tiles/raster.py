"""The tiles pipeline for one image (``--raster FILE``): inspect → rasterize → parents-z{z} → metadata.

- **inspect** reads the image's header (FITS WCS or GeoTIFF CRS), finds the z_max tiles its
  footprint touches and the colour range (percentiles of its finite pixels, or configured):
  ``raster.json``.
- **rasterize** (an item per z_max tile) samples the image at the tile's pixel centres
  (:func:`sdpflow.geo.raster.sample`): a one-band float32 GeoTIFF, NaN where blank.
- **parents-z{z}** average each 2×2 block of non-blank child pixels.

The colour range is known from the start (inspect), so each tile's PNG (the palette through the
stretch, blank pixels transparent: ``web/raster/{z}/{x}/{y}.png``) is written with its GeoTIFF,
not read back in a stage of its own.

A celestial image is shown with longitude −RA and latitude Dec (see :mod:`sdpflow.geo.raster`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from sdpflow.config.tiles import TilesConfig
from sdpflow.engine.fanout import FanOut, Item
from sdpflow.engine.flow import Stage
from sdpflow.geo.geotiff import write_geotiff
from sdpflow.geo.pyramid import parent_from_children
from sdpflow.geo.raster import LONLAT, footprint_lonlat, open_raster, percentile_range, pixel_centres, sample
from sdpflow.geo.render import colourise, palette_lut, write_png
from sdpflow.geo.tilemath import TileIndex, check_quadtree, get_tms, parent, tile_bounds, tiles_of_bounds, tms_crs
from sdpflow.pipelines.tiles.products import Layer, write_metadata
from sdpflow.pipelines.tiles.tasks import children_bands, tile_path
from sdpflow.store.results import ResultTable

#: The web-tile layer (and GeoTIFF band) of an image.
LAYER = "raster"
#: One row per tile at every zoom: the fraction of its pixels that are not blank, and their mean (image units).
RASTER_TILES = ResultTable("raster_tiles", {"z": int, "x": int, "y": int, "valid_fraction": float, "mean": float},
                           indexed=("z",))
#: summary.csv's columns.
COLUMNS = ["z", "x", "y", "valid_fraction", "mean"]


def footprint_tiles(image, tms, z: int) -> list[TileIndex]:
    """The tiles at zoom ``z`` that the image's footprint boxes overlap (sorted)."""
    from pyproj import Transformer

    crs = tms_crs(tms)
    to_tms = None if crs.equals(LONLAT) else Transformer.from_crs(LONLAT, crs, always_xy=True)
    west_limit, south_limit, east_limit, north_limit = tms.bbox  # the matrix set's extent, degrees
    tiles: set[TileIndex] = set()
    for west, south, east, north in footprint_lonlat(image):
        box = (max(west, west_limit), max(south, south_limit), min(east, east_limit), min(north, north_limit))
        if box[0] >= box[2] or box[1] >= box[3]:
            continue
        if to_tms is not None:
            box = to_tms.transform_bounds(*box, densify_pts=21)
        tiles.update(tiles_of_bounds(tms, box, z))
    return sorted(tiles)


def read_index(out_dir: Path) -> dict[str, Any]:
    return json.loads(Path(out_dir, "raster.json").read_text())


def tiles_at(out_dir: Path, z_max: int, z: int) -> list[TileIndex]:
    """The tiles at zoom ``z`` holding a z_max tile of the image."""
    level = {TileIndex(*tile) for tile in read_index(out_dir)["tiles"]}
    for _ in range(z_max - z):
        level = {parent(tile) for tile in level}
    return sorted(level)


def build_raster(config: TilesConfig) -> list[Stage]:
    """The stages of an image run (the image's header checked here, before a run is recorded)."""
    path = Path(config.raster).resolve()
    image = open_raster(path, config.raster_band)  # refuses what is not an image with coordinates, or a missing band
    tms = get_tms(config.tms_id)
    z_min, z_max = config.z_range
    check_quadtree(tms, z_min, z_max)
    stat = path.stat()
    fingerprint = f"{stat.st_size}:{stat.st_mtime_ns}"
    settings = {"path": str(path), "band": config.raster_band, "tms_id": config.tms_id, "tile_size": config.tile_size,
                "resampling": config.raster_resampling, "palette": config.raster_palette, "stretch": config.raster_stretch}

    def inspect(ctx) -> None:
        opened = open_raster(path, config.raster_band)
        tiles = footprint_tiles(opened, tms, z_max)
        value_range = list(config.raster_value_range or percentile_range(opened, config.raster_percentiles) or (0.0, 1.0))
        index = {"path": str(path), "band": config.raster_band, "unit": opened.unit, "shape": list(opened.shape),
                 "value_range": value_range, "tiles": [list(tile) for tile in tiles]}
        ctx.output("raster.json").write_text(json.dumps(index))

    def tile_settings(ctx) -> dict[str, Any]:
        return {**settings, "value_range": read_index(ctx.out_dir)["value_range"]}

    def max_zoom_items(ctx) -> list[Item]:
        payload = tile_settings(ctx)
        return [Item(f"{t.z}/{t.x}/{t.y}", ((t.z, t.x, t.y), payload), fingerprint)
                for t in tiles_at(ctx.out_dir, z_max, z_max)]

    def parent_items_at(z: int):
        def parent_items(ctx) -> list[Item]:
            payload = tile_settings(ctx)
            return [Item(f"{t.z}/{t.x}/{t.y}", ((t.z, t.x, t.y), payload)) for t in tiles_at(ctx.out_dir, z_max, z)]
        return parent_items

    def metadata(ctx) -> None:
        tiles = {z: tiles_at(ctx.out_dir, z_max, z) for z in range(z_min, z_max + 1)}
        value_range = read_index(ctx.out_dir)["value_range"]
        layer = Layer(LAYER, config.raster_palette, {z: value_range for z in range(z_min, z_max + 1)})
        write_metadata(ctx, config, tms, tiles, [layer], COLUMNS)

    policy = {"max_failed_fraction": config.max_failed_fraction}
    raster_config = {**settings, "z_max": z_max}
    stages = [
        Stage("inspect", inspect, outputs=("raster.json",), inputs=(str(path),),
              config={**raster_config, "percentiles": list(config.raster_percentiles),
                      "value_range": config.raster_value_range}),
        Stage("rasterize", fan_out=FanOut(max_zoom_items, rasterize_image_tile, table=RASTER_TILES, **policy),
              after=("inspect",), config=raster_config),
    ]
    previous = "rasterize"
    for z in range(z_max - 1, z_min - 1, -1):
        stages.append(Stage(f"parents-z{z}", fan_out=FanOut(parent_items_at(z), build_image_parent, table=RASTER_TILES,
                                                           **policy), after=(previous,), config={**raster_config, "z": z}))
        previous = f"parents-z{z}"
    stages.append(Stage("metadata", metadata, outputs=("tilejson", "WMTSCapabilities.xml", "summary.csv", "viewer"),
                        after=(previous,), config={"tms_id": config.tms_id, "z_range": list(config.z_range)}))
    return stages


# -- on the workers ----------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _image(path: str, band: int, size: int, mtime_ns: int):
    """The opened image, once per worker (size and time in the key: a rewritten file is opened again)."""
    return open_raster(path, band)


def _lonlat_transformer(tms_id: str):
    from pyproj import Transformer

    crs = tms_crs(get_tms(tms_id))
    return None if crs.equals(LONLAT) else Transformer.from_crs(crs, LONLAT, always_xy=True)


@lru_cache(maxsize=8)
def _lut(palette: str | tuple[str, ...]) -> np.ndarray:
    return palette_lut(list(palette) if isinstance(palette, tuple) else palette)


def _write_image_tile(item, tile: TileIndex, band: np.ndarray, tms, settings: dict[str, Any]) -> dict[str, Any]:
    """The tile's GeoTIFF, its PNG (the palette through the stretch, blank pixels transparent), its stats and row."""
    write_geotiff(item.output(tile_path("geotiff", tile, ".tif")), band[None], tile_bounds(tms, tile), tms.rasterio_crs,
                  [LAYER], nodata=float("nan"))
    palette = settings["palette"]
    rgba = colourise(band, _lut(palette if isinstance(palette, str) else tuple(palette)), tuple(settings["value_range"]),
                     "#00000000", stretch=settings["stretch"], blank_at_or_below_zero=False)
    write_png(item.output(tile_path(f"web/{LAYER}", tile, ".png")), rgba)
    finite = np.isfinite(band)
    row = {"z": tile.z, "x": tile.x, "y": tile.y, "valid_fraction": float(finite.mean()),
           "mean": float(band[finite].mean()) if finite.any() else None}
    item.output(tile_path("stats", tile, ".json")).write_text(json.dumps({"row": row}))
    return row


def rasterize_image_tile(item) -> dict[str, Any]:
    """One z_max tile of the image: sampled at its pixel centres."""
    (z, x, y), settings = item.payload
    tms, tile = get_tms(settings["tms_id"]), TileIndex(z, x, y)
    stat = Path(settings["path"]).stat()
    image = _image(settings["path"], settings["band"], stat.st_size, stat.st_mtime_ns)
    xs, ys = pixel_centres(tile_bounds(tms, tile), settings["tile_size"])
    to_lonlat = _lonlat_transformer(settings["tms_id"])
    lon, lat = (xs, ys) if to_lonlat is None else to_lonlat.transform(xs, ys)
    band = sample(image, np.asarray(lon), np.asarray(lat), settings["resampling"])
    return _write_image_tile(item, tile, band, tms, settings)


def build_image_parent(item) -> dict[str, Any]:
    """A parent tile: each pixel the mean of the non-blank pixels of its 2×2 block of children."""
    (z, x, y), settings = item.payload
    tms, tile = get_tms(settings["tms_id"]), TileIndex(z, x, y)
    band = parent_from_children(children_bands(item, tile), ["nanmean"], settings["tile_size"])[0]
    return _write_image_tile(item, tile, band, tms, settings)
