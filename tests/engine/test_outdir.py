"""Output folders: the marker, claiming, foreign files, the MS guard and the folder lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from sdpflow.engine.outdir import (
    LOCK_NAME,
    MARKER_NAME,
    OutputLock,
    claim_output_folder,
    read_marker,
    refuse_foreign,
    refuse_inside,
)
from sdpflow.errors import InputError


def test_claim_creates_and_marks_a_new_folder(tmp_path):
    out = claim_output_folder(tmp_path / "a" / "b", writer="sdpflow test", overwrite=False)
    marker = json.loads((out / MARKER_NAME).read_text())
    assert marker["written_by"] == "sdpflow test" and marker["foreign"] == [] and marker["created"]
    assert claim_output_folder(out, writer="sdpflow test", overwrite=False) == out  # its own folder again


def test_claim_takes_an_empty_folder_and_refuses_a_file(tmp_path):
    (tmp_path / "empty").mkdir()
    assert read_marker(claim_output_folder(tmp_path / "empty", writer="t", overwrite=False)) is not None
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        claim_output_folder(tmp_path / "f", writer="t", overwrite=True)
    assert (tmp_path / "f").read_text() == "x"


def test_foreign_folder_refused_unless_overwrite_and_its_files_never_replaced(tmp_path):
    (tmp_path / "mine.txt").write_text("mine")
    with pytest.raises(InputError, match="holds files sdpflow did not write: choose another --out or pass --overwrite"):
        claim_output_folder(tmp_path, writer="t", overwrite=False)
    assert read_marker(tmp_path) is None
    claim_output_folder(tmp_path, writer="t", overwrite=True)
    assert read_marker(tmp_path)["foreign"] == ["mine.txt"]
    refuse_foreign(tmp_path, ["summary.json", "cycles/model-01.fits"])  # sdpflow's own names pass
    with pytest.raises(InputError, match="mine.txt was not written by sdpflow"):
        refuse_foreign(tmp_path, ["summary.json", "mine.txt/x"])
    assert (tmp_path / "mine.txt").read_text() == "mine"


@pytest.mark.parametrize("relative", ["obs.ms", "obs.ms/out", "obs.ms/a/b", "obs.ms/../obs.ms/x"])
def test_out_equal_to_or_inside_the_ms_is_refused(tmp_path, relative):
    (tmp_path / "obs.ms").mkdir()
    with pytest.raises(InputError, match="is inside the input"):
        refuse_inside(tmp_path / relative, tmp_path / "obs.ms")


def test_out_beside_the_ms_is_accepted(tmp_path):
    refuse_inside(tmp_path / "obs.ms-images", tmp_path / "obs.ms")
    refuse_inside(tmp_path, tmp_path / "obs.ms")


def test_a_second_holder_is_refused_with_the_first_holders_run_pid_and_host(tmp_path):
    with OutputLock(tmp_path, "run-one"):
        record = json.loads((tmp_path / LOCK_NAME).read_text())
        assert (record["pid"], record["host"], record["run_id"]) == (os.getpid(), socket.gethostname(), "run-one")
        with pytest.raises(InputError) as error:
            with OutputLock(tmp_path, "run-two"):
                pass
        assert error.value.exit_code == 2
        assert f"run run-one (pid {os.getpid()} on {socket.gethostname()})" in str(error.value)
    assert not (tmp_path / LOCK_NAME).exists()  # released on exit
    with OutputLock(tmp_path, "run-two"):
        pass


def test_set_run_id_names_the_holder(tmp_path):
    with OutputLock(tmp_path) as lock:
        lock.set_run_id("late-id")
        with pytest.raises(InputError, match="run late-id"):
            OutputLock(tmp_path).__enter__()
    assert not (tmp_path / LOCK_NAME).exists()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname(), "run_id": "gone"}))
    with OutputLock(tmp_path, "new"):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["run_id"] == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing left aside


def test_a_lock_from_another_host_is_not_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead_pid(), "host": "elsewhere.example", "run_id": "far"}))
    with pytest.raises(InputError, match=f"run far .*on elsewhere.example.*remove {tmp_path / LOCK_NAME}"):
        with OutputLock(tmp_path, "new"):
            pass
    assert json.loads((tmp_path / LOCK_NAME).read_text())["run_id"] == "far"


def test_racing_takeovers_of_a_stale_lock_leave_exactly_one_holder(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname(), "run_id": "gone"}))
    barrier = threading.Barrier(8)
    holders, refusals, release = [], [], threading.Event()

    def contend(index: int) -> None:
        barrier.wait()
        try:
            with OutputLock(tmp_path, f"run-{index}"):
                holders.append(index)
                release.wait(5)
        except InputError:
            refusals.append(index)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(holders) + len(refusals) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)  # the holder keeps the lock until every other thread has tried
    release.set()
    for thread in threads:
        thread.join()
    assert len(holders) == 1 and len(refusals) == 7


def test_a_refused_overwrite_claim_leaves_no_marker(tmp_path):
    """--overwrite into a folder whose foreign file would be replaced: refused before the folder is marked."""
    from sdpflow.engine.outdir import MARKER_NAME, claim_output_folder

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "obs.ms").write_text("someone else's\n")
    with pytest.raises(InputError, match="would be replaced"):
        claim_output_folder(tmp_path / "out", writer="test", overwrite=True, writes=["obs.ms/table.dat", "x"])
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["obs.ms"]
    claim_output_folder(tmp_path / "out", writer="test", overwrite=True, writes=["other"])
    assert (tmp_path / "out" / MARKER_NAME).exists()
