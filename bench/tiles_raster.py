"""Benchmark: an image to web tiles, sdpflow's tiles pipeline (``--raster``) against GDAL's ``gdal2tiles.py``.

Not a test. ``gdal2tiles.py`` comes with GDAL's command-line tools (Debian ``gdal-bin``); it is
a benchmark-only peer, not a dependency of sdpflow::

    python bench/tiles_raster.py                         # defaults below
    python bench/tiles_raster.py --size 8192 4096 --z-range 2 9 --json results.json

One input, written once: a float32 GeoTIFF in EPSG:4326 (``--size`` columns × rows over
``--bounds``) holding smooth random emission, point sources and noise, with a blank (nodata)
corner. Both sides tile it into the same zooms of the same grid (WGS1984Quad; gdal2tiles's
``geodetic`` profile with ``--tmscompatible``: 2×1 tiles of 256 pixels at zoom 0), bilinear,
with ``--workers`` processes:

* sdpflow: ``sdpflow run tiles --raster IMAGE --cluster local:N`` (GeoTIFF tiles at z_max,
  parents, PNGs through the palette and an asinh stretch, metadata, viewer);
* gdal2tiles: it takes 8-bit images only, so, as its own error message advises,
  ``gdal_translate -of VRT -ot Byte -scale -a_nodata 0 IMAGE scaled.vrt`` (min..max onto
  grey levels, computed as gdal2tiles reads), then ``gdal2tiles.py --profile geodetic
  --tmscompatible --xyz -r bilinear -w none --processes N -z ZMIN-ZMAX scaled.vrt`` (grey PNG
  tiles with alpha only: no palette, no stretch, no float GeoTIFFs, no metadata).

Figures: tiles/s = PNG tiles written / wall seconds of the whole command (start-up included),
per side, and their ratio; CPU seconds of each side (user + system of every process, Dask's
workers included) and their ratio, which a loaded machine disturbs less; each side run
``--repeat`` times, the median kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import load_average


def write_image(path: Path, size: tuple[int, int], bounds: tuple[float, float, float, float], seed: int) -> None:
    """A float32 GeoTIFF (EPSG:4326) of smooth emission, 200 point sources and noise; the top-left 1/16 blank."""
    import rasterio
    from rasterio.transform import from_bounds
    from scipy.ndimage import gaussian_filter

    columns, rows = size
    rng = np.random.default_rng(seed)
    image = gaussian_filter(rng.normal(0, 1, (rows, columns)), 24).astype(np.float32) * 30
    image += rng.normal(0, 0.05, (rows, columns)).astype(np.float32)
    for row, column in zip(rng.integers(0, rows, 200), rng.integers(0, columns, 200)):
        image[max(row - 2, 0):row + 3, max(column - 2, 0):column + 3] += rng.uniform(1, 50)
    image[: rows // 4, : columns // 4] = -9999.0
    with rasterio.open(path, "w", driver="GTiff", width=columns, height=rows, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_bounds(*bounds, columns, rows), nodata=-9999.0,
                       tiled=True, compress="deflate") as dataset:
        dataset.write(image, 1)


def timed(command: list[str], cpu: list[float]) -> float:
    """Wall seconds of a command; its CPU seconds (user + system, with every process it waited for) added to ``cpu``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def count_png(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.png"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(8192, 4096), metavar=("COLUMNS", "ROWS"))
    parser.add_argument("--bounds", type=float, nargs=4, default=(10.0, 40.0, 20.0, 45.0))
    parser.add_argument("--z-range", type=int, nargs=2, default=(3, 9))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary folder, removed)")
    parser.add_argument("--json", type=Path, help="write all figures here")
    args = parser.parse_args(argv)
    gdal2tiles = shutil.which("gdal2tiles.py") or shutil.which("gdal2tiles")
    if gdal2tiles is None:
        sys.exit("gdal2tiles.py not found: install GDAL's command-line tools (Debian: gdal-bin)")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sdpflow-bench-raster-"))
    work.mkdir(parents=True, exist_ok=True)
    image = work / "image.tif"
    write_image(image, tuple(args.size), tuple(args.bounds), args.seed)
    z_min, z_max = args.z_range
    sdpflow = [sys.executable, "-m", "sdpflow", "--db", f"sqlite:///{work / 'runs.db'}", "--cluster",
               f"local:{args.workers}", "run", "tiles", "--raster", str(image), "--z-range", str(z_min), str(z_max)]
    scaled = work / "scaled.vrt"
    scale = ["gdal_translate", "-q", "-of", "VRT", "-ot", "Byte", "-scale", "-a_nodata", "0", str(image), str(scaled)]
    peer = [gdal2tiles, "--profile", "geodetic", "--tmscompatible", "--xyz", "-r", "bilinear", "-w", "none",
            f"--processes={args.workers}", "-z", f"{z_min}-{z_max}", str(scaled)]
    figures: dict[str, list] = {"sdpflow_s": [], "gdal2tiles_s": [], "sdpflow_cpu_s": [], "gdal2tiles_cpu_s": []}
    tiles = {}
    for attempt in range(args.repeat):
        out = work / f"sdpflow-{attempt}"
        figures["sdpflow_s"].append(timed(sdpflow + ["--out", str(out)], figures["sdpflow_cpu_s"]))
        tiles["sdpflow"] = count_png(out / "web")
        peer_out = work / f"gdal2tiles-{attempt}"
        cpu: list[float] = []
        figures["gdal2tiles_s"].append(timed(scale, cpu) + timed(peer + [str(peer_out)], cpu))
        figures["gdal2tiles_cpu_s"].append(sum(cpu))
        tiles["gdal2tiles"] = count_png(peer_out)
        if not args.workdir:
            shutil.rmtree(out)
            shutil.rmtree(peer_out)
    ours, theirs = statistics.median(figures["sdpflow_s"]), statistics.median(figures["gdal2tiles_s"])
    result = {
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs, {platform.machine()})", "load_average": load_average(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "size": list(args.size), "z_range": [z_min, z_max],
        "workers": args.workers, "tiles": tiles, **figures,
        "sdpflow_tiles_per_s": tiles["sdpflow"] / ours, "gdal2tiles_tiles_per_s": tiles["gdal2tiles"] / theirs,
    }
    result["ratio"] = result["sdpflow_tiles_per_s"] / result["gdal2tiles_tiles_per_s"]
    result["cpu_ratio"] = statistics.median(figures["gdal2tiles_cpu_s"]) / statistics.median(figures["sdpflow_cpu_s"])
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if not args.workdir:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
