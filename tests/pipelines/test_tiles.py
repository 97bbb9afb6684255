"""The web-tiles pipeline end to end on generated polygons: exact counts, determinism across clusters,
georeferencing, metadata, a corrupt input, kill and resume, and the viewer in headless Chromium."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

shapely = pytest.importorskip("shapely")
rasterio = pytest.importorskip("rasterio")

from sdpflow.config.tiles import TilesConfig  # noqa: E402
from sdpflow.errors import StageFailed  # noqa: E402
from sdpflow.geo.synthetic import ice_wedge_polygons, write_demo_files  # noqa: E402
from sdpflow.geo.tilemath import get_tms, tile_indices  # noqa: E402
from sdpflow.pipelines import resume_run, start_run  # noqa: E402
from sdpflow.store import RunStore  # noqa: E402
from tests.conftest import headless_chromium  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BOUNDS = (-150.2, 70.0, -150.16, 70.02)  # about 1,650 polygons
SPACING = (0.0012, 0.0004)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two overlapping files (GeoPackage in lon/lat, GeoJSON in Web Mercator) and the distinct polygons."""
    folder = tmp_path_factory.mktemp("inputs")
    polygons = ice_wedge_polygons(BOUNDS, SPACING, seed=4)
    paths = write_demo_files(folder, polygons, BOUNDS, columns=2, rows=1, overlap=0.2,
                             formats=(".gpkg", ".geojson"), crss=("EPSG:4326", "EPSG:3857"))
    return paths, polygons


def _config(paths, **extra) -> TilesConfig:
    settings = {"z_range": (10, 13), "tile_size": 128, "deduplicate": "footprints", **extra}
    return TilesConfig(inputs=[str(path) for path in paths], **settings)


@pytest.fixture(scope="module")
def two_workers(inputs, tmp_path_factory):
    """A run on local:2: (store, run id, output folder)."""
    folder = tmp_path_factory.mktemp("two")
    store = RunStore(f"sqlite:///{folder / 'runs.db'}")
    result = start_run("tiles", _config(inputs[0]), folder / "out", store=store, cluster_spec="local:2")
    return store, result.run_id, folder / "out"


def _hashes(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for pattern in ("geotiff/**/*.tif", "web/**/*.png") for path in sorted(folder.glob(pattern))}


def test_counts_conserved_across_zooms_and_rows_match_summary(inputs, two_workers):
    _, polygons = inputs
    store, run_id, out = two_workers
    rows = store.result_rows(run_id, "tiles")
    assert {row["z"] for row in rows} == {10, 11, 12, 13}
    for z in range(10, 14):  # every distinct polygon counted once at every zoom (the overlap deduplicated)
        assert sum(row["polygon_count"] for row in rows if row["z"] == z) == len(polygons)
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[0] == "z,x,y,coverage_mean,polygon_count" and len(summary) == len(rows) + 1
    coverage = sum(row["coverage_mean"] for row in rows if row["z"] == 13) * (128 * 128)
    pixel_area = (180 / 2 ** 13 / 128) ** 2
    assert coverage * pixel_area == pytest.approx(shapely.area(polygons).sum(), rel=1e-5)  # exact, in float32
    staged = store.result_rows(run_id, "tile_inputs")
    assert [row["file"] for row in staged] == [str(path.resolve()) for path in inputs[0]]
    assert sum(row["polygons"] for row in staged) > len(polygons)  # the files overlap


def test_one_and_two_workers_write_the_same_bytes(inputs, two_workers, tmp_path):
    _, _, out = two_workers
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    start_run("tiles", _config(inputs[0]), tmp_path / "out", store=store, cluster_spec="local:1")
    ours, theirs = _hashes(tmp_path / "out"), _hashes(out)
    assert len(ours) > 20 and ours == theirs


