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


def test_cluster_check_cli_two_jobs():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "sdpflow"), "cluster", "check", "slurm", "--jobs", "2",
         "--set", "cluster_kwargs.memory=1GiB", "--set", f"cluster_kwargs.log_directory={LOGS}", "--timeout", "60"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "workers: 2  threads: 2  memory: 2.0 GiB" in result.stdout
    assert "ok: cluster shut down" in result.stdout
