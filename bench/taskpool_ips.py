"""IPS's side of bench/taskpool.py, run by the Python of an IPS environment.

    IPS_PYTHON bench/taskpool_ips.py --functions 2000 --executables 500 --workers 2

ipsframework 0.8.1 starts its Dask pools with the ``dask-scheduler`` and ``dask-worker``
programs, which Dask installs up to 2026.3 (make the environment with ``python -m venv DIR &&
DIR/bin/pip install ipsframework==0.8.1 dask[distributed]==2026.3.0``). This file is also the
IPS component the simulation runs: it fills a task pool with the no-op functions (or the
``/bin/true`` executables) and times ``submit_tasks(use_dask=True)`` up to the finished
tasks, and a one-task pool before it for IPS's own Dask start and stop. Prints one JSON object:
{"functions": tasks/s, "executables": tasks/s, "functions_net", "executables_net": the same
without the start-up, "ips": version}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from ipsframework import Component
except ImportError:  # imported by bench/taskpool.py only for its docstring
    Component = object


def noop(i):
    return 0


class PoolBench(Component):
    """Times one pool: ``TASKS`` tasks of kind ``KIND`` on a Dask pool of ``WORKERS`` processes."""

    def step(self, timestamp=0.0):
        n, kind, workers = int(self.TASKS), self.KIND, int(self.WORKERS)
        timings = {}
        for label, count in (("start-up", 1), ("pool", n)):  # a one-task pool: IPS's Dask start and stop
            pool = f"pool-{label}"
            self.services.create_task_pool(pool)
            for i in range(count):
                if kind == "functions":
                    self.services.add_task(pool, f"t{i}", 1, self.services.get_working_dir(), noop, i)
                else:
                    self.services.add_task(pool, f"t{i}", 1, self.services.get_working_dir(), "/bin/true")
            began = time.perf_counter()
            self.services.submit_tasks(pool, use_dask=True, dask_nodes=1, dask_ppw=workers)
            finished = self.services.get_finished_tasks(pool)
            timings[label] = time.perf_counter() - began
            assert len(finished) == count, f"{len(finished)} of {count} tasks finished"
        Path(self.RESULT).write_text(json.dumps({"seconds": timings["pool"], "start_up": timings["start-up"],
                                                 "tasks": n}))


class Driver(Component):
    def step(self, timestamp=0.0):
        self.services.call(self.services.get_port("WORKER"), "step", 0.0)


CONFIG = """SIM_NAME = taskpool_bench
SIM_ROOT = {root}
LOG_FILE = {root}/ips.log
LOG_LEVEL = WARNING
SIMULATION_MODE = NORMAL
[PORTS]
    NAMES = DRIVER WORKER
    [[DRIVER]]
        IMPLEMENTATION = driver
    [[WORKER]]
        IMPLEMENTATION = pool
[driver]
    CLASS = DRIVER
    SUB_CLASS =
    NAME = Driver
    NPROC = 1
    BIN_PATH =
    INPUT_FILES =
    OUTPUT_FILES =
    SCRIPT = {script}
[pool]
    CLASS = WORKER
    SUB_CLASS =
    NAME = PoolBench
    NPROC = 1
    BIN_PATH =
    INPUT_FILES =
    OUTPUT_FILES =
    SCRIPT = {script}
    TASKS = {tasks}
    KIND = {kind}
    WORKERS = {workers}
    RESULT = {result}
"""

PLATFORM = """MPIRUN = eval
NODE_DETECTION = manual
CORES_PER_NODE = {workers}
SOCKETS_PER_NODE = 1
NODE_ALLOCATION_MODE = shared
HOST = localhost
SCRATCH =
"""


def throughput(kind: str, n: int, workers: int) -> tuple[float, float]:
    """(tasks/s with IPS's Dask start-up, tasks/s without it) for one pool of n tasks."""
    with tempfile.TemporaryDirectory(prefix="ips-bench-") as root:
        result = Path(root, "result.json")
        Path(root, "sim.config").write_text(CONFIG.format(root=root, script=Path(__file__).resolve(), tasks=n,
                                                          kind=kind, workers=workers, result=result))
        Path(root, "platform.conf").write_text(PLATFORM.format(workers=workers))
        ips = Path(sys.executable).with_name("ips.py")
        done = subprocess.run([sys.executable, str(ips), "--config=sim.config", "--platform=platform.conf"],
                              cwd=root, capture_output=True, text=True, timeout=1800,
                              env={**os.environ, "PATH": f"{ips.parent}{os.pathsep}{os.environ['PATH']}"})
        if not result.exists():
            raise SystemExit(f"IPS wrote no result (exit {done.returncode}): {(done.stderr or done.stdout)[-400:]}")
        measured = json.loads(result.read_text())
    n = measured["tasks"]
    return n / measured["seconds"], n / max(measured["seconds"] - measured["start_up"], 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=2000)
    parser.add_argument("--executables", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    import ipsframework

    functions, functions_net = throughput("functions", options.functions, options.workers)
    executables, executables_net = throughput("executables", options.executables, options.workers)
    print(json.dumps({"functions": functions, "executables": executables, "functions_net": functions_net,
                      "executables_net": executables_net, "ips": getattr(ipsframework, "__version__", "0.8.1")}))


if __name__ == "__main__":
    main()
