"""Fault injection: SIGKILL of the driver, the worker or the scheduler at seeded random points of an ICAL
run, a fan-out flow and a task pool; then resume, and compare with an uninterrupted run.

Each scenario measures one uninterrupted run, then draws (seeded) for every trial a target and a delay
within that run's duration. After the kill the run is resumed (``sdpflow runs resume``; a run killed
before it was recorded is started again into the same folder) and must end completed with the same
products, byte for byte or array for array, and a consistent run database. With
``SDPFLOW_FAULTS_JSON=path`` the trials are written there (docs/reliability.md is made from them).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import subprocess

import numpy as np
import pytest

from sdpflow.store import RunStore
from tests.conftest import require_service
from tests.faults.harness import (
    TARGETS, Drivers, ExternalCluster, Trial, digest, dump_and_kill, kill_session, orphans, summary_line,
    write_outcomes,
)

pytestmark = pytest.mark.faults

TRIALS = int(os.environ.get("SDPFLOW_FAULT_TRIALS", "20"))
SEED = int(os.environ.get("SDPFLOW_FAULT_SEED", "14"))
#: Driver kills are the cheap trials; a worker or scheduler kill costs a restart and the worker's imports.
TARGET_WEIGHTS = (2, 1, 1)
#: PostgreSQL restarts: each costs the server's restart as well.
PG_TRIALS = int(os.environ.get("SDPFLOW_FAULT_PG_TRIALS", "5"))
#: cluster.connect_timeout of the drivers: how long a driver tries to reconnect to a killed scheduler.
CONNECT_TIMEOUT = 2


@pytest.fixture(scope="module")
def drivers():
    return Drivers()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    external = ExternalCluster(tmp_path_factory.mktemp("cluster"))
    external.start()
    yield external
    external.stop()


# -- products and the run database -------------------------------------------------------------------

def image_products(out: Path) -> dict[str, object]:
    """ICAL's products as comparable values: FITS arrays, gain tables, summary.json without timings."""
    import h5py
    from astropy.io import fits

    values: dict[str, object] = {}
    for name in ("dirty", "psf", "model", "residual", "restored"):
        path = out / f"{name}.fits"
        values[path.name] = fits.getdata(path).tobytes() if path.exists() else None
    gains = out / "gains.h5"
    if gains.exists():
        with h5py.File(gains) as h5:
            h5.visititems(lambda key, item: values.__setitem__(f"gains.h5/{key}", np.asarray(item[()]).tobytes())
                          if isinstance(item, h5py.Dataset) else None)
    summary = out / "summary.json"
    if summary.exists():
        data = json.loads(summary.read_text())
        data.pop("stage_seconds", None)
        for cycle in data.get("cycles", []):
            cycle.pop("elapsed_s", None)
        values["summary.json"] = data
    else:
        values["summary.json"] = None
    return values


def file_products(out: Path, pattern: str) -> dict[str, object]:
    return {str(path.relative_to(out)): digest(path) for path in sorted(out.glob(pattern))}


def database_problems(store: RunStore, run_id: str, baseline: dict) -> list[str]:
    """A completed run, no stage left running, every item completed once, the same result rows."""
    problems = []
    run = store.get_run(run_id)
    if run["status"] != "completed":
        problems.append(f"run {run['status']}")
    stages = store.get_stages(run_id)
    if {name: stage["status"] for name, stage in stages.items()} != {name: "completed" for name in baseline["stages"]}:
        problems.append(f"stages {sorted((n, s['status']) for n, s in stages.items())}")
    if store.item_counts(run_id) != baseline["items"]:
        problems.append(f"items {store.item_counts(run_id)}")
    return problems


def lost_products(products: dict, baseline: dict) -> int:
    return sum(1 for key, value in baseline.items() if products.get(key) != value) + len(set(products) - set(baseline))


# -- a trial loop shared by the flows ---------------------------------------------------------------

