"""Runs never share an output folder, never write into their MS, and a bad resume changes nothing.

Through the command line (one line on stderr, exit 2) with the toy pipeline of the flow tests,
whose stages wait at a gate file when asked, so that a second command meets a run in progress.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdpflow.engine.outdir import LOCK_NAME, MARKER_NAME
from sdpflow.store import RunStore

REPO = Path(__file__).resolve().parents[2]
TOY = "tests.engine.toy_pipeline:TOY"


def command(db: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "sdpflow.cli", "--db", db, *args]


def sdpflow(db: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command(db, *args), capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def one_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture()
def toy(tmp_path):
    source = tmp_path / "input.txt"
    source.write_text("ab")
    return f"sqlite:///{tmp_path / 'runs.db'}", source


def test_a_second_run_on_a_folder_in_use_exits_2_naming_the_first(tmp_path, toy):
    db, source = toy
    out, gate = tmp_path / "out", tmp_path / "gate"
    first = subprocess.Popen(command(db, "run", "flow", TOY, "--out", str(out), "--set", f"input={source}"),
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "TOY_GATE": str(gate)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ledger.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the first run is inside its first stage, holding the folder
        holder = json.loads((out / LOCK_NAME).read_text())
        [recorded] = RunStore(db).list_runs()
        assert holder["run_id"] == recorded["id"] and holder["pid"] == first.pid

        second = sdpflow(db, "run", "flow", TOY, "--out", str(out), "--set", f"input={source}")
        assert second.returncode == 2
        assert f"run {recorded['id']} (pid {first.pid} on {socket.gethostname()})" in one_line(second)
        assert [run["id"] for run in RunStore(db).list_runs()] == [recorded["id"]]  # nothing recorded

        resumed = sdpflow(db, "runs", "resume", recorded["id"])  # the same run from a second process
        assert resumed.returncode == 2 and str(first.pid) in one_line(resumed)
        assert RunStore(db).get_run(recorded["id"])["status"] == "running"
    finally:
        gate.touch()
        stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr
    assert RunStore(db).get_run(recorded["id"])["status"] == "completed"
    assert (out / "b.txt").read_text() == "ABAB!" and not (out / LOCK_NAME).exists()
    assert (tmp_path / "ledger.txt").read_text().split() == ["first", "second"]  # only the first run worked


def test_a_run_killed_holding_the_lock_resumes(tmp_path, toy):
    db, source = toy
    killed = sdpflow(db, "run", "flow", TOY, "--out", str(tmp_path / "out"), "--set", f"input={source}",
                     env={"TOY_KILL_IN": "second"})
    assert killed.returncode < 0 and (tmp_path / "out" / LOCK_NAME).exists()  # left behind by a dead process
    [run] = RunStore(db).list_runs()
    resumed = sdpflow(db, "runs", "resume", run["id"])
    assert resumed.returncode == 0, resumed.stderr
    assert RunStore(db).get_run(run["id"])["status"] == "completed"
    assert not (tmp_path / "out" / LOCK_NAME).exists()


@pytest.mark.parametrize("option", ["--from-stage", "--until-stage"])
def test_resume_with_an_unknown_stage_leaves_the_run_as_it_was(tmp_path, toy, option):
    db, source = toy
    done = sdpflow(db, "run", "flow", TOY, "--out", str(tmp_path / "out"), "--set", f"input={source}")
    assert done.returncode == 0, done.stderr
    [run] = RunStore(db).list_runs()
    events = len(RunStore(db).get_events(run["id"]))
    resumed = sdpflow(db, "runs", "resume", run["id"], option, "cycle-99")
    assert resumed.returncode == 2
    assert f"{option} cycle-99" in one_line(resumed) and "first, second" in one_line(resumed)
    after = RunStore(db).get_run(run["id"])
    assert (after["status"], after["error"]) == ("completed", None)
    assert len(RunStore(db).get_events(run["id"])) == events


def test_run_with_an_unknown_until_stage_records_nothing(tmp_path, toy):
    db, source = toy
    done = sdpflow(db, "run", "flow", TOY, "--out", str(tmp_path / "out"), "--set", f"input={source}",
                   "--until-stage", "nope")
    assert done.returncode == 2 and "--until-stage nope" in one_line(done)
    assert RunStore(db).list_runs() == [] and not (tmp_path / "out").exists()


def test_a_run_into_a_folder_of_foreign_files_is_refused(tmp_path, toy):
    db, source = toy
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    done = sdpflow(db, "run", "flow", TOY, "--out", str(out), "--set", f"input={source}")
    assert done.returncode == 2 and "holds files sdpflow did not write" in one_line(done)
    assert RunStore(db).list_runs() == [] and sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_overwrite_never_replaces_a_foreign_file(tmp_path, toy):
    """start_run(overwrite=True) writes beside foreign files, and refuses a foreign file with an output's name."""
    from sdpflow.errors import InputError
    from sdpflow.pipelines import start_run
    from tests.engine.toy_pipeline import ToyConfig

    db, source = toy
    store = RunStore(db)
    beside, clash = tmp_path / "beside", tmp_path / "clash"
    for folder, name in ((beside, "notes.txt"), (clash, "b.txt")):
        folder.mkdir()
        (folder / name).write_text("mine")
    with pytest.raises(InputError, match="holds files sdpflow did not write"):
        start_run(TOY, ToyConfig(input=str(source)), beside, store=store)
    result = start_run(TOY, ToyConfig(input=str(source)), beside, store=store, overwrite=True)
    assert (beside / "notes.txt").read_text() == "mine" and (beside / "b.txt").read_text() == "ABAB!"
    assert json.loads((beside / MARKER_NAME).read_text())["foreign"] == ["notes.txt"]
    with pytest.raises(InputError, match="b.txt was not written by sdpflow"):
        start_run(TOY, ToyConfig(input=str(source)), clash, store=store, overwrite=True)
    assert (clash / "b.txt").read_text() == "mine"
    assert [run["id"] for run in store.list_runs()] == [result.run_id]
