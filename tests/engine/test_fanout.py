"""Fan-out stages: per-item records and result rows, retries, poisoned items, kill and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdpflow.errors import StageFailed
from sdpflow.pipelines import resume_run, start_run
from sdpflow.store import RunStore
from tests.engine.fanout_pipeline import SquaresConfig
from tests.engine.test_cluster import default_sigint

REPO = Path(__file__).resolve().parents[2]
REF = "tests.engine.fanout_pipeline:SQUARES"


def test_items_rows_and_a_resume_that_runs_nothing(db_url, tmp_path):
    store = RunStore(db_url)
    result = start_run(REF, SquaresConfig(count=300, files=True), tmp_path / "out", store=store)
    assert result.ran == ["squares", "summary"]
    counts = store.item_counts(result.run_id)
    assert counts == {"squares": {"completed": 300}}
    rows = store.result_rows(result.run_id, "squares")
    assert len(rows) == 300
    assert sum(row["square"] for row in rows) == sum(n * n for n in range(300))
    assert rows[7]["item"] == "n000007" and rows[7]["n"] == 7 and rows[7]["extra"] == {"parity": "odd"}
    assert (tmp_path / "out" / "items" / "17.txt").read_text() == "289"
    assert not (tmp_path / "out" / ".staging").exists()  # nothing left of the staged files
    first = store.item_records(result.run_id, "squares")

    again = resume_run(result.run_id, store=store)
    assert again.ran == [] and again.skipped == ["squares", "summary"]
    assert store.item_records(result.run_id, "squares") == first  # not one item rewritten

    # A changed item file reruns that item alone (size and time checked, no hashing).
    (tmp_path / "out" / "items" / "17.txt").write_text("wrong!")
    third = resume_run(result.run_id, store=store)
    assert third.results["squares"].ran == 1
    assert (tmp_path / "out" / "items" / "17.txt").read_text() == "289"
    records = store.item_records(result.run_id, "squares")
    assert [key for key in records if records[key]["finished"] != first[key]["finished"]] == ["n000017"]


def test_a_poisoned_item_fails_alone_and_is_listed(db_url, tmp_path):
    store = RunStore(db_url)
    config = SquaresConfig(count=120, poisoned=[13], max_failed_fraction=0.05)
    result = start_run(REF, config, tmp_path / "out", store=store)
    assert store.item_counts(result.run_id) == {"squares": {"completed": 119, "failed": 1}}
    failed = store.item_records(result.run_id, "squares", status="failed")
    assert list(failed) == ["n000013"]
    assert failed["n000013"]["attempts"] == 2  # retried once, alone
    assert "ValueError: item 13 is poisoned" in failed["n000013"]["error"]
    assert len(store.result_rows(result.run_id, "squares")) == 119

    shown = subprocess.run([sys.executable, "-m", "sdpflow.cli", "--db", db_url, "runs", "show", result.run_id],
                           capture_output=True, text=True, cwd=REPO, timeout=60,
                           env={**os.environ, "COLUMNS": "200"})
    assert "n000013: ValueError: item 13 is poisoned" in shown.stdout
    assert "119 completed" in shown.stdout


def test_too_many_failed_items_fail_the_stage(tmp_path):
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    with pytest.raises(StageFailed, match=r"2 of 50 items failed \(n000003, n000004"):
        start_run(REF, SquaresConfig(count=50, poisoned=[3, 4]), tmp_path / "out", store=store)
    run = store.list_runs(limit=1)[0]
    assert run["status"] == "failed"
    assert store.get_stages(run["id"])["squares"]["status"] == "failed"
    assert "summary" not in store.get_stages(run["id"])
    assert store.item_counts(run["id"]) == {"squares": {"completed": 48, "failed": 2}}


def test_result_table_export(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'runs.db'}"
    result = start_run(REF, SquaresConfig(count=5), tmp_path / "out", store=RunStore(db_url))
    cli = [sys.executable, "-m", "sdpflow.cli", "--db", db_url, "runs", "show", result.run_id, "--table", "squares"]
    exported = subprocess.run([*cli, "--csv", "-"], capture_output=True, text=True, cwd=REPO, timeout=60)
    lines = exported.stdout.strip().splitlines()
    assert lines[0] == "stage,item,row,n,square,extra"
    assert lines[4] == 'squares,n000003,0,3,9.0,"{""parity"": ""odd""}"'
    as_json = subprocess.run([*cli, "--json", str(tmp_path / "t.json")], capture_output=True, text=True, cwd=REPO)
    assert as_json.returncode == 0 and "5 rows of squares" in as_json.stdout
    missing = subprocess.run([*cli[:-1], "nope"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert missing.returncode == 2 and "no result table 'nope'" in missing.stderr


KILL_SCRIPT = (
    "import sys; from sdpflow.pipelines import start_run; from sdpflow.store import RunStore;"
    "from tests.engine.fanout_pipeline import SquaresConfig;"
    "start_run(sys.argv[1], SquaresConfig(count=int(sys.argv[2]), sleep_ms=1.0), sys.argv[3], store=RunStore(sys.argv[4]))"
)


def test_killed_driver_resumes_only_the_missing_items(db_url, tmp_path):
    """SIGKILL of the driver (and its local workers) halfway through 10^4 items, then resume."""
    count = 10_000
    store = RunStore(db_url)
    before_runs = {run["id"] for run in store.list_runs(limit=1000)}
    process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, REF, str(count), str(tmp_path / "out"), db_url],
                               cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run_id, completed = None, 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        new = [run["id"] for run in store.list_runs(limit=1000) if run["id"] not in before_runs]
        if new:
            run_id = new[0]
            completed = store.item_counts(run_id).get("squares", {}).get("completed", 0)
            if completed >= count // 4:
                break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert run_id is not None, process.stderr.read().decode()[-2000:]
    before = store.item_records(run_id, "squares", status="completed")
    assert count // 4 <= len(before) < count, len(before)

    resumed = resume_run(run_id, store=store)
    assert resumed.results["squares"].ran == count - len(before)
    after = store.item_records(run_id, "squares")
    assert len(after) == count and all(record["status"] == "completed" for record in after.values())
    # items completed before the kill were not run again: their records are untouched
    assert all(after[key]["finished"] == record["finished"] for key, record in before.items())
    rows = store.result_rows(run_id, "squares")
    assert [row["square"] for row in rows] == [float(n * n) for n in range(count)]
    assert store.get_run(run_id)["status"] == "completed"


def test_any_pipeline_gets_a_report_of_its_stages_and_items(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'runs.db'}"
    result = start_run(REF, SquaresConfig(count=40, poisoned=[5], max_failed_fraction=0.1), tmp_path / "out",
                       store=RunStore(db_url))
    made = subprocess.run([sys.executable, "-m", "sdpflow.cli", "--db", db_url, "runs", "report", result.run_id],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert made.returncode == 0, made.stderr
    page = (tmp_path / "out" / "run-report.html").read_text()
    assert "<h2>Stages</h2>" in page and "39 completed, 1 failed" in page
    assert page.count("<img") == 2  # the stage and the task timelines


def test_ctrl_c_ends_a_run_quickly_and_marks_it_interrupted(tmp_path):
    """SIGINT mid-stage: the process ends within 10 s, the run and its stage say interrupted, no worker is left."""
    import psutil

    db_url = f"sqlite:///{tmp_path / 'runs.db'}"
    command = [sys.executable, "-m", "sdpflow.cli", "--db", db_url, "run", "flow", REF, "--out", str(tmp_path / "out"),
               "--set", "count=100000", "--set", "sleep_ms=1"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_sigint)
    store = RunStore(db_url)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = store.list_runs(limit=1) if (tmp_path / "runs.db").exists() else []
        if runs and store.item_counts(runs[0]["id"]).get("squares", {}).get("completed", 0) > 100:
            break
        time.sleep(0.1)
    workers = [child for child in psutil.Process(process.pid).children(recursive=True)]
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    code = process.wait(timeout=60)
    assert time.monotonic() - started < 10, "Ctrl-C took more than 10 s"
    assert code == 130, process.stderr.read()[-2000:]
    run = store.list_runs(limit=1)[0]
    assert run["status"] == "interrupted"
    assert store.get_stages(run["id"])["squares"]["status"] == "interrupted"
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive


def test_lost_scheduler_ends_the_driver_with_one_line(tmp_path):
    """The scheduler killed while every batch is in flight: the driver used to wait for them for good
    (the fault-injection suite found it); now it exits 3 within the reconnect timeout, and resume finishes."""
    from tests.faults.harness import ExternalCluster

    cluster = ExternalCluster(tmp_path)
    cluster.start()
    try:
        db = f"sqlite:///{tmp_path / 'runs.db'}"
        command = [sys.executable, "-m", "sdpflow", "--db", db, "--cluster", cluster.address, "run", "flow", REF,
                   "--out", str(tmp_path / "out"), "--set", "count=4", "--set", "sleep_ms=3000",
                   "--set", "cluster.connect_timeout=2"]
        driver = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
        from distributed import Client

        with Client(cluster.address, timeout=30) as watcher:  # until the four batches run on the worker
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and sum(map(len, watcher.processing().values())) < 2:
                time.sleep(0.05)
        cluster.kill_scheduler()
        try:
            code = driver.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)
            pytest.fail("the driver still waited 30 s after its scheduler was killed")
        error = driver.stderr.read()
        assert code == 3, error[-2000:]
        assert "lost the Dask scheduler" in error and "Traceback" not in error
        # Dask's own log lines too come in sdpflow's format
        assert all(line.startswith(("warning: ", "error: ")) for line in error.splitlines() if line.strip()), error
        cluster.restart()
        store = RunStore(db)
        run_id = store.list_runs(limit=1)[0]["id"]
        assert store.get_run(run_id)["status"] == "failed"
        resumed = resume_run(run_id, store=store, cluster_spec=cluster.address)
        assert resumed.results["squares"].ran == 4 and store.get_run(run_id)["status"] == "completed"
    finally:
        cluster.stop()