def flow_trials(scenario: str, tmp_path: Path, drivers: Drivers, cluster: ExternalCluster, run_args, products,
                rows: str | None = None, db: str | None = None, faults: dict | None = None,
                trials: int = TRIALS) -> list[Trial]:
    """``trials`` runs of ``sdpflow run ...run_args(out)``, each hit by one of ``faults`` (name → action;
    default: SIGKILL of the driver, the worker or the scheduler), resumed and compared with a baseline run."""
    db = db or f"sqlite:///{tmp_path / 'runs.db'}"
    store = RunStore(db)
    faults = faults or {"driver": None, "worker": cluster.kill_worker, "scheduler": cluster.kill_scheduler}
    weights = [dict(zip(TARGETS, TARGET_WEIGHTS)).get(name, 1) for name in faults]

    def sdpflow(*args):
        return ["--db", db, "--cluster", cluster.address, *args]

    def run_with_timeout(out):
        return [*run_args(out), "--set", f"cluster.connect_timeout={CONNECT_TIMEOUT}"]

    for name in ("warm-up", "baseline"):  # the first run pays for the worker's imports
        started = time.monotonic()
        assert drivers.run(sdpflow(*run_with_timeout(tmp_path / name)), tmp_path / f"{name}.log") == 0, \
            (tmp_path / f"{name}.log").read_text()[-3000:]
        duration = time.monotonic() - started
    base_id = runs_in(store, tmp_path / "baseline")[0]["id"]
    baseline = {"stages": list(store.get_stages(base_id)), "items": store.item_counts(base_id)}
    base_products = products(tmp_path / "baseline")
    base_rows = store.result_rows(base_id, rows) if rows else None
    rng = random.Random(f"{scenario}-{SEED}")
    done = []
    for number in range(trials):
        target = rng.choices(list(faults), weights=weights)[0]
        trial = Trial(scenario, number, target, round(rng.uniform(0.05, 0.95) * duration, 3))
        done.append(trial)
        out, log = tmp_path / f"trial-{number}", tmp_path / f"trial-{number}.log"
        driver = drivers.start(sdpflow(*run_with_timeout(out)), log)
        time.sleep(trial.delay_s)
        killed_at = time.monotonic()
        if target == "driver":
            kill_session(driver.pid)
        else:
            faults[target]()
        if target == "scheduler":
            cluster.restart()  # while the driver finds out
        driver.join(60)
        if driver.exitcode is None:
            trial.problems.append("driver still running 60 s after the fault")
            dump_and_kill(driver)
        trial.driver_exit = driver.exitcode
        trial.driver_ended_s = round(time.monotonic() - killed_at, 2)
        if target == "worker":
            cluster.wait_for_worker()
        records = runs_in(store, out)
        if len(records) > 1:
            trial.problems.append(f"{len(records)} runs recorded")
        if not records:  # killed before the run was recorded: start it again into the same folder
            trial.resumed = True
            trial.resume_exit = drivers.run(sdpflow(*run_with_timeout(out)), log)
            records = runs_in(store, out)
        elif records[0]["status"] != "completed":
            trial.resumed = True
            trial.resume_exit = drivers.run(sdpflow("runs", "resume", records[0]["id"]), log)
        if trial.resume_exit not in (None, 0):
            trial.problems.append(f"resume exit {trial.resume_exit}: {log.read_text().strip().splitlines()[-1:]}")
        if not records:
            trial.problems.append("no run recorded")
            trial.lost = len(base_products)
            continue
        run_id = records[0]["id"]
        trial.problems += database_problems(store, run_id, baseline)
        if (out / ".staging").exists():
            trial.problems.append(".staging left")
        trial.lost = lost_products(products(out), base_products)
        if rows:
            trial.lost += len({json.dumps(r, sort_keys=True) for r in base_rows}
                              ^ {json.dumps(r, sort_keys=True) for r in store.result_rows(run_id, rows)})
        trial.survived = not trial.problems and trial.lost == 0
    write_outcomes(done, {"baseline_s": round(duration, 2), "seed": SEED})
    return done


def runs_in(store: RunStore, out: Path) -> list[dict]:
    return [run for run in store.list_runs(limit=1000) if Path(run["out_dir"]) == out]


def test_ical_survives_kills_and_resumes_to_the_same_images(tmp_path, drivers, cluster):
    from sdpflow.config.simulate import SimulateConfig
    from sdpflow.pipelines.simulate import simulate_observation

    ms = simulate_observation(SimulateConfig(preset="small", stations=8, times=6, channels=2, n_faint=3),
                              tmp_path / "sim" / "obs.ms").ms

    def run_args(out):
        return ["run", "ical", "--ms", ms, "--out", out, "--size", "64", "64", "--scale", "120asec",
                "--niter", "50", "--nmajor", "2"]

    trials = flow_trials("ical", tmp_path, drivers, cluster, run_args, image_products)
    assert all(trial.survived for trial in trials), summary_line(trials)


def fan_out_args(out):
    return ["run", "flow", "tests.engine.fanout_pipeline:SQUARES", "--out", out, "--set", "count=400",
            "--set", "files=true", "--set", "sleep_ms=2"]


def fan_out_products(out):
    return {**file_products(out, "items/*.txt"), **file_products(out, "summary.json")}


def test_fan_out_survives_kills_and_resumes_every_item_once(tmp_path, drivers, cluster):
    trials = flow_trials("fan-out", tmp_path, drivers, cluster, fan_out_args, fan_out_products, rows="squares")
    assert all(trial.survived for trial in trials), summary_line(trials)


