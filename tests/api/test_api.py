"""The Python API (``sdpflow.run``, ``resume``, ``runs``, ``Run``): the command line's path, seen from Python.

A run through the API records what the CLI records; inside a running event loop (as in a
Jupyter kernel) the flow runs in a thread and gives the same products.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import sdpflow
from sdpflow.errors import ConfigError, InputError

SQUARES = "tests.engine.fanout_pipeline:SQUARES"


def test_import_starts_nothing_heavy():
    """``import sdpflow`` and reaching ``sdpflow.run`` import neither Dask, pydantic, pandas nor the store."""
    code = ("import sys, sdpflow; sdpflow.run, sdpflow.runs, sdpflow.Run; "
            "print(sorted(m for m in ('dask', 'distributed', 'pydantic', 'pandas', 'sqlalchemy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_run_records_products_tables_and_resumes(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    run = sdpflow.run(SQUARES, out=tmp_path / "out", db=db, cluster="local:1", count=12, files=True,
                      progress=False)
    assert run.status == "completed" and run.pipeline == SQUARES and run.dashboard is None
    products = run.products
    assert "summary.json" in products and all(product.path.exists() for product in products.values())
    summary = products["summary.json"]
    assert summary.checksum == "sha256:" + hashlib.sha256(summary.path.read_bytes()).hexdigest()
    table = run.table("squares")
    assert len(table) == 12 and sorted(table["square"]) == [float(k * k) for k in range(12)]
    with pytest.raises(Exception, match="no result table 'cubes'"):
        run.table("cubes")

    again = sdpflow.resume(run.id[:-2], db=db, cluster="local:1", progress=False)
    assert again.id == run.id and again.status == "completed"

    other = sdpflow.run("demo-flow", out=tmp_path / "flow", db=db, cluster="local:1", count=3, progress=False)
    listed = sdpflow.runs(db=db)
    assert list(listed["id"]) == [other.id, run.id] and set(listed["status"]) == {"completed"}
    assert list(sdpflow.runs(db=db, pipeline="demo-flow")["id"]) == [other.id]
    assert sdpflow.runs(db=db, status="failed").empty and len(sdpflow.runs(db=db, limit=1)) == 1
    assert "sum of k^2 for k < 3 = 5" in other.summary_text and other.summary is None
    with pytest.raises(InputError, match="no filter 'owner'"):
        sdpflow.runs(db=db, owner="me")


def test_background_run_shows_its_dashboard_while_running(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    run = sdpflow.run(SQUARES, out=tmp_path / "out", db=db, cluster="local:1", count=40, sleep_ms=100,
                      wait=False, progress=False)
    links, statuses = set(), set()
    while run._worker.alive:
        links.add(run.dashboard)
        statuses.add(sdpflow.Run(run.id[:20], db=db).status)  # another handle, as a notebook's second cell has
    assert run.wait().status == "completed" and run.dashboard is None
    assert any(link and link.startswith("http") for link in links) and "stopped" not in statuses


def test_ctrl_c_while_waiting_interrupts_the_run(tmp_path):
    """Ctrl-C (a kernel's interrupt) while waiting for a run in a thread: the run unwinds and is recorded interrupted."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    run = sdpflow.run(SQUARES, out=tmp_path / "out", db=db, cluster="local:1", count=400, sleep_ms=50,
                      wait=False, progress=False)
    while "squares" not in run._store.result_tables() or run.table("squares").empty:
        time.sleep(0.2)  # until some items are done: the fan-out is under way
    # Python's own Ctrl-C handler, also where this test process was started with SIGINT ignored
    # (a background job of a non-interactive shell, as CI may start it).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            run.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert run.status == "interrupted" and time.monotonic() - started < 30
    assert 0 < len(run.table("squares")) < 400


def test_a_run_whose_process_is_gone_is_stopped(tmp_path):
    """Recorded as running by this process, but no flow of it runs here: `runs list` would say stopped too."""
    from sdpflow.store import RunStore

    db = f"sqlite:///{tmp_path / 'runs.db'}"
    run_id = RunStore(db).create_run("demo-flow", {}, tmp_path / "gone")
    assert sdpflow.Run(run_id, db=db).status == "stopped"
    assert sdpflow.runs(db=db, status="stopped")["id"].tolist() == [run_id]
    assert sdpflow.runs(db=db, status="running").empty


def _cli(args, cwd, db):
    env = {**os.environ, "COLUMNS": "250"}
    env.pop("SDPFLOW_CLUSTER", None)
    return subprocess.run([sys.executable, "-m", "sdpflow", "--db", db, *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


# (id, the CLI's words after `sdpflow --db DB`, the same through the API: pipeline, keywords), in the corpus's style
BAD = [
    ("count-zero", ["run", "demo-flow", "--out", "o", "--count", "0"], ("demo-flow", {"count": 0})),
    ("set-not-number", ["run", "demo-flow", "--out", "o", "--set", "squares.count=many"],
     ("demo-flow", {"overrides": ["squares.count=many"]})),
    ("config-missing", ["run", "demo-flow", "--out", "o", "--config", "absent.yaml"],
     ("demo-flow", {"config": "absent.yaml"})),
    ("cluster-zero", ["--cluster", "local:0", "run", "demo-flow", "--out", "o"], ("demo-flow", {"cluster": "local:0"})),
    ("foreign-folder", ["run", "demo-flow", "--out", "theirs"], ("demo-flow", {"out": "theirs"})),
    ("flow-not-importable", ["run", "flow", "nosuchmodule:PIPELINE", "--out", "o"], ("nosuchmodule:PIPELINE", {})),
    ("ms-missing", ["run", "ical", "--ms", "absent.ms", "--out", "o"], ("ical", {"ms": "absent.ms"})),
    ("size-odd", ["run", "ical", "--ms", "absent.ms", "--size", "33", "33", "--out", "o"],
     ("ical", {"ms": "absent.ms", "size": (33, 33)})),
]


@pytest.mark.parametrize("case, cli_args, api_call", BAD, ids=[case for case, *_ in BAD])
def test_bad_input_raises_what_the_cli_reports(tmp_path, monkeypatch, case, cli_args, api_call):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("not sdpflow's")
    cli = _cli(cli_args, tmp_path, db)
    pipeline, keywords = api_call
    monkeypatch.chdir(tmp_path)
    with pytest.raises((ConfigError, InputError)) as raised:
        sdpflow.run(pipeline, **{"out": "o", "db": db, "progress": False, **keywords})
    assert cli.returncode == raised.value.exit_code == 2
    assert cli.stderr.strip() == f"error: {raised.value}"
    assert not (tmp_path / "o").exists() and sdpflow.runs(db=db).empty


def test_resume_of_an_unknown_run_is_the_clis_error(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    cli = _cli(["runs", "resume", "20990101"], tmp_path, db)
    with pytest.raises(InputError) as raised:
        sdpflow.resume("20990101", db=db)
    assert cli.returncode == raised.value.exit_code and cli.stderr.strip() == f"error: {raised.value}"


def test_unknown_keyword_names_the_pipelines_options(tmp_path):
    with pytest.raises(ConfigError, match=r"'nitre' is not an option of ical: see `sdpflow config show ical`"):
        sdpflow.run("ical", out=tmp_path / "o", db=f"sqlite:///{tmp_path / 'runs.db'}", ms="x.ms", nitre=10)
