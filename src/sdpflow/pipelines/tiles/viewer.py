"""The static Leaflet viewer (``viewer/index.html``): one layer per statistic, the TMS's own CRS, no CDN.

Leaflet's ``L.CRS.EPSG4326`` tiles the world in 2×1 tiles of 256 pixels at zoom 0, x east and y
south from (−180°, 90°): the same grid as morecantile's WGS1984Quad; ``L.CRS.EPSG3857`` (its
default) is WebMercatorQuad. Other matrix sets get a page that says so.
"""

from __future__ import annotations

import html
import json
from typing import Any

#: Leaflet's CRS for the tile matrix sets it draws without plugins.
LEAFLET_CRS = {"WGS1984Quad": "EPSG4326", "WebMercatorQuad": "EPSG3857"}

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sdpflow web tiles</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="leaflet.css">
<style>
 html, body, #map {{ height: 100%; margin: 0; }}
 #map {{ background: #202124; }}
 .legend {{ background: rgba(255,255,255,0.9); padding: 6px 8px; font: 12px sans-serif; border-radius: 4px; }}
 .legend .bar {{ width: 160px; height: 10px; }}
</style>
</head>
<body>
<div id="map"></div>
<script src="leaflet.js"></script>
<script>
const SETTINGS = {settings};
const map = L.map("map", {{crs: L.CRS[SETTINGS.crs], minZoom: 0}});
const native = (z) => z - (SETTINGS.zoomOffset || 0);
const layers = {{}};
for (const layer of SETTINGS.layers) {{
  layers[layer.name] = L.tileLayer(layer.url, {{
    tileSize: SETTINGS.tileSize, zoomOffset: SETTINGS.zoomOffset || 0, noWrap: true,
    minNativeZoom: native(SETTINGS.minZoom), maxNativeZoom: native(SETTINGS.maxZoom), maxZoom: native(SETTINGS.maxZoom) + 4,
    bounds: L.latLngBounds(SETTINGS.bounds), attribution: layer.name,
  }});
}}
const first = SETTINGS.layers[0].name;
layers[first].addTo(map);
L.control.layers(layers, {{}}, {{collapsed: false}}).addTo(map);
L.control.scale().addTo(map);
const legend = L.control({{position: "bottomright"}});
legend.onAdd = () => {{ const div = L.DomUtil.create("div", "legend"); div.id = "legend"; return div; }};
legend.addTo(map);
let shown = first;
function showLegend(name) {{
  shown = name;
  const layer = SETTINGS.layers.find((l) => l.name === name);
  const z = Math.min(Math.max(native(Math.round(map.getZoom())), SETTINGS.minZoom), SETTINGS.maxZoom);
  const range = layer.ranges[String(z)];
  const bar = `linear-gradient(to right, ${{layer.legend.join(", ")}})`;
  document.getElementById("legend").innerHTML = `<b>${{name}}</b> (zoom ${{z}})<div class="bar" style="background: ${{bar}}"></div>` +
    `${{range[0].toPrecision(3)}} … ${{range[1].toPrecision(3)}}`;
}}
map.on("baselayerchange", (event) => showLegend(event.name));
map.on("zoomend", () => showLegend(shown));
map.fitBounds(SETTINGS.bounds);
showLegend(first);
</script>
</body>
</html>
"""

_UNSUPPORTED = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>sdpflow web tiles</title></head>
<body><p>The viewer draws WGS1984Quad and WebMercatorQuad tiles with power-of-two tile sizes; these tiles use
{tms} at {size} pixels. Open <code>WMTSCapabilities.xml</code> in a GIS (QGIS) instead.</p></body></html>
"""


def viewer_html(settings: dict[str, Any]) -> str:
    """The viewer page for ``settings`` (crs, bounds [[south, west], [north, east]], zooms, tile size, layers)."""
    if settings["crs"] is None or settings["zoomOffset"] is None:
        return _UNSUPPORTED.format(tms=html.escape(settings["tms_id"]), size=settings["tileSize"])
    return _PAGE.format(settings=json.dumps(settings).replace("</", "<\\/"))
