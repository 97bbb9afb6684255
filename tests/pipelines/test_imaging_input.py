"""The imaging pipelines from the command line: bad input is one line, exit 2, nothing recorded or
started; a good run says how many major cycles ran and what stopped them."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from sdpflow.config.simulate import SimulateConfig
from sdpflow.pipelines.simulate import simulate_observation
from sdpflow.store import RunStore


@pytest.fixture(scope="module")
def small_ms(tmp_path_factory):
    return simulate_observation(SimulateConfig(preset="small"), tmp_path_factory.mktemp("small") / "obs.ms").ms


def sdpflow(db, *args):
    return subprocess.run([sys.executable, "-m", "sdpflow", "--db", db, *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "SDPFLOW_CLUSTER": "local:1"})


@pytest.mark.parametrize("case, message", [
    ("missing", "no such MeasurementSet"),
    ("not-ms", "not a MeasurementSet"),
    ("column", "has no column CORRECTED_DATA"),
])
def test_bad_measurement_sets(tmp_path, small_ms, case, message):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    ms = {"missing": tmp_path / "absent.ms", "not-ms": tmp_path, "column": small_ms}[case]
    extra = ["--data-column", "CORRECTED_DATA"] if case == "column" else []
    result = sdpflow(db, "run", "ical", "--ms", str(ms), "--out", str(tmp_path / "out"), *extra)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(ms) in lines[0]
    assert RunStore(db).list_runs() == []
    assert not (tmp_path / "out").exists()


def test_entirely_flagged_ms(tmp_path, small_ms):
    import shutil

    from casacore.tables import table

    ms = tmp_path / "flagged.ms"
    shutil.copytree(small_ms, ms)
    with table(str(ms), readonly=False, ack=False) as main:
        main.putcol("FLAG", np.ones(main.getcol("FLAG").shape, bool))
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    result = sdpflow(db, "run", "continuum", "--ms", str(ms), "--out", str(tmp_path / "out"), "--size", "64", "64")
    assert result.returncode == 2
    assert "every sample is flagged" in result.stderr and str(ms) in result.stderr
    assert RunStore(db).list_runs()[0]["status"] == "failed"


def test_continuum_reports_the_cycles_that_ran(tmp_path, small_ms):
    """niter is reached in the first minor cycle: the later cycles are skipped, and the summary says so."""
    import json

    db = f"sqlite:///{tmp_path / 'runs.db'}"
    out = tmp_path / "out"
    result = sdpflow(db, "run", "continuum", "--ms", str(small_ms), "--out", str(out), "--size", "64", "64",
                     "--niter", "20", "--nmajor", "4")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["major_cycles_run"] == 1 and summary["stop_reason"] == "niter"
    assert [cycle.get("skipped") for cycle in summary["cycles"]] == [None, "converged", "converged", "converged"]
    assert "after 1 major cycle (the last stopped by niter)" in " ".join(result.stdout.split())
    assert "1 run of 4 allowed" in (out / "report.html").read_text()
