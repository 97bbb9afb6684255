"""``local`` without a shape: one worker process per 4 cores with a thread per core, still isolated from the client."""

from __future__ import annotations

import os

import pytest

from sdpflow.config.cluster import ClusterConfig
from sdpflow.engine.backends.local import default_shape
from sdpflow.engine.cluster import open_cluster


def test_default_shape_is_a_process_per_four_cores_with_a_thread_per_core():
    assert default_shape(1) == (1, 1)
    assert default_shape(2) == (1, 2)
    assert default_shape(8) == (2, 4)
    assert default_shape(6) == (1, 6)


def _die():
    os._exit(3)  # as a crashing kernel would: the worker process ends at once


def test_a_crashing_task_kills_the_worker_not_the_client_and_the_nanny_replaces_it():
    from distributed import KilledWorker

    config = ClusterConfig(spec="local", dask_config={"distributed.scheduler.allowed-failures": 0})
    processes, threads = default_shape(os.cpu_count() or 1)
    with open_cluster(config) as client:
        assert sorted(client.nthreads().values()) == [threads] * processes
        with pytest.raises(KilledWorker):
            client.submit(_die, pure=False).result(timeout=120)
        assert client.submit(sum, [1, 2], pure=False).result(timeout=120) == 3  # the client goes on
        client.wait_for_workers(processes, timeout=120)  # the nanny started a new worker
