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
    done = sdpflow("simulate", "--preset", "small", "--out", str(tmp_path / "obs"))
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 20  # including the interpreter start; the simulation itself takes about a second
    meta = read_ms_metadata(tmp_path / "obs" / "obs.ms")
    assert (meta.n_antennas, len(meta.times), meta.n_channels) == (16, 10, 4)
    assert len(read_sky_csv(tmp_path / "obs" / "truth_sky.csv")) == 23
    assert (tmp_path / "obs" / "true_gains.h5").is_file()
    summary = json.loads((tmp_path / "obs" / "simulation.json").read_text())
    assert summary["config"]["preset"] == "small" and summary["n_visibilities"] == 120 * 10 * 4
    assert "obs.ms" in done.stdout


def test_options_override_the_preset(tmp_path):
    done = sdpflow("simulate", "--preset", "small", "--stations", "8", "--times", "3", "--channels", "2",
                   "--freq-start", "150e6", "--freq-width", "2e6", "--phase-error", "0.5", "--seed", "9",
                   "--out", str(tmp_path / "o"))
    assert done.returncode == 0, done.stderr
    meta = read_ms_metadata(tmp_path / "o" / "obs.ms")
    assert (meta.n_antennas, len(meta.times), meta.n_channels) == (8, 3, 2)
    assert meta.frequency.tolist() == pytest.approx([150e6, 152e6])
    config = json.loads((tmp_path / "o" / "simulation.json").read_text())["config"]
    assert config["phase_error_rad"] == 0.5 and config["seed"] == 9


@pytest.mark.parametrize("args,message", [
    (["--layout", "{tmp}/missing.csv"], "layout file {tmp}/missing.csv does not exist"),
    (["--layout", "{tmp}"], "{tmp}: not a MeasurementSet"),
    (["--preset", "huge"], "key 'preset'"),
    (["--stations", "1"], "key 'stations'"),
])
def test_bad_input_is_one_line_with_exit_code_2(tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    done = sdpflow("simulate", "--out", str(tmp_path / "x"), *args)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert message.format(tmp=tmp_path) in " ".join(done.stderr.split())


def test_out_folders_are_created(tmp_path):
    out = tmp_path / "new" / "folder"
    done = sdpflow("simulate", "--preset", "small", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert (out / "obs.ms" / "table.dat").exists() and (out / "truth_sky.csv").exists()
    assert json.loads((out / ".sdpflow").read_text())["written_by"] == "sdpflow simulate"


def test_an_existing_folder_of_foreign_files_is_refused_and_kept(tmp_path):
    """The hostile case: a folder of the user's files given as --out was deleted, and the parent's files replaced."""
    out = tmp_path / "results"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    (tmp_path / "truth_sky.csv").write_text("the parent's own file")
    done = sdpflow("simulate", "--preset", "small", "--out", str(out))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "holds files sdpflow did not write" in lines[0] and "--overwrite" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    assert (out / "thesis.tex").read_text() == "years of work"
    assert (tmp_path / "truth_sky.csv").read_text() == "the parent's own file"


def test_overwrite_writes_beside_foreign_files_and_never_replaces_them(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    (tmp_path / "truth_sky.csv").write_text("the parent's own file")
    for _ in range(2):  # the second time over sdpflow's own products, which it may replace
        done = sdpflow("simulate", "--preset", "small", "--out", str(out), "--overwrite")
        assert done.returncode == 0, done.stderr
    assert (out / "thesis.tex").read_text() == "years of work"
    assert (tmp_path / "truth_sky.csv").read_text() == "the parent's own file"
    assert read_ms_metadata(out / "obs.ms").n_antennas == 16 and (out / "truth_sky.csv").is_file()
    # a foreign file with a product's name is never replaced, --overwrite or not
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "truth_sky.csv").write_text("someone else's sky")
    done = sdpflow("simulate", "--preset", "small", "--out", str(clash), "--overwrite")
    assert done.returncode == 2 and "truth_sky.csv was not written by sdpflow" in " ".join(done.stderr.split())
    assert (clash / "truth_sky.csv").read_text() == "someone else's sky"
    assert not (clash / "obs.ms").exists()


@pytest.mark.parametrize("name, message", [("file.txt", "is a file, not a folder"),
                                           ("obs.ms", "names the output folder")])
def test_out_that_is_a_file_or_names_an_ms_is_refused(tmp_path, name, message):
    (tmp_path / "file.txt").write_text("keep")
    done = sdpflow("simulate", "--preset", "small", "--out", str(tmp_path / name))
    assert done.returncode == 2 and message in " ".join(done.stderr.split())
    assert (tmp_path / "file.txt").read_text() == "keep" and not (tmp_path / "obs.ms").exists()
