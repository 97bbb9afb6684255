"""Waiting for Dask futures without depending on one scheduler message.

After a worker dies, the scheduler recomputes what it held. Sometimes a key then ends up in
memory on the scheduler while the client's future still shows it pending: the client missed
(or undid, on a late "lost data" message) the scheduler's "in memory" report, and
``future.result()`` waits for ever (the race dask/distributed#6285 describes; sdpflow's
killed-worker test meets it in about one run in three). :func:`result` and :func:`gather`
wait in slices; after each slice they ask the scheduler, and when it holds the key they fetch
the value through a fresh task, whose report is new.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

log = logging.getLogger(__name__)

#: Seconds of waiting between two checks with the scheduler.
POLL_S = 5.0


def result(future: Any, *, poll_s: float = POLL_S) -> Any:
    """``future.result()`` that recovers when the client missed the scheduler's report."""
    client = future.client
    while True:
        try:
            return future.result(timeout=poll_s)
        except TimeoutError:
            state = client.run_on_scheduler(_key_state, key=future.key)
            if state != "memory" and client.run_on_scheduler(_reschedule_orphaned_tasks):
                log.warning("tasks whose preferred workers were all lost were sent to the workers there are")
            if state == "memory":
                log.warning("the scheduler holds %s but the client was not told; fetching it again", future.key)
                return result(client.submit(_identity, future, pure=False), poll_s=poll_s)


def gather(futures: Iterable[Any], *, poll_s: float = POLL_S) -> list[Any]:
    """The results of ``futures`` in order, each as :func:`result` waits for it."""
    return [result(future, poll_s=poll_s) for future in futures]


def _key_state(key: Any, dask_scheduler: Any = None) -> str | None:
    task = dask_scheduler.tasks.get(key)
    return task.state if task is not None else None


def _reschedule_orphaned_tasks(dask_scheduler: Any = None) -> int:
    """Send to any worker the tasks waiting in ``no-worker`` whose loosely preferred workers are all gone.

    When every worker was lost at once (a one-worker cluster, jobs all ending together), Dask
    gives a joining worker only the waiting tasks whose restrictions name it, even loose ones
    (``bulk_schedule_unrunnable_after_adding_worker``), so such a task, and the driver
    waiting for it, waited for ever. The fault-injection suite found it.
    """
    stuck = [task.key for task in dask_scheduler.unrunnable
             if task.loose_restrictions and not dask_scheduler.valid_workers(task)]
    if stuck and dask_scheduler.running:
        dask_scheduler.transitions({key: "processing" for key in stuck}, stimulus_id="sdpflow-orphaned-tasks")
        return len(stuck)
    return 0


def _identity(value: Any) -> Any:
    return value
