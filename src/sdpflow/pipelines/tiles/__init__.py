"""The web-tiles pipeline as a registry value: ``tiles`` (the PDG visualisation workflow).

A light module: the registry imports it to list and describe the pipeline, so the science
(:mod:`sdpflow.pipelines.tiles.flow`, shapely, rasterio, morecantile) is imported only when a
run builds its stages.
"""

from __future__ import annotations

import csv
from pathlib import Path

from sdpflow.config.tiles import TilesConfig
from sdpflow.pipelines.registry import Pipeline, lazy_build

#: What the tiles pipeline's worker tasks import.
TILES_TASKS = ("sdpflow.pipelines.tiles.tasks", "sdpflow.pipelines.tiles.raster", "shapely", "rasterio", "morecantile",
               "PIL.Image")


def tiles_summary(out_dir: Path) -> str:
    """Tiles per zoom and polygons counted, from ``summary.csv``, and where the viewer is ("" before the run wrote them)."""
    path = Path(out_dir) / "summary.csv"
    if not path.exists():
        return ""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    per_zoom: dict[int, int] = {}
    for row in rows:
        per_zoom[int(row["z"])] = per_zoom.get(int(row["z"]), 0) + 1
    if not rows:
        return "no tiles: the inputs hold no polygons (see `sdpflow runs show RUN` for input files that failed)"
    text = "tiles per zoom: " + ", ".join(f"z{z}: {count}" for z, count in sorted(per_zoom.items()))
    if "polygon_count" in rows[0]:
        z_max = max(per_zoom)
        counted = sum(float(row["polygon_count"]) for row in rows if int(row["z"]) == z_max)
        text += f"; {counted:,.0f} polygons counted"
    viewer = path.parent.resolve() / "viewer" / "index.html"
    return f"{text}\nviewer: {viewer} (or serve it: sdpflow tiles serve {path.parent.resolve()})"


TILES = Pipeline(
    "tiles", TilesConfig, lazy_build("sdpflow.pipelines.tiles.flow", "build"), TILES_TASKS,
    summary=tiles_summary,
    description="Web tiles: vector polygons to GeoTIFF and PNG tile pyramids, TileJSON/WMTS and a Leaflet viewer.",
)
