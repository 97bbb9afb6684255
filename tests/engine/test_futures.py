"""engine.futures on a real local cluster: plain results, and recovery from a missed report."""

from __future__ import annotations

import time

import pytest
from distributed import Client, LocalCluster

from sdpflow.engine.futures import gather, result


def square(x: int) -> int:
    return x * x


def fail() -> None:
    raise ValueError("task failed")


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


def test_results_and_errors_pass_through(client):
    assert result(client.submit(square, 7)) == 49
    assert gather(client.map(square, range(4))) == [0, 1, 4, 9]
    with pytest.raises(ValueError, match="task failed"):
        result(client.submit(fail, pure=False))


def test_a_missed_in_memory_report_is_recovered(client):
    """The client's future is put back to 'lost' after the key is in memory, as when the scheduler's
    report is missed; plain ``result()`` would wait for ever, :func:`result` fetches the value."""
    future = client.submit(square, 12, pure=False)
    assert future.result() == 144
    future._state.lose()  # what a late "lost data" message does to the client's view
    with pytest.raises(TimeoutError):
        future.result(timeout=0.5)
    started = time.perf_counter()
    assert result(future, poll_s=0.5) == 144
    assert time.perf_counter() - started < 5
