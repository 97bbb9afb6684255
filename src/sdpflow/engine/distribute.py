"""Patterns for data that stays on the workers: placement, tree reductions, work submitted ahead,
and products read back when a resumed run no longer holds them in memory.

Nothing here knows what the data is; the imaging flow uses them for its chunks (visibilities
placed once, partial images summed, the next major cycle started before this one's files are
written, the model of the last completed cycle read back from FITS on resume).
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Hashable


def spread_over_workers(client: Any, count: int) -> list[dict[str, Any]]:
    """Submit options placing piece *i* on worker *i mod n* of the current workers.

    A loose preference (``allow_other_workers``): Dask may still move a piece, and recomputes
    a lost worker's pieces elsewhere. Pieces that stay where they were first computed keep
    every later task on them local, and spread over the workers they run in parallel.
    """
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    if not workers:
        return [{} for _ in range(count)]
    return [{"workers": [workers[index % len(workers)]], "allow_other_workers": True} for index in range(count)]


def tree_sum(client: Any, futures: list[Any], add: Callable[[Any, Any], Any] = operator.add) -> Any:
    """Sum futures pairwise on the workers (depth log2 n); the sum stays on a worker."""
    if not futures:
        raise ValueError("tree_sum of no futures")
    layer = list(futures)
    while len(layer) > 1:
        layer = [client.submit(add, layer[i], layer[i + 1]) if i + 1 < len(layer) else layer[i]
                 for i in range(0, len(layer), 2)]
    return layer[0]


class SubmittedAhead:
    """Work submitted before it is needed, taken by whoever asks for the same key.

    A stage that knows what the next stage will compute submits it early (so workers stay
    busy while the stage writes its files); the next stage takes it when its key matches,
    and computes afresh otherwise (after a resume, or when the plan changed).
    """

    def __init__(self) -> None:
        self._key: Hashable | None = None
        self._value: Any = None

    def put(self, key: Hashable, value: Any) -> None:
        self._key, self._value = key, value

    def take(self, key: Hashable) -> Any | None:
        """The value submitted for ``key`` (once), or None."""
        if self._value is not None and self._key == key:
            value, self._key, self._value = self._value, None, None
            return value
        return None

    def clear(self) -> None:
        self._key, self._value = None, None


class HeldProducts:
    """Futures of products held on the workers by name, read back from their files when missing.

    In a run that goes straight through, a stage hands its product (a model image, say) to
    the next as a future. A resumed run starts with nothing in memory: the product is then
    read from the file the earlier stage committed, on a worker, with ``read(path)``.
    """

    def __init__(self, read: Callable[[str], Any]):
        self._read = read
        self._held: dict[str, Any] = {}

    def hold(self, name: str, future: Any) -> None:
        self._held[name] = future

    def release(self, name: str) -> None:
        """Let go of a product no stage needs any more (its memory on the workers is freed)."""
        self._held.pop(name, None)

    def get(self, client: Any, name: str, path: str) -> Any:
        if name not in self._held:
            self._held[name] = client.submit(self._read, path)
        return self._held[name]
