"""The IPS face: the IPS documentation's Dask example (sleep binary, function, method) and IPS semantics."""

from __future__ import annotations

import sys
import time

import cloudpickle
import pytest

from sdpflow import ips
from sdpflow.engine.events import read_events
from sdpflow.errors import InputError

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def my_fun(seconds):
    time.sleep(seconds)
    return 0


class Worker:
    def my_method(self, seconds):
        time.sleep(seconds)
        return 0


def test_the_ips_dask_example_sleep_function_method(tmp_path):
    services = ips.Services(events=str(tmp_path / "events.jsonl"))
    services.create_task_pool("pool")
    services.add_task("pool", "binary", 1, str(tmp_path), "sleep 0.5")
    services.add_task("pool", "function", 1, str(tmp_path), my_fun, 0.5)
    services.add_task("pool", "method", 1, str(tmp_path), Worker().my_method, 0.5)
    began = time.monotonic()
    assert services.submit_tasks("pool", use_dask=True, dask_nodes=1, dask_ppw=3) == 3
    assert services.get_finished_tasks("pool") == {"binary": 0, "function": 0, "method": 0}
    assert time.monotonic() - began < 30
    services.remove_task_pool("pool")
    records = [r for r in read_events(tmp_path / "events.jsonl") if r["event"] == "finished"]
    assert {r["task"]: r["kind"] for r in records} == {"binary": "executable", "function": "function", "method": "method"}
    assert all(0.5 <= r["elapsed"] < 5 for r in records)
    starts = sorted(r["start"] for r in records)
    assert starts[-1] - starts[0] < 0.5  # three threads: the three ran side by side


def test_module_functions_timeout_logfile_and_env(tmp_path):
    ips.create_task_pool("module-pool")
    ips.add_task("module-pool", "slow", 1, str(tmp_path), "sleep", 30, timeout=0.5)
    ips.add_task("module-pool", "logged", 1, str(tmp_path), "sh", "-c", "echo $WHO; echo oops >&2; exit 4",
                 logfile="task.log", task_env={"WHO": "ips"})
    assert ips.submit_tasks("module-pool", dask_nodes=1, dask_ppw=2) == 2
    assert ips.get_finished_tasks("module-pool") == {"slow": -1, "logged": 4}
    assert (tmp_path / "task.log").read_text().split() == ["ips", "oops"]
    ips.remove_task_pool("module-pool")
    with pytest.raises(InputError, match="no task pool 'module-pool'"):
        ips.get_finished_tasks("module-pool")


def test_ips_errors_at_add_time(tmp_path):
    services = ips.Services()
    services.create_task_pool("p")
    with pytest.raises(InputError, match="already exists"):
        services.create_task_pool("p")
    with pytest.raises(InputError, match="'no-such-program-sdpflow' is not on PATH"):
        services.add_task("p", "t", 1, str(tmp_path), "no-such-program-sdpflow --flag")
    services.add_task("p", "t", 1, str(tmp_path), "true")
    with pytest.raises(InputError, match="duplicate task name 't'"):
        services.add_task("p", "t", 1, str(tmp_path), "true")
