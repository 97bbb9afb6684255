"""The web-tiles pipeline's stages: stage → rasterize → parents-z{z} (z_max−1 … z_min) → webtiles → metadata.

Every stage but the last is a fan-out stage (one item per input file or per tile, each
checkpointed). Which tiles exist is decided from the files' ``staged/{file}/index.json``
(rewritten whole by each staging of a file), never by listing tile folders, so files left by
an earlier configuration are not picked up. Item payloads carry only plain values.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sdpflow.config.tiles import TilesConfig
from sdpflow.engine.fanout import FanOut, Item
from sdpflow.engine.flow import Stage
from sdpflow.errors import InputError
from sdpflow.geo.render import merged_percentiles
from sdpflow.geo.tilemath import TileIndex, check_quadtree, get_tms, parent, tile_bounds
from sdpflow.pipelines.tiles import tasks
from sdpflow.pipelines.tiles.products import statistic_columns, statistic_layers, write_metadata
from sdpflow.store.results import ResultTable

#: One row per staged input file.
INPUT_FILES = ResultTable("tile_inputs", {"file": str, "polygons": int, "tiles": int}, indexed=("file",))
#: One row per tile at every zoom level: its polygon count (sum) and mean coverage fraction.
TILES = ResultTable("tiles", {"z": int, "x": int, "y": int, "polygon_count": float, "coverage_mean": float},
                    indexed=("z",))


def file_keys(inputs: list[str]) -> list[str]:
    """A stable folder name per input file: its position and its name (``003-area_b``)."""
    return [f"{index:03d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', Path(path).stem)}" for index, path in enumerate(inputs)]


def z_max_tiles(out_dir: Path, keys: list[str]) -> dict[TileIndex, list[str]]:
    """The z_max tiles that staged files touched, each with the files (input order) that touch it."""
    tiles: dict[TileIndex, list[str]] = {}
    for key in keys:
        index = Path(out_dir, "staged", key, "index.json")
        if not index.exists():  # a file whose staging failed (listed with its error)
            continue
        for z, x, y in json.loads(index.read_text())["tiles"]:
            tiles.setdefault(TileIndex(z, x, y), []).append(key)
    return dict(sorted(tiles.items()))


def tiles_at(out_dir: Path, keys: list[str], z_max: int, z: int) -> list[TileIndex]:
    """The tiles at zoom ``z`` (≤ z_max) holding some z_max tile."""
    level = set(z_max_tiles(out_dir, keys))
    for _ in range(z_max - z):
        level = {parent(tile) for tile in level}
    return sorted(level)


def value_ranges(out_dir: Path, tiles: list[TileIndex], config: TilesConfig) -> dict[str, list[float]]:
    """Each statistic's colour range over ``tiles`` (one zoom): configured, else the statistic's ``percentiles``
    of the tiles' positive pixel values (merged from their sketches; up to the largest value when both
    percentiles are equal), else 0..1 (no positive value)."""
    sketches: dict[str, list] = {name: [] for name in config.statistic_names}
    for tile in tiles:
        path = Path(out_dir, tasks.tile_path("stats", tile, ".json"))
        if path.exists():
            for name, sketch in json.loads(path.read_text())["sketches"].items():
                sketches[name].append(sketch)
    ranges = {}
    for statistic in config.statistics:
        found = None if statistic.value_range else merged_percentiles(sketches[statistic.name], statistic.percentiles)
        if found and found[0] >= found[1]:  # most pixels share one value (one centroid each): up to the largest one
            found[1] = max(quantiles[-1] for count, quantiles in sketches[statistic.name] if count)
        ranges[statistic.name] = list(statistic.value_range or found or (0.0, 1.0))
    return ranges


def zoom_ranges(out_dir: Path, keys: list[str], config: TilesConfig) -> dict[str, dict[int, list[float]]]:
    """Each statistic's colour range at every zoom (:func:`value_ranges`), ``{name: {z: [low, high]}}``."""
    z_min, z_max = config.z_range
    per_zoom = {z: value_ranges(out_dir, tiles_at(out_dir, keys, z_max, z), config) for z in range(z_min, z_max + 1)}
    return {name: {z: per_zoom[z][name] for z in per_zoom} for name in config.statistic_names}


