"""Dask over SSH for real: sshd on localhost (.ci/services/30-sshd.sh), two workers running
executables as tasks. (Task pools run the same way once they land; here plain subprocesses.)"""

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
