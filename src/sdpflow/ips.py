"""An IPS-compatible face for task pools, for people porting IPS components.

IPS components call ``self.services.create_task_pool(...)`` and friends; here the same calls
exist as methods of :class:`Services` (set ``self.services = Services()``) and as module
functions on a default instance::

    from sdpflow import ips
    ips.create_task_pool("pool")
    ips.add_task("pool", "binary", 1, cwd, "sleep", "0.5")
    ips.add_task("pool", "function", 1, cwd, my_function, 0.5)
    ips.add_task("pool", "method", 1, cwd, my_object.my_method, 0.5)
    ips.submit_tasks("pool", use_dask=True, dask_nodes=1)   # -> 3
    ips.get_finished_tasks("pool")                            # -> {'binary': 0, ...}
    ips.remove_task_pool("pool")

Kept from IPS: a binary string with spaces is split into program and arguments; the program
is looked up on ``PATH`` when the task is added and an unknown one is an error then; binary
arguments become strings; duplicate task names are errors; ``submit_tasks`` returns the
number of tasks and does not wait; ``get_finished_tasks`` waits and returns
``{task name: exit status or return value}``, with ``-1`` for a timed-out binary; keywords
``timeout``, ``task_env`` and ``logfile`` (stdout and stderr of a binary) are honoured.

Where we differ, and why:

* ``use_dask=False`` still runs on Dask (IPS would use its own MPI launcher, which sdpflow
  does not have); ``nproc > 1`` is recorded but each task gets one worker thread.
* The cluster is ``$SDPFLOW_SCHEDULER`` if set, else a local cluster of ``dask_nodes``
  worker processes with ``dask_ppw`` threads each; IPS started ``dask-scheduler`` and
  ``dask-worker`` programs that current Dask no longer ships.
* ``use_shifter=True`` runs each *binary* inside ``shifter`` (plus ``shifter_args``, e.g.
  ``--image=...``); IPS ran the whole Dask worker inside the container.
* Function and method arguments keep their types (IPS turned them into strings), and
  ``working_dir`` applies to binaries only: changing a directory is process-wide and unsafe
  with threads, so functions run in the worker's directory.
* A function that raises gives a :class:`~sdpflow.engine.taskpool.TaskError` (with its
  traceback) instead of failing the whole gather.
* The event log (``events=`` of :class:`Services`) is sdpflow's JSON-lines format, one
  record per event, written as tasks finish.
"""

from __future__ import annotations

import shlex
import shutil
from typing import Any

from sdpflow.engine.taskpool import TaskError, TaskPool
from sdpflow.errors import InputError

__all__ = [
    "Services",
    "TaskError",
    "add_task",
    "create_task_pool",
    "get_finished_tasks",
    "remove_task_pool",
    "submit_tasks",
]

#: What IPS reports for a binary killed at its timeout.
IPS_TIMEOUT_STATUS = -1