def _settings(config: TilesConfig, tms) -> dict[str, Any]:
    z_max = config.z_range[1]
    left, _, right, _ = tile_bounds(tms, TileIndex(z_max, 0, 0))
    tolerance = config.deduplicate_centroid_tolerance
    return {"tms_id": config.tms_id, "z_max": z_max, "tile_size": config.tile_size,
            "simplify_tolerance": config.simplify_tolerance, "statistics": config.statistic_names,
            "reducers": config.reducers, "deduplicate": config.deduplicate,
            "centroid_tolerance": tolerance if tolerance is not None else 1e-3 * (right - left) / config.tile_size,
            "overlap_tolerance": config.deduplicate_overlap_tolerance}


def _file_fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def build(config: TilesConfig) -> list[Stage]:
    """The stages for a validated configuration (inputs checked here, before a run is recorded)."""
    if config.raster is not None:
        from sdpflow.pipelines.tiles.raster import build_raster

        return build_raster(config)
    if not config.inputs:
        raise InputError("tiles: no input files: give --input FILE (repeatable) or inputs: [...] in the config, "
                         "or one image: --raster FILE")
    for path in config.inputs:
        if not Path(path).is_file():
            raise InputError(f"tiles: input {path} does not exist or is not a file: check the path")
    tms = get_tms(config.tms_id)
    z_min, z_max = config.z_range
    check_quadtree(tms, z_min, z_max)
    settings = _settings(config, tms)
    keys = file_keys(config.inputs)
    stage_config = {key: settings[key] for key in ("tms_id", "z_max", "simplify_tolerance")}
    raster_config = {**{key: settings[key] for key in ("tms_id", "z_max", "tile_size", "statistics", "deduplicate",
                                                         "centroid_tolerance", "overlap_tolerance")},
                     "files": keys}
    policy = {"max_failed_fraction": config.max_failed_fraction}

    def input_items(ctx) -> list[Item]:
        return [Item(key, (key, str(Path(path).resolve()), stage_config), _file_fingerprint(Path(path)))
                for key, path in zip(keys, config.inputs)]

    def max_zoom_items(ctx) -> list[Item]:
        return [Item(f"{t.z}/{t.x}/{t.y}", ((t.z, t.x, t.y), files, settings))
                for t, files in z_max_tiles(ctx.out_dir, keys).items()]

    def parent_items_at(z: int):
        def parent_items(ctx) -> list[Item]:
            return [Item(f"{t.z}/{t.x}/{t.y}", ((t.z, t.x, t.y), settings)) for t in tiles_at(ctx.out_dir, keys, z_max, z)]
        return parent_items

    def web_items(ctx) -> list[Item]:
        ranges = zoom_ranges(ctx.out_dir, keys, config)
        items = []
        for z in range(z_min, z_max + 1):
            web_settings = {"statistics": [{**statistic.model_dump(mode="json"), "value_range": ranges[statistic.name][z]}
                                           for statistic in config.statistics]}
            items += [Item(f"{t.z}/{t.x}/{t.y}", ((t.z, t.x, t.y), web_settings))
                      for t in tiles_at(ctx.out_dir, keys, z_max, z)]
        return items

    def metadata(ctx) -> None:
        tiles = {z: tiles_at(ctx.out_dir, keys, z_max, z) for z in range(z_min, z_max + 1)}
        layers = statistic_layers(config, zoom_ranges(ctx.out_dir, keys, config))
        write_metadata(ctx, config, tms, tiles, layers, statistic_columns(config.statistic_names))

    stages = [
        Stage("stage", fan_out=FanOut(input_items, tasks.stage_file, table=INPUT_FILES, **policy), config=stage_config),
        Stage("rasterize", fan_out=FanOut(max_zoom_items, tasks.rasterize_tile, table=TILES, **policy),
              after=("stage",), config=raster_config),
    ]
    previous = "rasterize"
    for z in range(z_max - 1, z_min - 1, -1):
        stages.append(Stage(f"parents-z{z}", fan_out=FanOut(parent_items_at(z), tasks.build_parent, table=TILES, **policy),
                            after=(previous,), config={**raster_config, "z": z}))
        previous = f"parents-z{z}"
    stages.append(Stage("webtiles", fan_out=FanOut(web_items, tasks.render_tile, **policy), after=(previous,),
                        config={"statistics": [s.model_dump(mode="json") for s in config.statistics], "z_min": z_min}))
    stages.append(Stage("metadata", metadata, outputs=_metadata_outputs(config), after=("webtiles",),
                        config={"tms_id": config.tms_id, "z_range": list(config.z_range)}))
    return stages


def _metadata_outputs(config: TilesConfig) -> tuple[str, ...]:
    from sdpflow.pipelines.tiles.products import metadata_outputs

    return metadata_outputs(config)
