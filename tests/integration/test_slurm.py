"""Dask workers in real SLURM jobs (the one-node cluster of .ci/services/20-slurm.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sdpflow.config.cluster import ClusterConfig
from sdpflow.engine.cluster import MEMORY_ENV, open_cluster
from sdpflow.errors import ClusterError

pytestmark = pytest.mark.slurm

N = 3000
EXPECTED = sum(k * k for k in range(N))


def slurm_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, check=False).stdout
    return any(state in out.split() for state in ("idle", "mix", "alloc"))


@pytest.fixture(autouse=True)
def slurm():
    if not slurm_up():
        if os.environ.get("SDPFLOW_CI"):
            pytest.fail("SLURM is not running: .ci/services/20-slurm.sh should have started it")
        pytest.skip("no SLURM cluster here (start one with .ci/services/20-slurm.sh)")
    assert queue() == [], "jobs left in the queue before the test"
    yield
    assert wait_empty_queue() == [], "sdpflow left SLURM jobs behind"


def queue() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, check=True).stdout
    return out.split("\n")[:-1]


def wait_empty_queue(timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (jobs := queue()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return jobs


def sum_of_squares(client, n: int = N, chunks: int = 6) -> int:
    bounds = [(i * n // chunks, (i + 1) * n // chunks) for i in range(chunks)]
    parts = client.map(lambda b: sum(k * k for k in range(*b)), bounds, pure=False)
    return client.submit(sum, parts).result()


#: Job output files go here, not into the working directory.
LOGS = tempfile.mkdtemp(prefix="sdpflow-slurm-logs-")


def slurm_config(cluster_kwargs: dict | None = None, **changes) -> ClusterConfig:
    job = {"cores": 1, "processes": 1, "memory": "1GiB", "walltime": "00:10:00", "log_directory": LOGS}
    job.update(cluster_kwargs or {})
    return ClusterConfig.model_validate({"spec": "slurm", "start_timeout": 60, "cluster_kwargs": job, **changes})


def test_fixed_jobs_match_local_result_and_leave_no_jobs():
    with open_cluster("local:1") as client:
        local = sum_of_squares(client)
    with open_cluster(slurm_config(jobs=2)) as client:
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2
        assert len([j for j in queue() if j.endswith("RUNNING")]) == 2
        assert sum_of_squares(client) == local == EXPECTED
        budgets = client.run(lambda: int(os.environ[MEMORY_ENV]))
        assert set(budgets.values()) == {2**30}  # 1 GiB per job, one worker per job


def test_failed_run_leaves_no_jobs():
    with pytest.raises(ZeroDivisionError):
        with open_cluster(slurm_config(jobs=1)) as client:
            assert len(queue()) == 1
            client.submit(lambda: 1 / 0).result()


def test_adaptive_scales_up_for_work_and_back_down():
    config = slurm_config(adapt_kwargs={"minimum_jobs": 0, "maximum_jobs": 2, "interval": "500ms",
                                         "wait_count": 2, "target_duration": "1s"})
    with open_cluster(config) as client:
        assert len(client.scheduler_info()["workers"]) == 0
        parts = client.map(lambda k: (time.sleep(1.5), k * k)[1], range(8), pure=False)
        total = client.submit(sum, parts)
        assert total.result(timeout=120) == sum(k * k for k in range(8))
        peak = len(client.scheduler_info()["workers"])
        # Workers holding results are kept (their data would be lost); released, they may go.
        del parts, total
        deadline = time.monotonic() + 30
        while client.scheduler_info()["workers"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert client.scheduler_info()["workers"] == {}, "idle workers were not retired"
        assert wait_empty_queue() == []
    assert 1 <= peak <= 2


def test_pending_jobs_fail_fast_and_are_cancelled():
    config = slurm_config(jobs=1, start_timeout=5,
                          cluster_kwargs={"memory": "1GiB", "job_extra_directives": ["--begin=now+1hour"]})
    start = time.monotonic()
    with pytest.raises(ClusterError, match=r"0 of 1 slurm workers joined within 5 s: job \d+ PENDING \(BeginTime\)"):
        with open_cluster(config):
            pass
    assert time.monotonic() - start < 20


def test_job_slurm_would_reject_fails_at_once():
    with pytest.raises(ClusterError, match="SLURM rejects the worker job"):
        with open_cluster(slurm_config(jobs=1, cluster_kwargs={"memory": "100TiB"})):
            pass


def test_job_script_has_lifetime_and_worker_python():
    import dask

    from sdpflow.engine.backends import get_backend
    from sdpflow.engine.cluster import dask_settings

    config = slurm_config(jobs=0)
    with dask.config.set(dask_settings(config)):
        cluster = get_backend("slurm").start(config, None)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "--lifetime 540s --lifetime-stagger 30s" in script
    assert sys.executable in script
    assert "export DASK_DISTRIBUTED__COMM__RETRY__COUNT=5" in script  # safe-scaling settings reach workers
    assert "#SBATCH --mem=" in script
    assert "export MALLOC_MMAP_THRESHOLD_=33554432" in script  # before the worker process starts


def test_cluster_check_cli_two_jobs():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "sdpflow"), "cluster", "check", "slurm", "--jobs", "2",
         "--set", "cluster_kwargs.memory=1GiB", "--set", f"cluster_kwargs.log_directory={LOGS}", "--timeout", "60"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "workers: 2  threads: 2  memory: 2.0 GiB" in result.stdout
    assert "ok: cluster shut down" in result.stdout


def test_cluster_check_with_an_unreachable_controller_says_so(tmp_path):
    """A controller that does not answer is exit 3 and names slurmctld, not the job's settings."""
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")).read_text()
    conf = "\n".join(line for line in conf.splitlines() if not line.startswith(("SlurmctldPort", "MessageTimeout")))
    (tmp_path / "slurm.conf").write_text(conf + "\nSlurmctldPort=9\nMessageTimeout=1\n")  # port 9: nobody listens
    result = subprocess.run(
        [str(Path(sys.executable).parent / "sdpflow"), "cluster", "check", "slurm", "--timeout", "30"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "SLURM_CONF": str(tmp_path / "slurm.conf")},
    )
    assert result.returncode == 3, result.stderr
    assert "SLURM controller does not answer" in result.stderr and "scontrol ping" in result.stderr
    assert "cluster_kwargs" not in result.stderr


