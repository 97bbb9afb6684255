"""Checkpointed flows: kill and resume, invalidation by outputs, inputs and configuration."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sdpflow.engine.events import read_events
from sdpflow.errors import StageFailed
from sdpflow.pipelines import resume_run, start_run
from sdpflow.store import RunStore
from tests.engine.toy_pipeline import TOY, ToyConfig

REPO = Path(__file__).resolve().parents[2]
TOY_REF = "tests.engine.toy_pipeline:TOY"


@pytest.fixture
def workspace(tmp_path):
    source = tmp_path / "input.txt"
    source.write_text("ab")
    return tmp_path, source


def ledger(tmp_path: Path) -> list[str]:
    path = tmp_path / "ledger.txt"
    return path.read_text().split() if path.exists() else []


def run_toy(store, tmp_path, source, **sections):
    config = ToyConfig(input=str(source), **sections)
    return start_run(TOY_REF, config, tmp_path / "out", store=store)


def test_runs_then_resume_skips_everything(db_url, workspace):
    tmp_path, source = workspace
    store = RunStore(db_url)
    result = run_toy(store, tmp_path, source)
    assert result.ran == ["first", "second"]
    assert (tmp_path / "out" / "b.txt").read_text() == "ABAB!"
    assert store.get_run(result.run_id)["status"] == "completed"
    again = resume_run(result.run_id, store=store)
    assert again.ran == [] and again.skipped == ["first", "second"]
    assert ledger(tmp_path) == ["first", "second"]
    products = {p["path"]: p for p in store.get_products(result.run_id)}
    assert set(products) == {"a.txt", "b.txt"}
    assert products["b.txt"]["provenance"]["versions"]["sdpflow"]
    assert products["b.txt"]["provenance"]["inputs"]["first:a.txt"].startswith("sha256:")


def test_killed_after_stage_one_resume_reruns_only_stage_two(db_url, workspace):
    tmp_path, source = workspace
    script = (
        "import sys; from sdpflow.pipelines import start_run; from sdpflow.store import RunStore;"
        "from tests.engine.toy_pipeline import ToyConfig;"
        f"start_run({TOY_REF!r}, ToyConfig(input=sys.argv[1]), sys.argv[2], store=RunStore(sys.argv[3]))"
    )
    env = {**os.environ, "TOY_KILL_IN": "second", "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-c", script, str(source), str(tmp_path / "out"), db_url],
                            env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    store = RunStore(db_url)
    run = store.list_runs(limit=1, pipeline=TOY_REF)[0]
    assert run["status"] == "running"  # the process died without saying so
    assert store.get_stages(run["id"])["first"]["status"] == "completed"
    assert not (tmp_path / "out" / "b.txt").exists()

    env.pop("TOY_KILL_IN")
    resumed = subprocess.run([sys.executable, "-m", "sdpflow.cli", "--db", db_url, "runs", "resume", run["id"]],
                             env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert "ran second; skipped first" in " ".join(resumed.stdout.split())
    assert ledger(tmp_path) == ["first", "second", "second"]
    assert (tmp_path / "out" / "b.txt").read_text() == "ABAB!"
    assert store.get_run(run["id"])["status"] == "completed"
    assert store.get_stages(run["id"])["second"]["attempt"] == 2
    events = [(e["event"], e["stage"]) for e in read_events(tmp_path / "out" / "events.jsonl")]
    assert ("stage-skipped", "first") in events and events.count(("stage-completed", "second")) == 1


@pytest.mark.parametrize(
    "change, expected",
    [
        ("corrupt-a", ["first", "second"]),
        ("corrupt-b", ["second"]),
        ("delete-b", ["second"]),
        ("input", ["first", "second"]),
        ("config-first", ["first", "second"]),
        ("config-second", ["second"]),
    ],
)
def test_invalidation_reruns_stage_and_dependants_only(db_url, workspace, change, expected):
    tmp_path, source = workspace
    store = RunStore(db_url)
    result = run_toy(store, tmp_path, source)
    out = tmp_path / "out"
    if change == "corrupt-a":
        (out / "a.txt").write_text("tampered")
    elif change == "corrupt-b":
        (out / "b.txt").write_text("tampered")
    elif change == "delete-b":
        (out / "b.txt").unlink()
    elif change == "input":
        source.write_text("xy")
    else:
        section, value = ("first", {"repeat": 3}) if change == "config-first" else ("second", {"suffix": "?"})
        config = store.get_run(result.run_id)["config"]
        config[section].update(value)
        with store.engine.begin() as connection:  # as if the run had been configured differently
            connection.exec_driver_sql(
                "UPDATE runs SET config = %s WHERE id = %s" if store.engine.dialect.name == "postgresql"
                else "UPDATE runs SET config = ? WHERE id = ?", (json.dumps(config), result.run_id))
    again = resume_run(result.run_id, store=store)
    assert again.ran == expected
    assert ledger(tmp_path) == ["first", "second"] + expected
    expected_b = {"input": "XYXY!", "config-first": "ABABAB!", "config-second": "ABAB?"}.get(change, "ABAB!")
    assert (out / "b.txt").read_text() == expected_b


def test_from_and_until_stage(db_url, workspace):
    tmp_path, source = workspace
    store = RunStore(db_url)
    config = ToyConfig(input=str(source))
    first_only = start_run(TOY_REF, config, tmp_path / "out", store=store, until_stage="first")
    assert first_only.ran == ["first"] and not (tmp_path / "out" / "b.txt").exists()
    rest = resume_run(first_only.run_id, store=store)
    assert rest.ran == ["second"] and rest.skipped == ["first"]
    forced = resume_run(first_only.run_id, store=store, from_stage="second")
    assert forced.ran == ["second"]


def test_retries_with_backoff_then_failure_is_recorded(db_url, workspace):
    tmp_path, source = workspace
    store = RunStore(db_url)
    result = run_toy(store, tmp_path, source, second={"failures_before_success": 2})
    assert result.ran == ["first", "second"]
    assert store.get_stages(result.run_id)["second"]["attempt"] == 3
    events = [e["event"] for e in read_events(tmp_path / "out" / "events.jsonl")]
    assert events.count("stage-retrying") == 2

    (tmp_path / "ledger.txt").unlink()
    with pytest.raises(StageFailed, match="stage second failed after 3 attempt"):
        run_toy(store, tmp_path, source, second={"failures_before_success": 5})
    failed = store.list_runs(limit=1, pipeline=TOY_REF)[0]
    assert failed["status"] == "failed" and "transient failure" in failed["error"]
    assert store.get_stages(failed["id"])["first"]["status"] == "completed"
    assert not (tmp_path / "out" / ".staging" / "second" / "b.txt").exists()


def test_a_failing_input_checksum_fails_the_stage_before_its_outputs_land(tmp_path):
    """Input checksums run in the background; their error is the stage's error, and nothing is committed."""
    from sdpflow.engine.flow import Flow, Stage, run_flow

    source = tmp_path / "input.txt"
    source.write_text("x")

    def unreadable(path: str) -> str:
        raise OSError(f"{path}: cannot read")

    def write(ctx) -> None:
        ctx.output("out.txt").write_text("written")

    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    run_id = store.create_run("checksum-flow", {}, str(tmp_path / "out"))
    flow = Flow("checksum-flow", [Stage("only", write, outputs=("out.txt",), inputs=(str(source),),
                                        input_checksum=unreadable)])
    with pytest.raises(StageFailed, match="cannot read"):
        run_flow(flow, store, run_id, tmp_path / "out")
    assert store.get_stages(run_id)["only"]["status"] == "failed"
    assert not (tmp_path / "out" / "out.txt").exists()


def test_a_stage_starts_while_a_dead_drivers_tasks_still_write_its_staging_folder(tmp_path):
    """A killed driver's batches keep running on the workers and recreate .staging/STAGE/<batch>/;
    a resumed stage's start (remove the folder, make it) met the recreated folder and failed with
    FileExistsError (the fault-injection suite found it)."""
    import contextlib
    import threading

    source = tmp_path / "input.txt"
    source.write_text("ab")
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    first = start_run(TOY_REF, ToyConfig(input=str(source)), tmp_path / "out", store=store)
    orphan = tmp_path / "out" / ".staging" / "first" / "a-dead-drivers-batch"
    stop = threading.Event()

    def dead_drivers_batch():
        while not stop.is_set():
            with contextlib.suppress(OSError):  # the resumed stage removes the folder meanwhile
                orphan.mkdir(parents=True, exist_ok=True)

    writer = threading.Thread(target=dead_drivers_batch)
    writer.start()
    try:
        for _ in range(30):  # the window is narrow: give it many chances
            resume_run(first.run_id, store=store, from_stage="first", until_stage="first")
    finally:
        stop.set()
        writer.join()
    assert store.get_stages(first.run_id)["first"]["status"] == "completed"
