"""`sdpflow demo`, the command `make demo` runs, as a user sees it."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_demo_prints_summary_and_writes_everything(tmp_path):
    """Into a folder holding a user's file, with --overwrite (as `run --overwrite`): the file stays as it was."""
    out = tmp_path / "demo"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    result = subprocess.run([sys.executable, "-m", "sdpflow", "--db", f"sqlite:///{tmp_path / 'runs.db'}", "demo",
                             "--out", str(out), "--overwrite"], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    assert "gain phase error RMS after ICAL" in result.stdout and "report:" in result.stdout
    for name in ("obs.ms", "truth_sky.csv", "true_gains.h5", "ical/restored.fits", "ical/gains.h5",
                 "ical/report.html", "ical/summary.json", "ical/assessment.json"):
        assert (out / name).exists(), name
    assert (out / "notes.txt").read_text() == "mine\n"
    assessment = json.loads((out / "ical" / "assessment.json").read_text())
    assert assessment["phase_error_before_deg"] > 50 and assessment["phase_error_after_deg"] < 5
    assert abs(assessment["median_flux_ratio"] - 1) < 0.02
    assert assessment["dynamic_range"] > 1000