# -- a real pipeline on SLURM workers ---------------------------------------------------------

#: Small enough for a minute, big enough for three real major cycles (mgain stops each one early).
IMAGE = dict(size=(256, 256), scale="60asec")
CLEAN = dict(niter=400, nmajor=3, mgain=0.4, auto_threshold=1.0)


@pytest.fixture(scope="module")
def small_ms(tmp_path_factory):
    from sdpflow.config.simulate import SimulateConfig
    from sdpflow.pipelines.simulate import simulate_observation

    return simulate_observation(SimulateConfig(preset="small"), tmp_path_factory.mktemp("obs") / "obs.ms").ms


def continuum_config(ms):
    from sdpflow.config.imaging import ContinuumConfig, DeconvolutionConfig, ImagingConfig, PartitionConfig

    cluster = slurm_config(cluster_kwargs={"memory": "2GiB"}).model_dump()
    return ContinuumConfig(ms=str(ms), imaging=ImagingConfig(**IMAGE), deconvolution=DeconvolutionConfig(**CLEAN),
                           partition=PartitionConfig(time_chunks=2), cluster=cluster)


def restored(run_dir: Path):
    from sdpflow.radio import fits

    return fits.read_fits_image(run_dir / "restored.fits").data[0, 0]


class QueueWatch:
    """A run observer that snapshots `squeue` when an event of the run matches."""

    def __init__(self, event: str, stage: str | None = None, then=None):
        self.event, self.stage, self.then = event, stage, then
        self.seen: list[str] | None = None

    def __call__(self, record: dict) -> None:
        if record["event"] == self.event and (self.stage is None or record["stage"] == self.stage) and self.seen is None:
            self.seen = queue()
            if self.then is not None:
                self.then()


def test_continuum_on_slurm_workers_matches_local_run(small_ms, tmp_path):
    import json

    import numpy as np

    from sdpflow.pipelines import start_run
    from sdpflow.store import RunStore

    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    config = continuum_config(small_ms)
    local = start_run("continuum", config, tmp_path / "local", store=store, cluster_spec="local:2")
    watch = QueueWatch("stage-started", "cycle-01")
    batch = start_run("continuum", config, tmp_path / "slurm", store=store, cluster_spec="slurm:2", observers=[watch])

    # The major cycles ran while two worker jobs were running; the jobs were cancelled after.
    assert watch.seen is not None and len([j for j in watch.seen if j.endswith("RUNNING")]) == 2, watch.seen
    assert wait_empty_queue() == []
    record = store.get_run(batch.run_id)
    assert (record["status"], record["cluster"]) == ("completed", "slurm:2")
    assert batch.ran == local.ran == ["psf", "cycle-01", "cycle-02", "cycle-03", "restore", "report"]

    # Three major cycles really cleaned (none skipped as converged), and the images agree.
    cycles = json.loads((batch.out_dir / "summary.json").read_text())["cycles"]
    assert [c.get("skipped") for c in cycles] == [None, None, None]
    assert cycles[-1]["peak_residual_jy"] < 0.5 * cycles[0]["peak_residual_jy"]
    on_slurm, on_laptop = restored(batch.out_dir), restored(local.out_dir)
    assert on_slurm.shape == (256, 256)
    peak = float(np.abs(on_laptop).max())
    assert peak > 0.5  # Jy/beam: the bright sources are there
    np.testing.assert_allclose(on_slurm, on_laptop, rtol=0, atol=1e-5 * peak)


