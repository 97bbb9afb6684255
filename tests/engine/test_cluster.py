"""open_cluster on real local clusters: results, settings, budgets, errors and clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import dask
import psutil
import pytest

from sdpflow.config.cluster import ClusterConfig
from sdpflow.engine.cluster import (
    MEMORY_ENV,
    SAFE_SCALING,
    SCHEDULER_ENV,
    TASK_MEMORY_ENV,
    open_cluster,
    parse_spec,
    resolve_config,
)
from sdpflow.errors import ClusterError, ClusterSpecError, ConfigError

N = 2000


def sum_of_squares(client, n: int = N, chunks: int = 8) -> int:
    """A map/reduce on the cluster: the same number wherever it runs."""
    bounds = [(i * n // chunks, (i + 1) * n // chunks) for i in range(chunks)]
    parts = client.map(lambda b: sum(k * k for k in range(*b)), bounds, pure=False)
    return client.submit(sum, parts).result()


EXPECTED = sum(k * k for k in range(N))


def child_pids() -> set[int]:
    """Processes under this one, less multiprocessing's resource tracker (it lives as long as we do)."""
    pids = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if not any("resource_tracker" in part for part in child.cmdline()):
                pids.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return pids


def wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    """The pids still alive after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
        time.sleep(0.2)
    return alive


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("local", ("local", None)),
        ("local:3", ("local", "3")),
        ("tcp://10.0.0.1:8786", ("address", "tcp://10.0.0.1:8786")),
        ("SLURM:4", ("slurm", "4")),
        ("ssh:a,b", ("ssh", "a,b")),
        ("kubernetes", ("kubernetes", None)),
    ],
)
def test_parse_spec(spec, expected):
    assert parse_spec(spec) == expected


def test_spec_precedence(monkeypatch):
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://10.1.1.1:8786")
    assert resolve_config(None).spec == "tcp://10.1.1.1:8786"
    assert resolve_config(ClusterConfig(spec="local:2")).spec == "local:2"
    assert resolve_config(ClusterConfig(spec="local:2"), override="slurm").spec == "slurm"
    monkeypatch.delenv(SCHEDULER_ENV)
    assert resolve_config(None).spec == "local"
    config = ClusterConfig(spec="pbs")
    resolve_config(config, override="local")
    assert config.spec == "pbs"  # the caller's section is not changed


def test_local_result_workers_budget_and_no_orphans():
    links = []
    before = child_pids()
    config = ClusterConfig(spec="local:2", threads_per_worker=1, memory_limit="1GiB")
    with open_cluster(config, on_dashboard=links.append) as client:
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2
        assert sum_of_squares(client) == EXPECTED
        env = client.run(lambda: (os.environ[MEMORY_ENV], os.environ[TASK_MEMORY_ENV]))
        assert {tuple(map(int, v)) for v in env.values()} == {(2**30, 2**30)}
        malloc = client.run(lambda: os.environ.get("MALLOC_MMAP_THRESHOLD_"))
        assert set(malloc.values()) == {str(32 * 2**20)}  # set before the worker process started
        assert all(w["memory_limit"] == 2**30 for w in workers.values())
        started = child_pids() - before
        assert len(started) >= 2
    assert links and links[0].startswith("http://127.0.0.1:") and links[0].endswith("/status")
    assert wait_gone(started) == set()


def _imported(names):
    return {name: name in sys.modules for name in names}


def test_workers_import_the_pipeline_modules_as_they_join():
    """Asked-for modules are in each worker's sys.modules before its first task; a bad name only warns."""
    wanted = ("sdpflow.pipelines.imaging.chunks", "astropy.io.fits")
    with open_cluster("local:2", worker_imports=(*wanted, "sdpflow.no_such_module")) as client:
        seen = client.run(_imported, wanted)
    assert len(seen) == 2
    assert all(all(flags.values()) for flags in seen.values()), seen


def test_safe_scaling_settings_and_user_override():
    config = ClusterConfig(spec="local:1", dask_config={"distributed.scheduler.worker-ttl": "2 hours"})
    with open_cluster(config) as client:
        on_scheduler = client.run_on_scheduler(
            lambda: {k: dask.config.get(k) for k in ("distributed.scheduler.worker-saturation",
                                                     "distributed.scheduler.allowed-failures",
                                                     "distributed.scheduler.worker-ttl")}
        )
    assert on_scheduler["distributed.scheduler.worker-saturation"] == SAFE_SCALING["distributed.scheduler.worker-saturation"]
    assert on_scheduler["distributed.scheduler.allowed-failures"] == 10
    assert on_scheduler["distributed.scheduler.worker-ttl"] == "2 hours"
    assert dask.config.get("distributed.scheduler.allowed-failures") != 10  # restored afterwards


