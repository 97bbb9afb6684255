"""Benchmark: the web-tiles pipeline against the PDG's viz-staging and viz-raster, on one input.

Not a test. The PDG tools live in an environment of their own (see bench/README.md, "Web tiles
against PDG's viz-staging/viz-raster", for how it was built)::

    export SDPFLOW_BENCH_PDG_PYTHON=PDG_VENV/bin/python        # or --peer-python
    python bench/tiles.py                                    # defaults below
    python bench/tiles.py --bounds -150.2 70.0 -150.0 70.08 --z-range 6 13 --json results.json   # the demo's area

One input, written once into a temporary folder: the synthetic ice-wedge polygons of
``sdpflow demo tiles`` (:func:`sdpflow.geo.synthetic.ice_wedge_polygons`) over ``--bounds``,
split into ``--columns`` × ``--rows`` overlapping GeoPackage files (EPSG:4326; polygons in an
overlap are in several files). Both sides read the same files with the same settings:
WGS1984Quad, ``--z-range``, ``--tile-size``, statistics polygon_count (centroids per pixel,
parents sum) and coverage (area fraction, parents average), no simplification, no
deduplication (each file's polygons counted).

* sdpflow: ``start_run("tiles", ...)`` (stage → rasterize → parents → webtiles → metadata) on
  a local cluster of ``--workers`` worker processes × 1 thread, in a fresh process.
* PDG: ``pdgstaging.TileStager(config).stage_all()`` then
  ``pdgraster.RasterTiler(config).rasterize_all()`` (their documented workflow, viz-raster's
  ``examples/complete-workflow/main.py``), in a fresh process of the PDG environment (this
  script re-invoking itself with ``--pdg-child``). It runs in one process, as documented.

Figures: staging = polygons read from the files (the sum over files) / seconds of staging
(sdpflow: the ``stage`` stage, from the later of its start and the cluster's opening, which
happens inside it, to its completion; PDG: ``stage_all``). Tiles = GeoTIFF tiles written at every zoom (each with one PNG per statistic) / seconds from the end of staging to
the last web tile (sdpflow: ``rasterize`` … ``webtiles``; PDG: ``rasterize_all``). Wall = the
child process from start to exit (imports, cluster start, metadata included). Peak memory:
``ru_maxrss`` of the child and the descendants it waited for (the largest single process), and
the largest sum of RSS over the child's process tree sampled every 0.2 s. As a check, the
polygon_count band summed over the z_max GeoTIFFs of each side (= polygons counted).

The image path (``--raster``: a GeoTIFF → web tiles) is compared with ``gdal2tiles.py`` in
``bench/tiles_raster.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import load_average

PEER_PYTHON_VARIABLE = "SDPFLOW_BENCH_PDG_PYTHON"
STATISTICS = ("polygon_count", "coverage")


# --------------------------------------------------------------------------------------------
# the input


def write_inputs(folder: Path, bounds, spacing, columns: int, rows: int, seed: int) -> dict:
    """The synthetic polygons in ``columns × rows`` overlapping GeoPackage files; their paths and counts."""
    from sdpflow.geo.synthetic import ice_wedge_polygons, split_overlapping, write_vector_file

    polygons = ice_wedge_polygons(tuple(bounds), tuple(spacing), seed=seed)
    parts = split_overlapping(polygons, tuple(bounds), columns, rows, 0.15)
    paths, counts = [], []
    for index, part in enumerate(parts):
        paths.append(str(write_vector_file(folder / f"area_{index:02d}.gpkg", part, "EPSG:4326")))
        counts.append(len(part))
    return {"files": paths, "polygons_per_file": counts, "polygons_in_files": sum(counts),
            "distinct_polygons": len(polygons)}


# --------------------------------------------------------------------------------------------
# sdpflow side (--sdpflow-child, in a fresh process of this environment)


def sdpflow_child(spec: dict, result_file: Path) -> None:
    began = time.perf_counter()
    from sdpflow.config.cluster import ClusterConfig
    from sdpflow.config.tiles import TilesConfig
    from sdpflow.pipelines import start_run
    from sdpflow.store import RunStore

    events: dict[tuple[str, str], float] = {}

    def observe(record: dict) -> None:
        if record["event"] in ("cluster-opened", "stage-started", "stage-completed"):
            events.setdefault((record["event"], record.get("stage") or ""), time.perf_counter())

    work = Path(spec["work"])
    store = RunStore(f"sqlite:///{work / 'runs.db'}")
    config = TilesConfig(inputs=spec["files"], tms_id="WGS1984Quad", z_range=tuple(spec["z_range"]),
                         tile_size=spec["tile_size"], simplify_tolerance=0.0, deduplicate="none",
                         cluster=ClusterConfig(spec=f"local:{spec['workers']}"))
    started = time.perf_counter()
    result = start_run("tiles", config, work / "out", store=store, observers=[observe])
    ended = time.perf_counter()
    # the cluster opens on first use, inside the first stage: staging is timed from when it is up
    opened = events[("cluster-opened", "")]
    stage_s = events[("stage-completed", "stage")] - max(events[("stage-started", "stage")], opened)
    tiles_s = events[("stage-completed", "webtiles")] - events[("stage-completed", "stage")]
    result_file.write_text(json.dumps({
        "run_id": result.run_id, "stage_s": stage_s, "tiles_s": tiles_s, "run_s": ended - started,
        "imports_s": started - began, "cluster_open_s": opened - started,
        "order": [f"{kind} {name}".strip() for kind, name in sorted(events, key=events.get)][:4],
        "stages_s": {name: events[("stage-completed", name)] - events[("stage-started", name)]
                     for (kind, name) in events if kind == "stage-started" and ("stage-completed", name) in events},
        "driver_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


# --------------------------------------------------------------------------------------------
# PDG side (--pdg-child, in the PDG environment: imports nothing of sdpflow)


def pdg_config(spec: dict) -> dict:
    """viz-staging/viz-raster settings equal to sdpflow's: WGS1984Quad, z range, tile size, the two statistics."""
    work = Path(spec["work"])
    return {
        "tms_id": "WGS1984Quad",
        "tile_path_structure": ["style", "tms", "z", "x", "y"],
        "dir_input": str(Path(spec["files"][0]).parent), "ext_input": ".gpkg",
        "dir_staged": str(work / "staged"), "dir_geotiff": str(work / "geotiff"),
        "dir_web_tiles": str(work / "web"), "dir_footprints": str(work / "footprints"),
        "filename_staging_summary": str(work / "staging_summary.csv"),
        "filename_rasterization_events": str(work / "rasterization_events.csv"),
        "filename_rasters_summary": str(work / "rasters_summary.csv"),
        "filename_config": str(work / "config.json"),
        "ext_web_tiles": ".png",
        "z_range": list(spec["z_range"]),
        "tile_size": [spec["tile_size"], spec["tile_size"]],
        "simplify_tolerance": None,  # sdpflow: simplify_tolerance 0
        "deduplicate_method": None, "deduplicate_at": None,
        "statistics": [
            {"name": "polygon_count", "weight_by": "count", "property": "centroids_per_pixel",
             "aggregation_method": "sum", "resampling_method": "sum", "val_range": [0, None],
             "palette": ["#d9f0a3", "#41ab5d", "#004529"], "nodata_val": 0, "nodata_color": "#ffffff00"},
            {"name": "coverage", "weight_by": "area", "property": "area_per_pixel_area",
             "aggregation_method": "sum", "resampling_method": "average", "val_range": [0, 1],
             "palette": ["#fde725", "#21918c", "#440154"], "nodata_val": 0, "nodata_color": "#ffffff00"},
        ],
    }