def test_failed_continuum_run_on_slurm_is_recorded_and_leaves_no_jobs(small_ms, tmp_path):
    from sdpflow.errors import DataError
    from sdpflow.pipelines import start_run
    from sdpflow.store import RunStore

    # The MS is read when the run is planned, then deleted once the workers are up: the
    # chunk reads on the workers fail (a data error: no retry), the stage fails, the run fails.
    ms = tmp_path / "doomed.ms"
    shutil.copytree(small_ms, ms)
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    watch = QueueWatch("cluster-opened", then=lambda: shutil.rmtree(ms))
    with pytest.raises(DataError, match="no such MeasurementSet"):
        start_run("continuum", continuum_config(ms), tmp_path / "out", store=store, cluster_spec="slurm:2",
                  observers=[watch])
    assert watch.seen is not None and len([j for j in watch.seen if j.endswith("RUNNING")]) == 2, watch.seen
    (record,) = store.list_runs()
    assert record["status"] == "failed"
    assert f"{ms}: no such MeasurementSet" in record["error"]
    assert store.get_stages(record["id"])["psf"]["status"] == "failed"
    assert not (tmp_path / "out" / "restored.fits").exists()
    assert wait_empty_queue() == []


#: Items of 1.5 s on two one-worker jobs: about a minute of work, longer than a worker lives.
COUNT = 80


def test_workers_at_the_end_of_their_walltime_are_replaced_and_nothing_reruns(tmp_path):
    """Worker jobs with a 1-minute walltime leave after ~35 s (lifetime = walltime - margin,
    staggered); adaptive scaling replaces them while a ~1-minute fan-out stage runs. The run
    completes with every row, no item runs again after it was recorded (execution marks written
    by the items themselves against the run database), and the queue is empty after."""
    from collections import Counter

    from sdpflow.pipelines import start_run
    from sdpflow.store import RunStore
    from tests.integration.replacement_pipeline import SlowConfig

    marks = tmp_path / "marks"
    marks.mkdir()
    cluster = slurm_config(cluster_kwargs={"walltime": "00:01:00", "lifetime_margin": 25},
                           adapt_kwargs={"minimum_jobs": 2, "maximum_jobs": 2, "interval": "1s", "wait_count": 5,
                                         "target_duration": "5s"}, start_timeout=120)
    config = SlowConfig(count=COUNT, seconds_per_item=1.5, marks=str(marks), cluster=cluster.model_dump())
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    result = start_run("tests.integration.replacement_pipeline:SLOW", config, tmp_path / "out", store=store)
    assert store.get_run(result.run_id)["status"] == "completed"
    assert result.ran == ["squares", "total"]

    rows = store.result_rows(result.run_id, "slow_squares")
    assert sorted((row["n"], row["square"]) for row in rows) == [(n, float(n * n)) for n in range(COUNT)]
    jobs = Counter(row["job"] for row in rows)
    assert len(jobs) >= 3, f"no worker was replaced: items ran in jobs {dict(jobs)}"

    records = store.item_records(result.run_id, "squares")
    assert len(records) == COUNT and {r["status"] for r in records.values()} == {"completed"}
    assert {r["attempts"] for r in records.values()} == {1}
    for n in range(COUNT):  # every execution of an item started before its completion was recorded
        starts = [float(line.split()[0]) for line in (marks / str(n)).read_text().splitlines()]
        assert max(starts) < records[f"n{n:04d}"]["finished"], f"item {n} ran again after it completed"
    reruns = sum(len((marks / str(n)).read_text().splitlines()) - 1 for n in range(COUNT))
    print(f"jobs: {dict(jobs)}; items run twice (their first run lost with its worker, never recorded): {reruns}")