def test_geotiff_pixel_of_a_polygon_and_the_metadata(inputs, two_workers):
    _, polygons = inputs
    _, _, out = two_workers
    tms = get_tms("WGS1984Quad")
    centre = shapely.centroid(polygons[len(polygons) // 3])
    x, y = tile_indices(tms, np.array([centre.x]), np.array([centre.y]), 13)
    with rasterio.open(out / f"geotiff/13/{x[0]}/{y[0]}.tif") as dataset:
        assert dataset.crs.to_epsg() == 4326 and dataset.descriptions == ("coverage", "polygon_count")
        row, column = dataset.index(centre.x, centre.y)
        coverage, counts = dataset.read(1), dataset.read(2)
        assert counts[row, column] >= 1 and coverage[row, column] > 0.5  # the centre lies well inside its polygon
        left, top = dataset.xy(row, column, offset="ul")
        assert left <= centre.x < left + dataset.res[0] and top - dataset.res[1] < centre.y <= top
    tilejson = json.loads((out / "tilejson/coverage.json").read_text())
    west, south, east, north = tilejson["bounds"]
    assert west <= BOUNDS[0] and south <= BOUNDS[1] and east >= BOUNDS[2] and north >= BOUNDS[3]
    assert tilejson["tiles"] == ["../web/coverage/{z}/{x}/{y}.png"] and tilejson["maxzoom"] == 13
    capabilities = ElementTree.parse(out / "WMTSCapabilities.xml").getroot()
    wmts = "{http://www.opengis.net/wmts/1.0}"
    assert len(capabilities.findall(f".//{wmts}Layer")) == 2
    assert len(capabilities.findall(f".//{wmts}TileMatrix")) == 4
    html = (out / "viewer/index.html").read_text()
    assert "L.CRS[SETTINGS.crs]" in html and '"crs": "EPSG4326"' in html and "https://" not in html
    assert (out / "viewer/leaflet.js").stat().st_size > 100_000


def test_a_corrupt_input_is_reported_by_name(inputs, tmp_path):
    paths, _ = inputs
    corrupt = tmp_path / "broken.gpkg"
    corrupt.write_bytes(b"this is not a GeoPackage" * 10)
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    with pytest.raises(StageFailed, match=r"1 of 2 items failed \(001-broken"):
        start_run("tiles", _config([paths[0], corrupt], z_range=(12, 13)), tmp_path / "strict", store=store,
                  cluster_spec="local:1")
    result = start_run("tiles", _config([paths[0], corrupt], z_range=(12, 13), max_failed_fraction=0.5),
                       tmp_path / "lenient", store=store, cluster_spec="local:1")
    failed = store.item_records(result.run_id, "stage", status="failed")
    assert list(failed) == ["001-broken"]
    assert f"DataError: {corrupt}: cannot be read as a vector file" in failed["001-broken"]["error"]
    assert (tmp_path / "lenient/viewer/index.html").exists()


KILL_SCRIPT = (
    "import sys; from sdpflow.pipelines import start_run; from sdpflow.store import RunStore;"
    "from sdpflow.config.tiles import TilesConfig;"
    "start_run('tiles', TilesConfig(inputs=sys.argv[1:3], z_range=(16, 16), tile_size=512,"
    " deduplicate='footprints'),"
    " sys.argv[3], store=RunStore(sys.argv[4]), cluster_spec='local:2', until_stage='rasterize')"
)


def test_killed_run_resumes_without_redoing_finished_tiles(inputs, tmp_path):
    paths, polygons = inputs
    db_url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = RunStore(db_url)
    process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, *map(str, paths), str(tmp_path / "out"), db_url],
                               cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run_id, deadline = None, time.monotonic() + 150
    while time.monotonic() < deadline and process.poll() is None:
        runs = store.list_runs(limit=1) if (tmp_path / "runs.db").exists() else []
        if runs:
            run_id = runs[0]["id"]
            if store.item_counts(run_id).get("rasterize", {}).get("completed", 0) > 0:
                break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert run_id is not None, process.stderr.read().decode()[-2000:]
    before = store.item_records(run_id, "rasterize", status="completed")
    assert before, "the run was killed before any tile was finished"

    resumed = resume_run(run_id, store=store, cluster_spec="local:2", until_stage="rasterize")
    after = store.item_records(run_id, "rasterize")
    assert resumed.results["rasterize"].ran == len(after) - len(before) < len(after)
    assert all(after[key]["finished"] == record["finished"] for key, record in before.items())
    rows = store.result_rows(run_id, "tiles")
    assert sum(row["polygon_count"] for row in rows if row["z"] == 16) == len(polygons)


@contextlib.contextmanager
def _served(out: Path):
    """``sdpflow tiles serve OUT --port 0`` running; yields the viewer's address it printed."""
    server = subprocess.Popen([sys.executable, "-m", "sdpflow", "tiles", "serve", str(out), "--port", "0"], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = server.stdout.readline()
        assert first.startswith("viewer: http://127.0.0.1:"), first + server.stderr.read()
        yield first.split()[1]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_tiles_serve_answers_the_viewer_and_tiles_and_refuses_other_folders(two_workers, tmp_path):
    _, _, out = two_workers
    with _served(out) as url:
        assert url.endswith("/viewer/index.html")
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and b"L.CRS[SETTINGS.crs]" in response.read()
        tile = next((out / "web/coverage/13").glob("*/*.png"))
        with urllib.request.urlopen(url.replace("viewer/index.html", str(tile.relative_to(out))), timeout=10) as response:
            assert response.headers["Content-Type"] == "image/png" and response.read() == tile.read_bytes()
    (tmp_path / "viewer").mkdir()
    (tmp_path / "viewer/index.html").write_text("<html></html>")  # a viewer, but no tiles run wrote this folder
    refused = subprocess.run([sys.executable, "-m", "sdpflow", "tiles", "serve", str(tmp_path)], capture_output=True,
                             text=True, cwd=REPO, timeout=60)
    assert refused.returncode == 2 and "is not the output folder of a finished tiles run" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_viewer_draws_tiles_in_headless_chromium(two_workers, tmp_path):
    _, _, out = two_workers
    with _served(out) as url:
        shot = tmp_path / "viewer.png"
        headless_chromium(tmp_path / "profile", url, "--window-size=800,600", "--virtual-time-budget=8000",
                          f"--screenshot={shot}")
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    background = np.array([0x20, 0x21, 0x24])  # the map's own colour where no tile draws
    # the data fill about 230×115 pixels of the 800×600 view at the zoom that fits their tiles
    drawn = (np.abs(pixels - background).max(axis=2) > 30) & ((pixels.max(axis=2) - pixels.min(axis=2)) > 40)
    assert drawn.sum() > 10_000, f"only {drawn.sum()} coloured pixels: the tiles did not draw"


def test_command_line_names_a_missing_input_and_a_bad_matrix_set(tmp_path):
    base = [sys.executable, "-m", "sdpflow", "--db", f"sqlite:///{tmp_path / 'runs.db'}", "run", "tiles",
            "--out", str(tmp_path / "out")]
    missing = subprocess.run([*base, "--input", str(tmp_path / "nope.gpkg"), "--z-range", "3", "5"],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
    assert missing.returncode == 2 and f"input {tmp_path / 'nope.gpkg'} does not exist" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    (tmp_path / "a.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    bad = subprocess.run([*base, "--input", str(tmp_path / "a.geojson"), "--tms-id", "NoSuchSet"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 2 and "unknown tms_id 'NoSuchSet'" in bad.stderr


def test_web_mercator_tiles_deduplicated_by_neighbours(inputs, tmp_path):
    paths, polygons = inputs
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    config = _config(paths, tms_id="WebMercatorQuad", z_range=(13, 14), deduplicate="neighbor")
    result = start_run("tiles", config, tmp_path / "out", store=store, cluster_spec="local:1")
    rows = store.result_rows(result.run_id, "tiles")
    for z in (13, 14):
        assert sum(row["polygon_count"] for row in rows if row["z"] == z) == len(polygons)
    tile = next(row for row in rows if row["z"] == 14)
    with rasterio.open(tmp_path / f"out/geotiff/14/{tile['x']}/{tile['y']}.tif") as dataset:
        assert dataset.crs.to_epsg() == 3857
        bounds = get_tms("WebMercatorQuad").xy_bounds(tile["x"], tile["y"], 14)
        assert tuple(dataset.bounds) == pytest.approx(tuple(bounds), abs=1e-6)
    assert '"crs": "EPSG3857"' in (tmp_path / "out/viewer/index.html").read_text()


def test_colour_ranges_follow_each_zoom_so_counts_show_structure(inputs, two_workers):
    from PIL import Image

    from sdpflow.geo.render import palette_lut

    _, _, out = two_workers
    ranges = json.loads((out / "tilejson/polygon_count.json").read_text())["value_ranges"]
    lut = palette_lut(["#d9f0a3", "#41ab5d", "#004529"])  # the default polygon_count palette
    for z in (10, 11, 12, 13):
        counts = np.concatenate([rasterio.open(path).read(2).ravel() for path in sorted((out / f"geotiff/{z}").glob("*/*.tif"))])
        positive = counts[counts > 0]
        for value, rank in zip(ranges[str(z)], (0.02, 0.98)):  # the 2nd and 98th percentiles, to two sketch points in rank
            low, high = np.percentile(positive, [100 * max(rank - 2 / 65, 0), 100 * min(rank + 2 / 65, 1)])
            assert low <= value <= high
        colours = set()
        for path in sorted((out / f"web/polygon_count/{z}").glob("*/*.png")):
            rgba = np.asarray(Image.open(path)).reshape(-1, 4)
            colours |= {tuple(pixel) for pixel in rgba[rgba[:, 3] > 0]}
        if np.unique(positive).size > 1:  # pixels holding several centroids: several colours, lowest and highest among them
            assert len(colours) >= 2 and tuple(lut[0]) in colours and tuple(lut[-1]) in colours, z
        else:  # pixels smaller than the polygons hold one centroid at most: one colour is the truth there
            assert positive.max() == 1 and len(colours) == 1
    assert np.unique([tuple(span) for span in ranges.values()], axis=0).shape[0] >= 3  # the range grows with the pixels
    coverage = [np.asarray(Image.open(path)) for path in sorted((out / "web/coverage/13").glob("*/*.png"))]
    opaque = np.concatenate([tile.reshape(-1, 4) for tile in coverage])
    assert len({tuple(pixel) for pixel in opaque[opaque[:, 3] > 0]}) > 50  # fractions at polygon edges: many colours
