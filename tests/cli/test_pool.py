"""`sdpflow pool run` and `sdpflow pool timeline`, run as a user would, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sdpflow.store.db import RunStore

TASKS = """
name: demo
nodes: 1
threads_per_worker: 2
defaults: {timeout: 30}
tasks:
  - name: echo-{i}
    repeat: 5
    command: "sh -c 'echo {i}'"
    stdout: out-{i}.txt
  - name: root
    function: math:sqrt
    args: [16]
  - name: helper
    function: pool_helpers:triple
    args: [7]
    timeout: 30                     # a function with a timeout runs in a child process
  - name: broken
    command: ["sh", "-c", "echo no-input >&2; exit 3"]
"""


def sdpflow(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from sdpflow.cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_pool_run_then_timeline(tmp_path):
    (tmp_path / "tasks.yaml").write_text(TASKS)
    (tmp_path / "pool_helpers.py").write_text("def triple(x):\n    return 3 * x\n")
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    done = sdpflow("--db", db, "pool", "run", "tasks.yaml", "--out", "out", "--no-progress", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "1 of 8 tasks of pool 'demo' did not finish" in done.stderr
    assert "finished │     7" in done.stdout and "exit status 3: no-input" in done.stdout
    assert [(tmp_path / f"out-{i}.txt").read_text() for i in range(5)] == [f"{i}\n" for i in range(5)]
    records = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    counts = {}
    for record in records:
        counts[record["event"]] = counts.get(record["event"], 0) + 1
    assert counts == {"submitted": 8, "started": 8, "finished": 7, "failed": 1}
    assert {r["task"]: r.get("result") for r in records if r["event"] == "finished" and r["kind"] == "function"} == {
        "root": "4.0", "helper": "21"}
    store = RunStore(db)
    (run,) = store.list_runs(pipeline="pool")
    assert run["status"] == "failed" and len(store.get_tasks(run["id"])) == 8

    drawn = sdpflow("pool", "timeline", "out/events.jsonl", "--out", "chart", cwd=tmp_path)
    assert drawn.returncode == 0, drawn.stderr
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "chart.html").read_text().count("<rect") == 8


def test_bad_pool_files_exit_2_with_one_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: x\ntasks:\n  - name: a\n    command: 'true'\n    colour: red\n")
    done = sdpflow("pool", "run", "bad.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: bad.yaml: key 'tasks.0.colour': unknown key"]
    (tmp_path / "both.yaml").write_text("tasks:\n  - {name: a, command: 'true', function: 'math:sqrt'}\n")
    done = sdpflow("pool", "run", "both.yaml", cwd=tmp_path)
    assert done.returncode == 2 and "give exactly one of command and function" in done.stderr
    (tmp_path / "cwd.yaml").write_text("tasks:\n  - {name: a, function: 'math:sqrt', args: [4], cwd: /tmp}\n")
    done = sdpflow("pool", "run", "cwd.yaml", cwd=tmp_path)
    assert done.returncode == 2 and "cwd, env, stdout and stderr apply to commands only" in done.stderr
    done = sdpflow("pool", "timeline", "missing.jsonl", cwd=tmp_path)
    assert done.returncode == 2 and "event log missing.jsonl does not exist" in done.stderr


def test_pool_out_of_foreign_files_needs_overwrite_and_keeps_them(tmp_path):
    (tmp_path / "tasks.yaml").write_text("name: tiny\ntasks:\n  - name: one\n    command: [\"true\"]\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "events.jsonl").write_text("someone else's log\n")
    (out / "notes.txt").write_text("mine")
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    refused = sdpflow("--db", db, "pool", "run", "tasks.yaml", "--out", "out", "--no-progress", cwd=tmp_path)
    assert refused.returncode == 2 and "holds files sdpflow did not write" in refused.stderr
    clash = sdpflow("--db", db, "pool", "run", "tasks.yaml", "--out", "out", "--no-progress", "--overwrite", cwd=tmp_path)
    assert clash.returncode == 2 and "events.jsonl was not written by sdpflow" in " ".join(clash.stderr.split())
    assert (out / "events.jsonl").read_text() == "someone else's log\n"
    (out / "events.jsonl").unlink()
    done = sdpflow("--db", db, "pool", "run", "tasks.yaml", "--out", "out", "--no-progress", "--overwrite", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (out / "notes.txt").read_text() == "mine" and (out / "events.jsonl").is_file()
    assert not (out / ".sdpflow.lock").exists()


def test_pool_file_cluster_section_and_tls(tmp_path):
    """A pool file's cluster: section chooses the cluster; its local scheduler speaks TLS."""
    (tmp_path / "tasks.yaml").write_text(
        "name: tls\ncluster: {spec: 'local:1', threads_per_worker: 1}\n"
        "tasks:\n  - name: where\n    function: pool_where:scheduler\n")
    (tmp_path / "pool_where.py").write_text(
        "def scheduler():\n    from distributed import get_worker\n    return get_worker().scheduler.address\n")
    done = sdpflow("--db", f"sqlite:///{tmp_path / 'runs.db'}", "pool", "run", "tasks.yaml", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = RunStore(f"sqlite:///{tmp_path / 'runs.db'}").list_runs(limit=1)
    tasks = RunStore(f"sqlite:///{tmp_path / 'runs.db'}").get_tasks(rows[0]["id"])
    assert tasks[0]["status"] == "finished" and "tls://127.0.0.1:" in tasks[0]["result"]
