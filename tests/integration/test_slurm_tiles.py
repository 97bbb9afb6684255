"""The tiles pipeline on SLURM worker jobs writes the same bytes as on one local worker."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

pytest.importorskip("rasterio")

from sdpflow.config.tiles import TilesConfig  # noqa: E402
from sdpflow.geo.synthetic import ice_wedge_polygons, write_demo_files  # noqa: E402
from sdpflow.pipelines import start_run  # noqa: E402
from sdpflow.store import RunStore  # noqa: E402
from tests.integration.test_slurm import slurm, slurm_config, wait_empty_queue  # noqa: E402, F401 - the autouse fixture

pytestmark = pytest.mark.slurm


def _hashes(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for pattern in ("geotiff/**/*.tif", "web/**/*.png", "tilejson/*.json") for path in sorted(folder.glob(pattern))}


def test_tiles_on_slurm_jobs_equal_one_local_worker_byte_for_byte(tmp_path):
    bounds = (-150.2, 70.0, -150.17, 70.015)
    polygons = ice_wedge_polygons(bounds, (0.0012, 0.0004), seed=9)
    paths = write_demo_files(tmp_path / "inputs", polygons, bounds, columns=2, rows=1, overlap=0.2,
                             formats=(".gpkg", ".geojson"), crss=("EPSG:4326", "EPSG:3857"))
    config = TilesConfig(inputs=[str(path) for path in paths], z_range=(10, 13), tile_size=128, deduplicate="footprints")
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    local = start_run("tiles", config, tmp_path / "local", store=store, cluster_spec="local:1")
    # two worker jobs, their logs in a temporary folder (not the working directory)
    on_slurm = config.model_copy(update={"cluster": slurm_config(jobs=2)})
    batch = start_run("tiles", on_slurm, tmp_path / "slurm", store=store)
    assert store.get_run(batch.run_id)["cluster"].startswith("slurm")
    assert wait_empty_queue() == []
    ours, theirs = _hashes(local.out_dir), _hashes(batch.out_dir)
    assert len(ours) > 20 and ours == theirs
    rows = store.result_rows(batch.run_id, "tiles")
    assert sum(row["polygon_count"] for row in rows if row["z"] == 13) == len(polygons)
