"""The web-tiles pipeline's metadata stage: TileJSON per statistic, WMTSCapabilities.xml, summary.csv, the viewer.

All written into the run folder, paths relative to it so that the folder can be copied and
served as it is (``python -m http.server`` in it, then open ``viewer/index.html``).
"""

from __future__ import annotations

import csv
import json
import math
from importlib import resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from sdpflow.config.tiles import TilesConfig
from sdpflow.geo.render import palette_lut
from sdpflow.geo.tilemath import TileIndex, tms_crs
from sdpflow.pipelines.tiles.viewer import LEAFLET_CRS, viewer_html

#: Leaflet files copied next to the viewer (vendored from npm ``leaflet`` 1.9.4, BSD-2-Clause).
STATIC_FILES = ("leaflet.js", "leaflet.css", "LEAFLET-LICENSE", "images/layers.png", "images/layers-2x.png",
                "images/marker-icon.png", "images/marker-icon-2x.png", "images/marker-shadow.png")


@dataclass(frozen=True)
class Layer:
    """One layer of web tiles: ``web/{name}/{z}/{x}/{y}.png``, coloured through ``palette`` over the range of each zoom."""

    name: str
    palette: Any
    value_ranges: dict[int, list[float]]


def statistic_layers(config: TilesConfig, ranges: dict[str, dict[int, list[float]]]) -> list[Layer]:
    """The layers of a vector run: one per statistic."""
    return [Layer(s.name, s.palette, ranges[s.name]) for s in config.statistics]


def metadata_outputs(config: TilesConfig) -> tuple[str, ...]:
    return ("tilejson", "WMTSCapabilities.xml", "summary.csv", "viewer")


def lonlat_bounds(tms, tiles: list[TileIndex]) -> tuple[float, float, float, float]:
    """West, south, east, north (degrees) of a set of tiles."""
    boxes = [tms.bounds(tile.x, tile.y, tile.z) for tile in tiles]
    return (min(b.left for b in boxes), min(b.bottom for b in boxes), max(b.right for b in boxes), max(b.top for b in boxes))


def tilejson(config: TilesConfig, statistic: str, bounds, value_ranges: dict[int, list[float]]) -> dict[str, Any]:
    """TileJSON 3.0.0 of one statistic's web tiles (tile URLs relative to the ``tilejson/`` folder); ``value_ranges``
    (an extension): the values at the palette's ends, per zoom."""
    west, south, east, north = bounds
    z_min, z_max = config.z_range
    return {
        "tilejson": "3.0.0", "name": statistic, "scheme": "xyz", "tiles": [f"../web/{statistic}/{{z}}/{{x}}/{{y}}.png"],
        "minzoom": z_min, "maxzoom": z_max, "bounds": [west, south, east, north],
        "center": [(west + east) / 2, (south + north) / 2, z_min],
        "tile_matrix_set": config.tms_id, "tile_size": config.tile_size,
        "value_ranges": {str(z): list(span) for z, span in value_ranges.items()},
    }