def test_task_pool_kills_leave_no_process_and_a_rerun_makes_the_same_files(tmp_path, drivers, cluster):
    """A pool has no resume: after a kill no task process may be left, the killed run must not read as
    running, and ``pool run`` again into the same folder (its lock released by the kill) makes the same files."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    store = RunStore(db)
    count = 16

    def pool_args(out: Path, marker: str):
        spec = tmp_path / f"{out.name}.yaml"
        script = f"sleep 0.15 && echo {{i}} > {out}/t{{i}}.txt"
        spec.write_text(json.dumps({"name": "faults", "cluster": {"connect_timeout": CONNECT_TIMEOUT}, "tasks": [
            {"name": "t{i}", "repeat": count, "command": ["sh", "-c", script, marker]}]}))
        return ["--db", db, "--cluster", cluster.address, "pool", "run", spec, "--out", out, "--no-progress"]

    for name in ("warm-up", "baseline"):
        started = time.monotonic()
        assert drivers.run(pool_args(tmp_path / name, "fault-pool-base"), tmp_path / f"{name}.log") == 0, \
            (tmp_path / f"{name}.log").read_text()[-3000:]
        duration = time.monotonic() - started
    baseline = file_products(tmp_path / "baseline", "t*.txt")
    assert len(baseline) == count
    rng = random.Random(f"pool-{SEED}")
    trials = []
    for number in range(TRIALS):
        target = rng.choices(TARGETS, weights=TARGET_WEIGHTS)[0]
        trial = Trial("task pool", number, target, round(rng.uniform(0.05, 0.95) * duration, 3))
        trials.append(trial)
        out, log, marker = tmp_path / f"trial-{number}", tmp_path / f"trial-{number}.log", f"fault-pool-{number}-"
        known = {run["id"] for run in store.list_runs(limit=1000)}
        driver = drivers.start(pool_args(out, marker), log)
        time.sleep(trial.delay_s)
        killed_at = time.monotonic()
        if target == "driver":
            kill_session(driver.pid)
        elif target == "worker":
            cluster.kill_worker()
        else:
            cluster.kill_scheduler()
            cluster.restart()
        driver.join(60)
        if driver.exitcode is None:
            trial.problems.append("driver still running 60 s after the kill")
            dump_and_kill(driver)
        trial.driver_exit = driver.exitcode
        trial.driver_ended_s = round(time.monotonic() - killed_at, 2)
        if target == "worker":
            cluster.wait_for_worker()
        deadline = time.monotonic() + 5
        while orphans(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        if orphans(marker):
            trial.problems.append(f"{len(orphans(marker))} task processes outlived the kill")
        from sdpflow.pipelines.runner import is_stopped

        for run in store.list_runs(limit=1000):
            if run["id"] not in known and run["status"] == "running" and not is_stopped(run):
                trial.problems.append(f"killed pool {run['id']} still reads as running")
        if trial.driver_exit != 0 or file_products(out, "t*.txt") != baseline:
            trial.resumed = True
            trial.resume_exit = drivers.run(pool_args(out, marker), log)
            if trial.resume_exit != 0:
                trial.problems.append(f"rerun exit {trial.resume_exit}: {log.read_text().strip().splitlines()[-1:]}")
        last = [run for run in store.list_runs(limit=1000) if run["id"] not in known][0]
        rows = store.get_tasks(last["id"])
        if last["status"] != "completed" or sorted(row["status"] for row in rows) != ["finished"] * count:
            trial.problems.append(f"last run {last['status']}, tasks {sorted(row['status'] for row in rows)}")
        trial.lost = lost_products(file_products(out, "t*.txt"), baseline)
        trial.survived = not trial.problems and trial.lost == 0
    write_outcomes(trials, {"baseline_s": round(duration, 2), "seed": SEED})
    assert all(trial.survived for trial in trials), summary_line(trials)


@pytest.fixture(scope="module")
def postgres():
    from tests.faults.harness import PrivatePostgres

    try:
        server = PrivatePostgres()
    except (OSError, KeyError, subprocess.SubprocessError) as error:
        require_service(False, f"a private PostgreSQL server ({error})")
    yield server
    server.stop()


def test_postgres_restarted_mid_run_loses_nothing(tmp_path, drivers, cluster, postgres):
    """The run database's server restarted (immediate mode, as a crash) at a random point of a fan-out run."""
    trials = flow_trials("PostgreSQL restart", tmp_path, drivers, cluster, fan_out_args, fan_out_products,
                         rows="squares", db=postgres.url, faults={"postgres": postgres.restart}, trials=PG_TRIALS)
    assert all(trial.survived for trial in trials), summary_line(trials)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_runs_on_one_database_at_once(tmp_path, drivers, cluster, postgres, backend):
    """Two fan-out runs write one run database at the same time: both complete with every item and row."""
    db = f"sqlite:///{tmp_path / 'runs.db'}" if backend == "sqlite" else postgres.url
    store = RunStore(db)
    args = lambda out: ["--db", db, "--cluster", cluster.address, *fan_out_args(out)]  # noqa: E731
    first, second = (drivers.start(args(tmp_path / name), tmp_path / f"{name}.log") for name in ("first", "second"))
    for driver, name in ((first, "first"), (second, "second")):
        driver.join(120)
        assert driver.exitcode == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    expected = {f"items/{n}.txt": str(n * n) for n in range(400)}
    for name in ("first", "second"):
        run = runs_in(store, tmp_path / name)[0]
        assert run["status"] == "completed"
        assert store.item_counts(run["id"]) == {"squares": {"completed": 400}}
        assert [row["square"] for row in store.result_rows(run["id"], "squares")] == [float(n * n) for n in range(400)]
        assert {key: (tmp_path / name / key).read_text() for key in expected} == expected
    write_outcomes([Trial(f"two runs at once ({backend})", 0, "none", 0.0, driver_exit=0, survived=True)], {"seed": SEED})
