"""`sdpflow demo`, the command `make demo` runs, as a user sees it: its terminal lines and its report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import headless_chromium


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Into a folder holding a user's file, with --overwrite (as `run --overwrite`)."""
    tmp_path = tmp_path_factory.mktemp("demo")
    out = tmp_path / "demo"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    result = subprocess.run([sys.executable, "-m", "sdpflow", "--db", f"sqlite:///{tmp_path / 'runs.db'}", "demo",
                             "--out", str(out), "--overwrite"], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_demo_prints_summary_and_writes_everything(demo):
    out, stdout = demo
    assert "gain phase error RMS after ICAL" in stdout and "report:" in stdout
    for name in ("obs.ms", "truth_sky.csv", "true_gains.h5", "ical/restored.fits", "ical/gains.h5",
                 "ical/report.html", "ical/summary.json", "ical/assessment.json"):
        assert (out / name).exists(), name
    assert (out / "notes.txt").read_text() == "mine\n"
    assessment = json.loads((out / "ical" / "assessment.json").read_text())
    assert assessment["phase_error_before_deg"] > 50 and assessment["phase_error_after_deg"] < 5
    assert abs(assessment["median_flux_ratio"] - 1) < 0.02
    assert assessment["dynamic_range"] > 1000


def test_terminal_lines_tell_cluster_cycles_and_time(demo):
    """Not a terminal (a pipe): every line printed above the bars carries the time of day."""
    _, stdout = demo
    started = re.search(r"^\d\d:\d\d:\d\d cluster started \((\d+) workers?\) in [\d.]+ s; Dask dashboard: http://\S+", stdout, re.M)
    assert started and int(started.group(1)) >= 1, stdout
    assert re.search(r"^\d\d:\d\d:\d\d starting cluster", stdout, re.M)
    cycles = re.findall(r"^\d\d:\d\d:\d\d   cycle-(\d\d): peak ([\d.e+-]+), RMS ([\d.e+-]+) Jy/beam; (\d+) "
                        r"components to ([\d.e+-]+) Jy/beam \(([a-z-]+)\)", stdout, re.M)
    summary = json.loads((demo[0] / "ical" / "summary.json").read_text())
    cleaned = [cycle for cycle in summary["cycles"] if not cycle.get("skipped")]
    assert [int(c[0]) for c in cycles] == [cycle["cycle"] for cycle in cleaned]
    for printed, cycle in zip(cycles, cleaned):
        assert float(printed[1]) == pytest.approx(cycle["peak_residual_jy"], rel=6e-3)
        assert int(printed[3]) == cycle["components"] and printed[5] == cycle["stop_reason"]
    for cycle in summary["cycles"]:
        if cycle.get("skipped"):
            assert re.search(rf"cycle-{cycle['cycle']:02d} skipped \(converged\)", stdout)


def _report(out: Path) -> tuple[Path, str]:
    page = out / "ical" / "report.html"
    return page, page.read_text()


def test_report_images_have_sky_axes_a_beam_and_links_to_files_that_exist(demo):
    out, _ = demo
    page, html = _report(out)
    svg = (page.parent / "report-figures" / "image-restored.fits.svg").read_text()
    assert "Right Ascension (J2000)" in svg and "Declination (J2000)" in svg and "Jy/beam" in svg
    assert 'id="phase-centre"' in svg and 'id="beam"' in svg
    assert "restored, 102.500 MHz, bandwidth 6.000 MHz" in svg
    # RA ticks in hours and minutes, Dec ticks in degrees: the phase centre's −45° among them
    assert len(re.findall(r">\dh\d\dm\d\ds<", svg)) >= 2 and "−45°00'" in svg
    for name in ("residual", "psf"):
        assert f'<img src="report-figures/{name}-{name}.fits.png" alt=' in html
    links = re.findall(r'href="([^"#]+)"', html)
    fits_links = [link for link in links if link.endswith(".fits")]
    assert {"restored.fits", "residual.fits", "model.fits", "psf.fits"} <= set(fits_links)
    for link in links:
        assert (page.parent / link).is_file(), link
    pngs = [link for link in links if link.endswith(".png")]
    assert len(pngs) >= 8 and all((page.parent / link).read_bytes()[:4] == b"\x89PNG" for link in pngs)


def test_report_has_statistics_sources_truth_and_gain_panels_per_antenna(demo):
    from sdpflow.radio.ms import read_ms_metadata

    out, _ = demo
    _, html = _report(out)
    assessment = json.loads((out / "ical" / "assessment.json").read_text())
    for heading in ("Image statistics", "Major cycles", "Sources in the model", "Against the truth",
                    "Truth sources above 10σ", "run id", "sdpflow version", "weighting", "flagged"):
        assert heading in html, heading
    truth = html.split("<h3>Truth sources above 10σ</h3>")[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td>", truth)
    assert len(rows) == min(30, assessment["sources_above_10_sigma"])
    ratios = np.array([float(row[4]) for row in rows])
    assert np.median(ratios) == pytest.approx(1.0, abs=0.03)
    # the brightest model source is the brightest truth source, within a pixel (60″)
    sources = html.split("<h3>Sources in the model</h3>")[1].split("</table>")[0]
    ra, dec = (float(v) for v in re.findall(r"<tr><td>([-\d.]+)</td><td>([-\d.]+)</td>", sources)[0])
    assert abs(ra - float(rows[0][0])) * np.cos(np.radians(dec)) < 1 / 60 and abs(dec - float(rows[0][1])) < 1 / 60
    names = read_ms_metadata(out / "obs.ms").antenna_names
    for quantity in ("phase", "amplitude"):
        block = html.split(f'<map name="map-gain-panels-{quantity}">')[1].split("</map>")[0]
        assert re.findall(r'data-panel="([^"]+)"', block) == names
    tasks = (out / "ical" / "report-figures" / "tasks.svg").read_text()
    assert "itemgetter" not in tasks and "major_cycle" in tasks and "sum of partial images" in tasks


def test_report_renders_in_headless_chromium(demo, tmp_path):
    page, _ = _report(demo[0])
    shot = tmp_path / "report.png"
    headless_chromium(tmp_path / "profile", page.as_uri(), "--window-size=1200,2400", "--virtual-time-budget=5000",
                      f"--screenshot={shot}")
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # tables, text and the figures: far from a blank page
    assert (pixels.min(axis=2) < 200).mean() > 0.05
    coloured = (pixels.max(axis=2) - pixels.min(axis=2)) > 60  # the images' colour maps and the gain lines
    assert coloured.sum() > 20_000, f"only {coloured.sum()} coloured pixels: the figures did not draw"
