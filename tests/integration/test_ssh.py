"""Dask over SSH for real: sshd on localhost (.ci/services/30-sshd.sh), two workers running
executables as tasks, and a task pool (executables and functions) on them."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from sdpflow.config.cluster import ClusterConfig
from sdpflow.engine.cluster import MEMORY_ENV, open_cluster
from sdpflow.errors import ClusterError

pytestmark = pytest.mark.ssh


@pytest.fixture()
def ssh_config():
    host, port, key = (os.environ.get(f"SDPFLOW_TEST_SSH_{k}") for k in ("HOST", "PORT", "KEY"))
    if not (host and port and key):
        if os.environ.get("SDPFLOW_CI"):
            pytest.fail("sshd is not set up: .ci/services/30-sshd.sh should have exported SDPFLOW_TEST_SSH_*")
        pytest.skip("no test sshd here (start one with .ci/services/30-sshd.sh)")
    return {"hosts": [host], "port": int(port), "key_file": key, "workers_per_host": 2, "threads_per_worker": 1}


def dask_spec_processes() -> list[int]:
    """Processes started over SSH by distributed (scheduler and workers)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if "distributed.cli.dask_spec" in " ".join(proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


def test_two_ssh_workers_run_executables_and_stop(ssh_config):
    python, memory_env = sys.executable, MEMORY_ENV

    def run_executable(index: int) -> tuple[int, int]:
        """A task that runs an executable, as a task pool does; it sees the worker's memory budget."""
        import subprocess

        code = f"import os; print({index} ** 3, os.environ['{memory_env}'])"
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        return int(out[0]), int(out[1])

    assert dask_spec_processes() == []
    config = ClusterConfig(spec="ssh", memory_limit="1GiB", ssh=ssh_config, start_timeout=60)
    with open_cluster(config) as client:
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2
        assert len(dask_spec_processes()) == 2  # the scheduler's and the workers' (one host)
        futures = client.map(run_executable, range(12), pure=False)
        results = client.gather(futures)
        who = client.who_has(futures)
    assert [r[0] for r in results] == [k ** 3 for k in range(12)]
    assert {r[1] for r in results} == {2**30}
    assert len({w for ws in who.values() for w in ws}) == 2  # both workers took tasks
    deadline = time.monotonic() + 15
    while dask_spec_processes() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert dask_spec_processes() == []


def test_ssh_refused_is_a_cluster_error(ssh_config):
    config = ClusterConfig(spec="ssh", ssh={**ssh_config, "port": 9}, start_timeout=20)
    start = time.monotonic()
    with pytest.raises(ClusterError, match=r"cannot start Dask over SSH on 127\.0\.0\.1 port 9"):
        with open_cluster(config):
            pass
    assert time.monotonic() - start < 20


def test_task_pool_on_two_ssh_workers(ssh_config, tmp_path):
    import json
    import math

    from sdpflow import TaskPool
    from sdpflow.engine.taskpool import TaskError
    from sdpflow.store import RunStore

    marker = f"sdpflow-ssh-pool-{os.getpid()}"

    def fails(k: int) -> int:
        raise ValueError(f"task {k} fails on purpose")

    assert dask_spec_processes() == []
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}")
    pool = TaskPool("ssh-pool", events=tmp_path / "events.jsonl", db=store, out_dir=tmp_path)
    for k in range(8):  # executables: exit status k % 3 after a short nap (so both workers get some)
        pool.add_task(f"exe-{k}", sys.executable, "-c", f"import sys, time; time.sleep(0.2); sys.exit({k % 3})",
                      "--", marker)
    pool.add_task("exe-slow", sys.executable, "-c", "import time; time.sleep(60)", "--", marker, timeout=2)
    for k in range(6):
        pool.add_task(f"fn-{k}", math.factorial, k + 5)
    pool.add_task("fn-fails", fails, 7)
    results = pool.run(ClusterConfig(spec="ssh", memory_limit="1GiB", ssh=ssh_config, start_timeout=60))

    assert {f"exe-{k}": results[f"exe-{k}"] for k in range(8)} == {f"exe-{k}": k % 3 for k in range(8)}
    assert results["exe-slow"] == -9  # killed, with its process group, at the timeout
    assert [results[f"fn-{k}"] for k in range(6)] == [math.factorial(k + 5) for k in range(6)]
    assert isinstance(results["fn-fails"], TaskError) and "task 7 fails on purpose" in str(results["fn-fails"])
    statuses = pool.statuses()
    assert {name: statuses[name] for name in statuses if name.startswith("exe-") and name != "exe-slow"} == {
        f"exe-{k}": ("finished" if k % 3 == 0 else "failed") for k in range(8)}
    assert statuses["exe-slow"] == "timed-out"
    assert [statuses[f"fn-{k}"] for k in range(6)] == ["finished"] * 6 and statuses["fn-fails"] == "failed"
    assert store.get_run(pool.run_id)["status"] == "failed"  # 6 of 16 tasks did not finish
    assert len(store.get_tasks(pool.run_id)) == 16

    # Every task ran on one of the two SSH workers, and both took some.
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    ends = [r for r in records if r["event"] in ("finished", "failed", "timed-out")]
    assert len(ends) == 16
    assert len({r["worker"] for r in ends}) == 2
    assert len({r["pid"] for r in ends}) == 2

    # Nothing is left: no scheduler or worker started over SSH, no executable of the pool.
    deadline = time.monotonic() + 15
    while dask_spec_processes() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert dask_spec_processes() == []
    leftovers = [p.pid for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []
