"""Parsl's side of bench/taskpool.py, run by the Python of a Parsl environment.

    PARSL_PYTHON bench/taskpool_parsl.py --functions 2000 --executables 500 --workers 2

HighThroughputExecutor on a LocalProvider (one block on this machine) with ``--workers``
worker processes, as Parsl's documentation configures a workstation. Each measurement gets a
fresh executor, warmed by one task; throughput = tasks / wall seconds from the first submit to
the last result. Prints one JSON object: {"functions": tasks/s, "executables": tasks/s,
"parsl": version}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import parsl
from parsl import bash_app, python_app
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider


@python_app
def noop(i):
    return i


@bash_app
def run_true(i):
    return "/bin/true"


def throughput(app, n: int, workers: int, run_dir: str) -> float:
    config = Config(executors=[HighThroughputExecutor(label="htex", max_workers_per_node=workers,
                                                      cores_per_worker=1, provider=LocalProvider(init_blocks=1,
                                                                                                 max_blocks=1))],
                    run_dir=run_dir, initialize_logging=False)
    with parsl.load(config):
        app(-1).result()  # the block is up and a worker answers
        began = time.perf_counter()
        futures = [app(i) for i in range(n)]
        for future in futures:
            future.result()
        seconds = time.perf_counter() - began
    parsl.clear()
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=2000)
    parser.add_argument("--executables", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="parsl-bench-") as run_dir:
        result = {"functions": throughput(noop, options.functions, options.workers, run_dir),
                  "executables": throughput(run_true, options.executables, options.workers, run_dir),
                  "parsl": parsl.__version__}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
