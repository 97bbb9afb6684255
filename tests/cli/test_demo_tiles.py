"""`sdpflow demo tiles`, as a user sees it: every synthetic polygon counted once, the viewer written, the
counts coloured over each zoom's range."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("shapely")
rasterio = pytest.importorskip("rasterio")
from PIL import Image  # noqa: E402


def test_demo_tiles_counts_every_polygon_once_and_writes_the_viewer(tmp_path):
    """Into a folder holding a user's file, with --overwrite (as `run --overwrite`): the file stays as it was."""
    out = tmp_path / "demo"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    result = subprocess.run([sys.executable, "-m", "sdpflow", "--db", f"sqlite:///{tmp_path / 'runs.db'}",
                             "--cluster", "local:2", "demo", "tiles", "--out", str(out), "--overwrite"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 overlapping files holding 33,400 distinct polygons" in result.stdout
    assert "33,400 polygons counted" in result.stdout and "viewer:" in result.stdout
    with open(out / "tiles" / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for z in range(6, 14):
        assert sum(float(row["polygon_count"]) for row in rows if int(row["z"]) == z) == 33_400
    assert (out / "tiles" / "viewer" / "index.html").exists()
    assert (out / "notes.txt").read_text() == "mine\n"
    assert len(list((out / "tiles" / "web" / "coverage").rglob("*.png"))) == len(rows)
    # colour ranges per zoom: wherever pixels hold different counts, the count layer shows them in several colours
    for z in range(6, 14):
        counts = set()
        for path in (out / "tiles" / "geotiff" / str(z)).rglob("*.tif"):
            with rasterio.open(path) as dataset:
                band = dataset.read(dataset.descriptions.index("polygon_count") + 1)
            counts |= set(np.unique(band[band > 0]).tolist())
        colours = set()
        for path in (out / "tiles" / "web" / "polygon_count" / str(z)).rglob("*.png"):
            rgba = np.asarray(Image.open(path)).reshape(-1, 4)
            colours |= {tuple(pixel) for pixel in rgba[rgba[:, 3] > 0]}
        # z12-13: pixels smaller than the polygons hold one centroid each, so one colour is right there
        # (values beyond the range's 98th percentile share the top colour)
        assert len(colours) == 1 if counts == {1.0} else len(colours) >= 2, (z, len(counts), len(colours))
        if z <= 8:  # pixels of many polygons: counts over a wide range, in many colours
            assert len(counts) >= 10 and len(colours) >= 10, (z, len(counts), len(colours))
