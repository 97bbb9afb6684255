"""``sdpflow simulate``: presets, options over presets, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from sdpflow.radio.ms import read_ms_metadata
from sdpflow.radio.sky import read_sky_csv


def sdpflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from sdpflow.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=300)


def test_preset_small_writes_ms_and_truth_in_seconds(tmp_path):
    started = time.perf_counter()
    done = sdpflow("simulate", "--preset", "small", "--out", str(tmp_path / "obs.ms"))
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 20  # including the interpreter start; the simulation itself takes about a second
    meta = read_ms_metadata(tmp_path / "obs.ms")
    assert (meta.n_antennas, len(meta.times), meta.n_channels) == (16, 10, 4)
    assert len(read_sky_csv(tmp_path / "truth_sky.csv")) == 23
    assert (tmp_path / "true_gains.h5").is_file()
    summary = json.loads((tmp_path / "simulation.json").read_text())
    assert summary["config"]["preset"] == "small" and summary["n_visibilities"] == 120 * 10 * 4
    assert "obs.ms" in done.stdout


def test_options_override_the_preset(tmp_path):
    done = sdpflow("simulate", "--preset", "small", "--stations", "8", "--times", "3", "--channels", "2",
                   "--freq-start", "150e6", "--freq-width", "2e6", "--phase-error", "0.5", "--seed", "9",
                   "--out", str(tmp_path / "o.ms"))
    assert done.returncode == 0, done.stderr
    meta = read_ms_metadata(tmp_path / "o.ms")
    assert (meta.n_antennas, len(meta.times), meta.n_channels) == (8, 3, 2)
    assert meta.frequency.tolist() == pytest.approx([150e6, 152e6])
    config = json.loads((tmp_path / "simulation.json").read_text())["config"]
    assert config["phase_error_rad"] == 0.5 and config["seed"] == 9


@pytest.mark.parametrize("args,message", [
    (["--layout", "{tmp}/missing.csv"], "layout file {tmp}/missing.csv does not exist"),
    (["--layout", "{tmp}"], "{tmp}: not a MeasurementSet"),
    (["--preset", "huge"], "key 'preset'"),
    (["--stations", "1"], "key 'stations'"),
])
def test_bad_input_is_one_line_with_exit_code_2(tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    done = sdpflow("simulate", "--out", str(tmp_path / "x.ms"), *args)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert message.format(tmp=tmp_path) in " ".join(done.stderr.split())


def test_out_folders_are_created(tmp_path):
    out = tmp_path / "new" / "folder" / "o.ms"
    done = sdpflow("simulate", "--preset", "small", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert (out / "table.dat").exists() and (out.parent / "truth_sky.csv").exists()
