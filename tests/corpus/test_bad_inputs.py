"""The bad-input corpus (issue 14): every command, given what a hostile but fair user tries.

Each case asserts: the exit code (2 bad input, 3 unreachable, 1 failed); stderr is exactly one
line, starting with ``error:`` (a case may allow ``warning:`` lines before it: the password-in-URL
warning is right to print), with no traceback; the working folder holds nothing new (a run that
started and then failed may leave its own output folder, with no product in it); and the run
database holds no new run marked running or completed, and no earlier run changed its status.
The cases are tables in :mod:`tests.corpus.cases`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sdpflow.store import RunStore
from tests.corpus.cases import ALL, Case

TIMEOUT_S = 120
PRODUCTS = ("summary.json", "restored.fits", "model.fits", "residual.fits", "report.html")


def sdpflow(args, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdpflow", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=TIMEOUT_S, env=env)


@pytest.fixture(scope="session")
def corpus_env(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("corpus-home")
    env = {**os.environ, "XDG_DATA_HOME": str(home / "xdg"), "COLUMNS": "200"}
    for name in ("SDPFLOW_DB", "SDPFLOW_SCHEDULER", "SDPFLOW_CLUSTER", "PGPASSWORD"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="session")
def small_ms(tmp_path_factory, corpus_env) -> Path:
    """`sdpflow simulate --preset small` once per session; cases copy it before damaging it."""
    where = tmp_path_factory.mktemp("corpus-ms")
    done = sdpflow(["simulate", "--preset", "small", "--out", "sim"], where, corpus_env)
    assert done.returncode == 0, done.stderr
    return where / "sim" / "obs.ms"


@pytest.fixture(scope="session")
def runs_db(tmp_path_factory, corpus_env) -> tuple[Path, dict]:
    """A database with a completed demo-flow run, a failed run whose folder is gone, and ids to be ambiguous."""
    where = tmp_path_factory.mktemp("corpus-runs")
    db = where / "runs.db"
    done = sdpflow(["--db", f"sqlite:///{db}", "run", "demo-flow", "--out", "flow", "--count", "10"], where, corpus_env)
    assert done.returncode == 0, done.stderr
    store = RunStore(f"sqlite:///{db}")
    [flow] = store.list_runs()
    gone = store.create_run("demo-flow", {"squares": {"count": 10}}, where / "gone")
    store.mark_run(gone, "failed", "killed")
    store.dispose()
    return db, {"FLOW": flow["id"], "GONE": gone}


#: How sdpflow's lines on stderr begin (cli.common.LogLines).
LOG_PREFIXES = ("error: ", "warning: ", "info: ", "debug: ")


def is_progress(line: str) -> bool:
    """A line of a progress display (rich), not a log line."""
    return line.startswith(("  ", "━")) or "━" in line


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("case", ALL, ids=[case.id for case in ALL])
def test_bad_input(case: Case, tmp_path, request, corpus_env):
    if case.root_skip and os.geteuid() == 0:
        pytest.skip("root reads any file: a permission case means nothing here")
    w = tmp_path / "w"
    w.mkdir()
    ctx: dict = {}
    db = tmp_path / "runs.db"
    if "ms" in case.needs:
        ctx["ms"] = request.getfixturevalue("small_ms")
    if "flow" in case.needs:
        template, ids = request.getfixturevalue("runs_db")
        shutil.copy(template, db)
        ctx.update(ids)
    if case.setup is not None:
        case.setup(w, ctx)
    before_files = snapshot(w)
    url = f"sqlite:///{db}"
    before_runs = {run["id"]: run["status"] for run in RunStore(url).list_runs(limit=1000)} if db.exists() else {}
    args = [arg.format(**ctx) if "{" in arg and not arg.startswith("{i") else arg for arg in case.args]
    if case.db:
        args = ["--db", url, *args]

    done = sdpflow(args, w, corpus_env)

    where = f"sdpflow {' '.join(args)}\nstdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr + done.stdout, where
    assert done.returncode == case.code, where
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    warnings, errors = lines[:-1], lines[-1:]
    assert len(errors) == 1 and errors[0].startswith("error:"), where
    if case.warnings >= 0:
        assert len(warnings) <= case.warnings and all(line.startswith("warning:") for line in warnings), where
    else:  # a run that started may log, but every line in sdpflow's format (no library's plain lines)
        assert all(line.startswith(LOG_PREFIXES) or is_progress(line) for line in warnings), where
    assert case.expect in errors[0], where
    new = {path for path in snapshot(w) - before_files if path.split(os.sep)[0] not in case.allow}
    assert not new, f"left behind: {sorted(new)}\n{where}"
    for name in case.allow:
        for path in (w / name).rglob("*") if (w / name).is_dir() else ():
            assert path.name not in PRODUCTS, f"a product of a refused run: {path}\n{where}"
    if db.exists():
        store = RunStore(url)
        after = {run["id"]: run["status"] for run in store.list_runs(limit=1000)}
        store.dispose()
        assert {k: v for k, v in after.items() if k in before_runs} == before_runs, where
        assert not [s for k, s in after.items() if k not in before_runs and s in ("running", "completed")], where