class Services:
    """The task-pool services of an IPS component, on sdpflow task pools.

    ``events``: a JSON-lines event log shared by all pools (each record names its pool);
    ``db``: a run-database URL, each submitted pool becomes a run; ``cluster``: a
    ``distributed.Client`` or spec used instead of the IPS-style local cluster.
    """

    def __init__(self, *, events: str | None = None, db: Any = None, cluster: Any = None):
        self.events, self.db, self.cluster = events, db, cluster
        self.pools: dict[str, TaskPool] = {}

    def create_task_pool(self, task_pool_name: str) -> None:
        """Create an empty pool; an existing name is an error."""
        if task_pool_name in self.pools:
            raise InputError(f"task pool {task_pool_name!r} already exists: remove_task_pool it first")
        self.pools[task_pool_name] = TaskPool(task_pool_name, events=self.events, db=self.db)

    def add_task(self, task_pool_name: str, task_name: str, nproc: int, working_dir: str, binary: Any, *args: Any, **keywords: Any) -> None:
        """Add a binary (path, name on PATH, or a command line) or a callable to a pool."""
        pool = self._pool(task_pool_name)
        keywords = dict(keywords.get("keywords", keywords))  # IPS passes keywords=... through
        timeout = keywords.pop("timeout", None)
        env = keywords.pop("task_env", None)
        logfile = keywords.pop("logfile", None)
        if isinstance(binary, str):
            words = shlex.split(binary)
            if not words:
                raise InputError(f"task {task_name!r}: empty binary")
            program = shutil.which(words[0])
            if program is None:
                raise InputError(f"task {task_name!r}: program {words[0]!r} is not on PATH or not executable")
            pool.add_task(
                task_name, program, *words[1:], *map(str, args), cwd=working_dir or None, env=env,
                timeout=float(timeout) if timeout is not None else None, nproc=nproc,
                stdout=logfile, stderr=logfile,
            )
        else:
            pool.add_task(task_name, binary, *args, nproc=nproc, kwargs=keywords or None)

    def submit_tasks(
        self,
        task_pool_name: str,
        block: bool = True,
        use_dask: bool = True,
        dask_nodes: int = 1,
        dask_ppw: int | None = None,
        launch_interval: float = 0.0,
        use_shifter: bool = False,
        shifter_args: str | None = None,
        dask_worker_plugin: Any = None,
        dask_worker_per_node: int = 1,
    ) -> int:
        """Start the pool; returns the number of tasks, without waiting (as IPS with Dask)."""
        pool = self._pool(task_pool_name)
        container = None
        if use_shifter:
            container = ["shifter", *(shlex.split(shifter_args) if shifter_args else [])]
        return pool.submit(
            self.cluster, nodes=(dask_nodes or 1) * max(1, dask_worker_per_node), threads_per_worker=dask_ppw,
            worker_plugin=dask_worker_plugin, container=container,
        )

    def get_finished_tasks(self, task_pool_name: str) -> dict[str, Any]:
        """Wait for the pool; ``{task name: exit status or return value}``."""
        pool = self._pool(task_pool_name)
        results = pool.finished()
        statuses = pool.statuses()
        return {
            name: IPS_TIMEOUT_STATUS if statuses[name] == "timed-out" and not isinstance(value, TaskError) else value
            for name, value in results.items()
        }

    def remove_task_pool(self, task_pool_name: str) -> None:
        """Forget a pool, cancelling what still runs (IPS's terminate_tasks, then removal)."""
        pool = self.pools.pop(task_pool_name, None)
        if pool is None:
            raise InputError(f"no task pool {task_pool_name!r}")
        pool.cancel()

    def _pool(self, name: str) -> TaskPool:
        try:
            return self.pools[name]
        except KeyError:
            raise InputError(f"no task pool {name!r}: create_task_pool it first") from None


_default = Services()


def create_task_pool(task_pool_name: str) -> None:
    """:meth:`Services.create_task_pool` on the module's default services."""
    _default.create_task_pool(task_pool_name)


def add_task(task_pool_name: str, task_name: str, nproc: int, working_dir: str, binary: Any, *args: Any, **keywords: Any) -> None:
    """:meth:`Services.add_task` on the module's default services."""
    _default.add_task(task_pool_name, task_name, nproc, working_dir, binary, *args, **keywords)


def submit_tasks(task_pool_name: str, use_dask: bool = True, dask_nodes: int = 1, dask_ppw: int | None = None,
                 use_shifter: bool = False, shifter_args: str | None = None, dask_worker_plugin: Any = None, **more: Any) -> int:
    """:meth:`Services.submit_tasks` on the module's default services."""
    return _default.submit_tasks(task_pool_name, use_dask=use_dask, dask_nodes=dask_nodes, dask_ppw=dask_ppw,
                                 use_shifter=use_shifter, shifter_args=shifter_args,
                                 dask_worker_plugin=dask_worker_plugin, **more)


def get_finished_tasks(task_pool_name: str) -> dict[str, Any]:
    """:meth:`Services.get_finished_tasks` on the module's default services."""
    return _default.get_finished_tasks(task_pool_name)


def remove_task_pool(task_pool_name: str) -> None:
    """:meth:`Services.remove_task_pool` on the module's default services."""
    _default.remove_task_pool(task_pool_name)
