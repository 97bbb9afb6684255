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
            if client.run_on_scheduler(_key_state, key=future.key) == "memory":
                log.warning("the scheduler holds %s but the client was not told; fetching it again", future.key)
                return result(client.submit(_identity, future, pure=False), poll_s=poll_s)


def gather(futures: Iterable[Any], *, poll_s: float = POLL_S) -> list[Any]:
    """The results of ``futures`` in order, each as :func:`result` waits for it."""
    return [result(future, poll_s=poll_s) for future in futures]


def _key_state(key: Any, dask_scheduler: Any = None) -> str | None:
    task = dask_scheduler.tasks.get(key)
    return task.state if task is not None else None


def _identity(value: Any) -> Any:
    return value