def test_error_inside_block_closes_cluster():
    before = child_pids()
    with pytest.raises(ZeroDivisionError):
        with open_cluster("local:2") as client:
            started = child_pids() - before
            client.submit(lambda: 1 / 0).result()
    assert len(started) >= 2
    assert wait_gone(started) == set()


SCRIPT = """
import os, sys, time
from sdpflow.engine.cluster import open_cluster
try:
    with open_cluster("local:2") as client:
        kids = __import__("psutil").Process().children(recursive=True)
        print(" ".join(str(p.pid) for p in kids if "resource_tracker" not in " ".join(p.cmdline())), flush=True)
        time.sleep(60)
finally:
    print("closed", flush=True)
"""


def default_sigint() -> None:
    """A shell running the tests in the background ignores SIGINT for its jobs, and Python then
    never turns it into KeyboardInterrupt: give the child the default, as a terminal would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_leaves_no_orphans(signum):
    """The cluster is closed (its processes gone) within 10 s of the signal.

    The process itself may take longer to end on a loaded machine: tearing down the
    interpreter is Python's, and the CLI skips it (tests/engine/test_fanout.py, Ctrl-C).
    """
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            preexec_fn=default_sigint)
    try:
        pids = {int(p) for p in proc.stdout.readline().split()}
        assert len(pids) >= 2
        proc.send_signal(signum)
        signalled = time.monotonic()
        assert proc.stdout.readline().strip() == "closed"
        assert time.monotonic() - signalled < 10
        assert wait_gone(pids) == set()
        assert proc.wait(timeout=60) != 0
    finally:
        proc.kill()


def test_unreachable_scheduler_fails_fast():
    start = time.monotonic()
    with pytest.raises(ClusterError, match=r"tcp://127\.0\.0\.1:9 within 2 s.*SDPFLOW_SCHEDULER"):
        with open_cluster(ClusterConfig(spec="tcp://127.0.0.1:9", connect_timeout=2)):
            pass
    assert time.monotonic() - start < 8


@pytest.mark.parametrize("spec, match", [("nomad", "unknown cluster spec 'nomad'"), ("local:x", "number of workers"),
                                         ("local:0", "at least 1"), ("tcp://127.0.0.1", "has no port")])
def test_bad_specs(spec, match):
    with pytest.raises(ClusterSpecError, match=match):
        with open_cluster(spec):
            pass


def test_wrong_interface_is_one_clear_line():
    config = ClusterConfig(spec="slurm", cluster_kwargs={"interface": "no-such-if0"})
    with pytest.raises(ClusterError, match="network interface 'no-such-if0' does not exist") as info:
        with open_cluster(config):
            pass
    assert "\n" not in str(info.value)


def test_config_rejects_unknown_keys():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ClusterConfig.model_validate({"cluster_kwargs": {"cpus": 4}})
    with pytest.raises(ValidationError):
        ClusterConfig.model_validate({"adapt_kwargs": {"maximum_jobs": 0}})
    assert issubclass(ConfigError, Exception)


def _slow_piece(index):
    time.sleep(0.3)
    return index


def _slow_total(*pieces):
    time.sleep(1.0)
    return sum(pieces)


def test_work_preferring_a_lost_worker_runs_on_the_next_one(tmp_path):
    """The only worker killed while a task waits for its pieces: they ran on it (a loose preference), the
    nanny's new worker joins, and everything is computed again there. Dask left the pieces in
    'no-worker' for good and the driver waited for ever (the fault-injection suite found it)."""
    from tests.faults.harness import ExternalCluster

    from sdpflow.engine.futures import result

    cluster = ExternalCluster(tmp_path)
    cluster.start()
    try:
        from distributed import Client

        with Client(cluster.address, timeout=30) as client:
            client.wait_for_workers(1)
            [worker] = client.scheduler_info(n_workers=-1)["workers"]
            pieces = [client.submit(_slow_piece, i, workers=[worker], allow_other_workers=True, pure=False)
                      for i in range(4)]
            client.gather(pieces)
            total = client.submit(_slow_total, *pieces, pure=False)
            time.sleep(0.3)
            cluster.kill_worker()
            started = time.monotonic()
            assert result(total, poll_s=2) == 6  # waited for ever
            assert time.monotonic() - started < 60
    finally:
        cluster.stop()
