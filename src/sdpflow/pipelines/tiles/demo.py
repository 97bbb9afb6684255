"""``sdpflow demo tiles``: synthetic ice-wedge polygons in overlapping files, through the tiles pipeline.

About 33,000 polygons over 0.2° × 0.08° near 70° N (the Alaskan North Slope), in four files
that overlap by 15% of their size (a GeoPackage, a GeoJSON, a Shapefile, and a GeoParquet file
in Web Mercator), deduplicated by footprints: every generated polygon is counted exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from sdpflow.config.tiles import TilesConfig
from sdpflow.engine.flow import FlowResult, Observer
from sdpflow.geo.synthetic import ice_wedge_polygons, write_demo_files
from sdpflow.pipelines.runner import start_run
from sdpflow.store import RunStore

#: West, south, east, north (degrees) of the demo area, and the polygons' grid spacing (dlon, dlat).
DEMO_BOUNDS = (-150.2, 70.0, -150.0, 70.08)
DEMO_SPACING = (0.0012, 0.0004)


@dataclass
class DemoTiles:
    """What the tiles demo made: its inputs, how many distinct polygons, and the run."""

    inputs: list[Path]
    polygons: int
    run_id: str
    run_dir: Path
    result: FlowResult


def demo_tiles_config(inputs: list[Path]) -> TilesConfig:
    """The demo's settings: WGS1984Quad, zooms 6..13, footprint deduplication, the default statistics."""
    return TilesConfig(inputs=[str(path) for path in inputs], z_range=(6, 13), deduplicate="footprints")


def run_demo_tiles(out: str | Path, *, store: RunStore, cluster_spec: str | None = None,
                   observers: Iterable[Observer] = (), seed: int = 1, overwrite: bool = False) -> DemoTiles:
    """Write the synthetic inputs to ``out/inputs/`` and run the tiles pipeline into ``out/tiles/``.

    ``overwrite``: accept an ``out`` holding files sdpflow did not write (none of them is replaced)."""
    from sdpflow.engine.outdir import claim_output_folder, refuse_foreign

    # a file, or a folder of someone else's files, is refused before anything is written
    out = claim_output_folder(out, writer="sdpflow demo tiles", overwrite=overwrite, writes=("inputs", "tiles"))
    refuse_foreign(out, ("inputs", "tiles"))
    polygons = ice_wedge_polygons(DEMO_BOUNDS, DEMO_SPACING, seed=seed)
    inputs = write_demo_files(out / "inputs", polygons, DEMO_BOUNDS)
    run_dir = out / "tiles"
    result = start_run("tiles", demo_tiles_config(inputs), run_dir, store=store, cluster_spec=cluster_spec,
                       observers=observers, overwrite=overwrite)
    return DemoTiles(inputs, len(polygons), result.run_id, run_dir, result)