def pdg_child(spec: dict, result_file: Path) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    began = time.perf_counter()
    import pdgraster
    import pdgstaging

    config = pdg_config(spec)
    imported = time.perf_counter()
    figures: dict = {"imports_s": imported - began}
    try:
        pdgstaging.TileStager(config).stage_all()
        staged = time.perf_counter()
        figures["stage_s"] = staged - imported
        tiler = pdgraster.RasterTiler(config)
        tiler.rasterize_all()
        figures["tiles_s"] = time.perf_counter() - staged
        try:
            errors = tiler.get_errors()
            figures["errors"] = None if errors is None else str(errors)[:2000]
        except Exception as error:  # get_errors reads the events file
            figures["errors"] = f"get_errors failed: {type(error).__name__}: {error}"
    except Exception as error:
        import traceback

        figures["failed"] = f"{type(error).__name__}: {error}"
        figures["traceback"] = traceback.format_exc()[-4000:]
    figures["run_s"] = time.perf_counter() - imported
    figures["driver_peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import importlib.metadata as metadata

    figures["versions"] = {name: _version(metadata, name) for name in
                           ("pdgstaging", "pdgraster", "geopandas", "shapely", "rasterio", "fiona", "pandas",
                            "numpy", "morecantile", "pydantic")}
    figures["versions"]["python"] = platform.python_version()
    result_file.write_text(json.dumps(figures))


def _version(metadata, name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------------------------
# the parent: runs each side as a child process and measures it


def run_child(python: str, role: str, spec: dict, folder: Path, timeout: float) -> dict:
    """Run ``role`` in a fresh process of ``python``; its figures, wall time and peak memory, or why it failed."""
    import psutil

    folder.mkdir(parents=True, exist_ok=True)
    spec_file, result_file, log = folder / "spec.json", folder / "result.json", folder / "child.log"
    spec_file.write_text(json.dumps(spec))
    command = [python, str(Path(__file__).resolve()), f"--{role}-child", str(spec_file), str(result_file)]
    began = time.perf_counter()
    tree_peak = 0.0
    with open(log, "w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 cwd=folder, start_new_session=True,
                                 env=dict(os.environ, PYTHONPATH=str(Path(__file__).parent)))
        timed_out = False
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - began > timeout:
                os.killpg(child.pid, signal.SIGKILL)
                timed_out = True
                _, status, usage = os.wait4(child.pid, 0)
                break
            try:
                parent = psutil.Process(child.pid)
                tree = [parent] + parent.children(recursive=True)
                total = 0
                for process in tree:
                    try:
                        total += process.memory_info().rss
                    except psutil.Error:
                        pass
                tree_peak = max(tree_peak, total / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.2)
        try:
            os.killpg(child.pid, signal.SIGKILL)  # a worker left behind
        except ProcessLookupError:
            pass
    wall = time.perf_counter() - began
    figures = json.loads(result_file.read_text()) if result_file.exists() else {}
    figures.update(wall_s=wall, rc=os.waitstatus_to_exitcode(status), largest_process_peak_mib=usage.ru_maxrss / 1024,
                   tree_peak_mib_sampled=tree_peak)
    if timed_out:
        figures["failed"] = f"timed out after {timeout:.0f} s (killed)"
    elif figures.get("rc") and "failed" not in figures:
        figures["failed"] = f"exit code {figures['rc']}"
    if "failed" in figures:
        figures["log_tail"] = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
    return figures


def count_tiles(geotiffs: Path, web: Path) -> dict:
    tifs = sorted(geotiffs.rglob("*.tif")) if geotiffs.exists() else []
    pngs = list(web.rglob("*.png")) if web.exists() else []
    per_zoom: dict[int, int] = {}
    for path in tifs:
        z = int(path.parent.parent.name)
        per_zoom[z] = per_zoom.get(z, 0) + 1
    return {"geotiffs": len(tifs), "pngs": len(pngs), "per_zoom": dict(sorted(per_zoom.items())), "paths": tifs}


def counted_polygons(tifs: list[Path], z_max: int, band_name: str, band_index: int) -> float:
    """Sum of the polygon_count band over the z_max GeoTIFFs (band chosen by description, else by position)."""
    import numpy as np
    import rasterio

    total = 0.0
    for path in tifs:
        if int(path.parent.parent.name) != z_max:
            continue
        with rasterio.open(path) as dataset:
            names = list(dataset.descriptions)
            band = names.index(band_name) + 1 if band_name in names else band_index
            data = dataset.read(band, masked=True)
            total += float(np.ma.sum(data))
    return total


def summarise(name: str, figures: dict, tiles: dict, polygons: int) -> dict:
    out = {key: value for key, value in figures.items() if key not in ("traceback",)}
    out["tiles"] = {key: value for key, value in tiles.items() if key != "paths"}
    if "failed" not in figures or figures.get("stage_s"):
        if figures.get("stage_s"):
            out["polygons_staged_per_s"] = polygons / figures["stage_s"]
        if figures.get("tiles_s") and tiles["geotiffs"]:
            out["tiles_per_s"] = tiles["geotiffs"] / figures["tiles_s"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bounds", type=float, nargs=4, default=(-150.4, 70.0, -150.0, 70.1),
                        metavar=("WEST", "SOUTH", "EAST", "NORTH"), help="area of the synthetic polygons (degrees)")
    parser.add_argument("--spacing", type=float, nargs=2, default=(0.0012, 0.0004), metavar=("DLON", "DLAT"),
                        help="grid spacing of the polygons (the demo's)")
    parser.add_argument("--columns", type=int, default=2)
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--z-range", type=int, nargs=2, default=(6, 13))
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2, help="sdpflow's local worker processes (1 thread each)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--peer-python", default=os.environ.get(PEER_PYTHON_VARIABLE),
                        help=f"python of the PDG environment (default: ${PEER_PYTHON_VARIABLE}); none: sdpflow only")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds before a side is killed")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary folder, removed)")
    parser.add_argument("--json", type=Path, help="write all figures here")
    parser.add_argument("--sdpflow-child", nargs=2, metavar=("SPEC", "RESULT"), help=argparse.SUPPRESS)
    parser.add_argument("--pdg-child", nargs=2, metavar=("SPEC", "RESULT"), help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.sdpflow_child:
        return sdpflow_child(json.loads(Path(options.sdpflow_child[0]).read_text()), Path(options.sdpflow_child[1]))
    if options.pdg_child:
        return pdg_child(json.loads(Path(options.pdg_child[0]).read_text()), Path(options.pdg_child[1]))

    import importlib.metadata as metadata

    scratch = options.workdir or Path(tempfile.mkdtemp(prefix="sdpflow-bench-tiles-"))
    scratch.mkdir(parents=True, exist_ok=True)
    report: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "nproc": os.cpu_count(),
                    "load_before": load_average(), "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                    "versions": {name: _version(metadata, name) for name in
                                 ("sdpflow", "dask", "distributed", "shapely", "rasterio", "pyogrio", "numpy",
                                  "morecantile")} | {"python": platform.python_version()}}
    try:
        began = time.perf_counter()
        inputs = write_inputs(scratch / "inputs", options.bounds, options.spacing, options.columns, options.rows,
                              options.seed)
        report["input"] = {key: value for key, value in inputs.items() if key != "files"} | {
            "files": [Path(path).name for path in inputs["files"]], "write_s": time.perf_counter() - began}
        print(f"input: {inputs['distinct_polygons']:,} polygons, {inputs['polygons_in_files']:,} in "
              f"{len(inputs['files'])} GeoPackage files ({inputs['polygons_per_file']})", flush=True)
        spec = {"files": inputs["files"], "z_range": list(options.z_range), "tile_size": options.tile_size,
                "workers": options.workers}
        z_max = options.z_range[1]
        polygons = inputs["polygons_in_files"]

        work = scratch / "sdpflow"
        ours = run_child(sys.executable, "sdpflow", spec | {"work": str(work)}, work, options.timeout)
        tiles = count_tiles(work / "out" / "geotiff", work / "out" / "web")
        ours = summarise("sdpflow", ours, tiles, polygons)
        if tiles["geotiffs"]:
            ours["polygons_counted_z_max"] = counted_polygons(tiles["paths"], z_max, "polygon_count", 2)
        report["sdpflow"] = ours
        print("sdpflow:", json.dumps({k: v for k, v in ours.items() if k != "log_tail"}), flush=True)
        if ours.get("failed"):
            print(ours.get("log_tail", ""), flush=True)
        report["load_between"] = load_average()

        if options.peer_python:
            work = scratch / "pdg"
            theirs = run_child(options.peer_python, "pdg", spec | {"work": str(work)}, work, options.timeout)
            tiles = count_tiles(work / "geotiff", work / "web")
            theirs = summarise("pdg", theirs, tiles, polygons)
            if tiles["geotiffs"]:
                theirs["polygons_counted_z_max"] = counted_polygons(tiles["paths"], z_max, "polygon_count", 1)
            report["pdg"] = theirs
            print("PDG:", json.dumps({k: v for k, v in theirs.items() if k != "log_tail"}), flush=True)
            if theirs.get("failed"):
                print(theirs.get("log_tail", ""), flush=True)
            ratios = {}
            for key in ("polygons_staged_per_s", "tiles_per_s"):
                if ours.get(key) and theirs.get(key):
                    ratios[key] = ours[key] / theirs[key]
            if ours.get("wall_s") and theirs.get("wall_s") and not ours.get("failed") and not theirs.get("failed"):
                ratios["wall"] = theirs["wall_s"] / ours["wall_s"]
                ratios["staging_plus_tiles"] = ((theirs["stage_s"] + theirs["tiles_s"])
                                                / (ours["stage_s"] + ours["tiles_s"]))
            report["ratio_sdpflow_over_pdg"] = ratios
            print("ratio (sdpflow / PDG throughput):", json.dumps(ratios), flush=True)
        else:
            print(f"PDG: not run (give --peer-python or ${PEER_PYTHON_VARIABLE})", flush=True)
        report["gdal2tiles"] = "not run: sdpflow's tiles pipeline takes vector inputs only (no GeoTIFF input)"
        report["load_after"] = load_average()
        print("load (1, 5, 15 min) before / between / after:", report["load_before"], report["load_between"],
              report["load_after"], flush=True)
    finally:
        if options.json:
            options.json.write_text(json.dumps(report, indent=2, default=str))
        if not options.workdir:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