def wmts_capabilities(config: TilesConfig, tms, bounds, names: list[str]) -> str:
    """An OGC WMTS 1.0.0 capabilities document: a layer per statistic over the TMS's matrices z_min..z_max."""
    west, south, east, north = bounds
    epsg = tms_crs(tms).to_epsg()
    layers = []
    for statistic in names:
        layers.append(f"""  <Layer>
   <ows:Title>{escape(statistic)}</ows:Title>
   <ows:WGS84BoundingBox>
    <ows:LowerCorner>{west} {south}</ows:LowerCorner><ows:UpperCorner>{east} {north}</ows:UpperCorner>
   </ows:WGS84BoundingBox>
   <ows:Identifier>{escape(statistic)}</ows:Identifier>
   <Style isDefault="true"><ows:Identifier>default</ows:Identifier></Style>
   <Format>image/png</Format>
   <TileMatrixSetLink><TileMatrixSet>{escape(config.tms_id)}</TileMatrixSet></TileMatrixSetLink>
   <ResourceURL format="image/png" resourceType="tile"
    template="web/{escape(statistic)}/{{TileMatrix}}/{{TileCol}}/{{TileRow}}.png"/>
  </Layer>""")
    matrices = []
    for z in range(config.z_range[0], config.z_range[1] + 1):
        matrix = tms.matrix(z)
        origin = " ".join(repr(float(value)) for value in matrix.pointOfOrigin)
        matrices.append(f"""   <TileMatrix>
    <ows:Identifier>{z}</ows:Identifier><ScaleDenominator>{matrix.scaleDenominator!r}</ScaleDenominator>
    <TopLeftCorner>{origin}</TopLeftCorner>
    <TileWidth>{matrix.tileWidth}</TileWidth><TileHeight>{matrix.tileHeight}</TileHeight>
    <MatrixWidth>{matrix.matrixWidth}</MatrixWidth><MatrixHeight>{matrix.matrixHeight}</MatrixHeight></TileMatrix>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Capabilities xmlns="http://www.opengis.net/wmts/1.0" xmlns:ows="http://www.opengis.net/ows/1.1" version="1.0.0">
 <ows:ServiceIdentification>
  <ows:Title>sdpflow web tiles</ows:Title>
  <ows:ServiceType>OGC WMTS</ows:ServiceType><ows:ServiceTypeVersion>1.0.0</ows:ServiceTypeVersion>
 </ows:ServiceIdentification>
 <Contents>
{chr(10).join(layers)}
  <TileMatrixSet>
   <ows:Identifier>{escape(config.tms_id)}</ows:Identifier>
   <ows:SupportedCRS>urn:ogc:def:crs:EPSG::{epsg}</ows:SupportedCRS>
{chr(10).join(matrices)}
  </TileMatrixSet>
 </Contents>
</Capabilities>
"""


def statistic_columns(names: list[str]) -> list[str]:
    """summary.csv's columns for a vector run's statistics: each one's sum (counts) or mean (fractions)."""
    return ["z", "x", "y"] + [name if name == "polygon_count" else f"{name}_mean" for name in names]


def write_summary_csv(path: Path, out_dir: Path, tiles: dict[int, list[TileIndex]], columns: list[str]) -> int:
    """One row per tile (every zoom) from its ``stats/`` sidecar, ``columns`` of it; returns the number of rows."""
    rows = 0
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for z in sorted(tiles, reverse=True):
            for tile in tiles[z]:
                stats = Path(out_dir, f"stats/{tile.z}/{tile.x}/{tile.y}.json")
                if stats.exists():
                    row = json.loads(stats.read_text())["row"]
                    writer.writerow([row.get(column) for column in columns])
                    rows += 1
    return rows


def legend_colours(palette) -> list[str]:
    """Five colours sampled along a palette, as #rrggbbaa, for the viewer's legend."""
    lut = palette_lut(palette)
    return ["#" + "".join(f"{channel:02x}" for channel in lut[index]) for index in (0, 64, 128, 191, 255)]


def zoom_offset(tile_size: int) -> int | None:
    """Leaflet zoomOffset for tiles of ``tile_size`` pixels (None when not a power-of-two multiple of 256)."""
    ratio = math.log2(tile_size / 256)
    return -int(ratio) if ratio == int(ratio) else None


def write_metadata(ctx, config: TilesConfig, tms, tiles: dict[int, list[TileIndex]], layers: list[Layer],
                   columns: list[str]) -> None:
    """The metadata stage: every file of :func:`metadata_outputs`; summary.csv has ``columns``."""
    z_max = config.z_range[1]
    bounds = lonlat_bounds(tms, tiles[z_max]) if tiles[z_max] else (-180.0, -90.0, 180.0, 90.0)
    folder = ctx.output("tilejson")
    folder.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        (folder / f"{layer.name}.json").write_text(json.dumps(tilejson(config, layer.name, bounds, layer.value_ranges),
                                                              indent=1))
    ctx.output("WMTSCapabilities.xml").write_text(wmts_capabilities(config, tms, bounds, [layer.name for layer in layers]))
    write_summary_csv(ctx.output("summary.csv"), ctx.out_dir, tiles, columns)
    viewer = ctx.output("viewer")
    viewer.mkdir(parents=True, exist_ok=True)
    static = resources.files("sdpflow.pipelines.tiles") / "static"
    for name in STATIC_FILES:
        target = viewer / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((static / name).read_bytes())
    shown = [{"name": layer.name, "url": f"../web/{layer.name}/{{z}}/{{x}}/{{y}}.png",
              "ranges": {str(z): span for z, span in layer.value_ranges.items()}, "legend": legend_colours(layer.palette)}
             for layer in layers]
    settings = {"crs": LEAFLET_CRS.get(config.tms_id), "bounds": [[bounds[1], bounds[0]], [bounds[3], bounds[2]]],
                "minZoom": config.z_range[0], "maxZoom": z_max, "tileSize": config.tile_size,
                "zoomOffset": zoom_offset(config.tile_size), "layers": shown, "tms_id": config.tms_id}
    (viewer / "index.html").write_text(viewer_html(settings))
