"""Fan-out stages: one function mapped over many items (sources, tiles, files), checkpointed per item.

A stage with a :class:`FanOut` lists its items (each a key and a small payload), and the
engine runs the function on those not yet completed with the same fingerprint. Items travel
several to a Dask task: the batch size adapts so that a batch lasts about
:attr:`FanOut.target_batch_s`, and at most a bounded window of batches is in flight, so the
client's memory does not grow with the number of items. Workers return outcomes (status,
result rows, the manifest of files they committed); the client writes them to the run
database in bulk, a batch of outcomes per transaction. Workers never touch the database.

An item that raises is retried (alone, so a poisoned item cannot fail its neighbours) up to
:attr:`FanOut.retries` times, then recorded failed with its error; the stage fails when more
than :attr:`FanOut.max_failed_fraction` of its items failed. A resumed stage runs only the
items not completed with the same fingerprint, or whose files changed since.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from sdpflow.engine.manifest import intact, manifest_entry
from sdpflow.errors import InputError
from sdpflow.store.results import ResultTable

if TYPE_CHECKING:
    from sdpflow.engine.flow import StageContext

#: Item outcomes written to the run database in one transaction (at most).
DB_FLUSH_ITEMS = 5000
#: Seconds between run-database writes while items finish.
DB_FLUSH_S = 1.0
#: Seconds between two progress events.
PROGRESS_S = 0.25


@dataclass(frozen=True)
class Item:
    """One item of a fan-out stage: a ``key`` unique within the stage and a small ``payload``.

    ``fingerprint`` identifies the item's own inputs (a file's checksum, a catalogue row's
    hash) when they can change without the stage's configuration changing; it enters the
    item's fingerprint with the stage's.
    """

    key: str
    payload: Any = None
    fingerprint: str = ""


@dataclass(frozen=True)
class FanOut:
    """What a fan-out stage maps, and how.

    ``items(ctx)`` lists the :class:`Item` objects (on the client). Exactly one of
    ``function(item_ctx)`` (one item) or ``batch_function(item_ctxs)`` (a list of items, one
    result each, for kernels that vectorise across items) runs on the workers. A result is
    None, a dict (one row of ``table``) or a list of dicts (several rows).
    """

    items: Callable[["StageContext"], Iterable[Item]]
    function: Callable[["ItemContext"], Any] | None = None
    batch_function: Callable[[list["ItemContext"]], list[Any]] | None = None
    table: ResultTable | None = None
    retries: int = 1
    max_failed_fraction: float = 0.0
    target_batch_s: float = 0.2
    max_batch: int = 5000

    def __post_init__(self) -> None:
        if (self.function is None) == (self.batch_function is None):
            raise ValueError("a FanOut takes exactly one of function= and batch_function=")
        if not 0.0 <= self.max_failed_fraction <= 1.0:
            raise ValueError("max_failed_fraction must lie between 0 and 1")

    @property
    def target(self) -> Callable:
        return self.function or self.batch_function


@dataclass
class ItemContext:
    """What an item's function sees on a worker: its key and payload, and where to write files."""

    key: str
    payload: Any
    stage: str
    out_dir: str
    staging_dir: str
    attempt: int = 1

    def output(self, name: str) -> Path:
        """Where to write the item's output ``name`` (a path relative to the run folder, unique to
        this item, e.g. ``cutouts/src-0042.fits``); moved into place when the item succeeds."""
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"item {self.key}: output {name!r} must be a relative path inside the run folder")
        path = Path(self.staging_dir, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def product(self, name: str) -> Path:
        """The final path of a product in the run folder (an upstream stage's, say)."""
        return Path(self.out_dir, name)


# -- on the workers ---------------------------------------------------------------------------
class Batch:
    """Items ``(key, payload, attempt)`` travelling in one Dask task.

    A plain object, not a list: Dask walks list and tuple arguments looking for futures,
    which cost ~40 µs per item (4 s per 10^5 items) for nothing.
    """

    __slots__ = ("specs",)

    def __init__(self, specs: list[tuple[str, Any, int]]):
        self.specs = specs

    def __getstate__(self):
        return self.specs

    def __setstate__(self, specs):
        self.specs = specs


def run_batch(fan_out: FanOut, stage: str, out_dir: str, batch: Batch) -> list[dict[str, Any]]:
    """Run a batch of items; one outcome dict per item."""
    where = f"{socket.gethostname()}:{os.getpid()}"
    staging_root = Path(out_dir, ".staging", stage, uuid.uuid4().hex)
    contexts = [ItemContext(key, payload, stage, out_dir, str(staging_root / str(index)), attempt)
                for index, (key, payload, attempt) in enumerate(batch.specs)]
    try:
        if fan_out.function is not None:
            return [_run_one(context, lambda c=context: fan_out.function(c), where) for context in contexts]
        started = time.perf_counter()
        try:
            values = list(fan_out.batch_function(contexts))
            if len(values) != len(contexts):
                raise ValueError(f"batch function returned {len(values)} results for {len(contexts)} items")
        except Exception as error:  # noqa: BLE001 - every item of the batch failed this attempt
            return [_failed(context, error, time.perf_counter() - started, where) for context in contexts]
        share = (time.perf_counter() - started) / max(1, len(contexts))
        return [_run_one(context, lambda v=value: v, where, share) for context, value in zip(contexts, values)]
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)


def _run_one(context: ItemContext, compute: Callable[[], Any], where: str, elapsed: float | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        rows = _as_rows(compute())
        outputs = _commit(context)
    except Exception as error:  # noqa: BLE001 - an item may fail in any way; it is recorded
        return _failed(context, error, time.perf_counter() - started, where)
    return {"key": context.key, "status": "completed", "rows": rows, "outputs": outputs or None,
            "elapsed": elapsed if elapsed is not None else time.perf_counter() - started,
            "finished": time.time(), "worker": where, "error": None, "attempts": context.attempt}


def _failed(context: ItemContext, error: BaseException, elapsed: float, where: str) -> dict[str, Any]:
    trace = traceback.format_exception_only(type(error), error)[-1].strip()
    return {"key": context.key, "status": "failed", "rows": None, "outputs": None, "elapsed": elapsed,
            "finished": time.time(), "worker": where, "error": trace, "attempts": context.attempt}


def _as_rows(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    rows = list(value)
    if not all(isinstance(row, dict) for row in rows):
        raise TypeError("an item's result must be None, a dict or a list of dicts")
    return rows


def _commit(context: ItemContext) -> dict[str, Any]:
    """Move the item's staged files into the run folder; their manifest entries."""
    staging = Path(context.staging_dir)
    if not staging.exists():
        return {}
    outputs = {}
    for file in sorted(path for path in staging.rglob("*") if path.is_file()):
        relative = file.relative_to(staging)
        final = Path(context.out_dir, relative)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(file, final)
        outputs[str(relative)] = manifest_entry(final)
    return outputs


# -- on the client ----------------------------------------------------------------------------
def item_fingerprint(stage_fingerprint: str, item: Item) -> str:
    """hash(the stage's fingerprint, the item's key, its payload's repr, its own fingerprint)."""
    digest = hashlib.sha256(stage_fingerprint.encode())
    for part in (item.key, repr(item.payload), item.fingerprint):
        digest.update(b"\0")
        digest.update(part.encode())
    return "sha256:" + digest.hexdigest()


def items_digest(states: dict[str, tuple[str, str | None, dict[str, Any] | None]]) -> str:
    """One checksum of a stage's item states ``{key: (status, fingerprint, outputs)}``: what stages
    downstream of a fan-out stage take as its output."""
    digest = hashlib.sha256()
    for key in sorted(states):
        status, fingerprint, outputs = states[key]
        digest.update(f"{key}\0{fingerprint}\0{status}\0".encode())
        for name in sorted(outputs or {}):
            digest.update(f"{name}={outputs[name]['sha256']}\0".encode())
    return "sha256:" + digest.hexdigest()


def pending_items(
    items: list[Item], fingerprints: list[str], states: dict[str, tuple[str, str | None, dict[str, Any] | None]],
    out_dir: Path, *, verify: bool,
) -> list[int]:
    """Indices of the items to run: not completed, completed with another fingerprint, or whose files changed."""
    todo = []
    for index, (item, fingerprint) in enumerate(zip(items, fingerprints)):
        status, recorded, outputs = states.get(item.key, (None, None, None))
        if status != "completed" or recorded != fingerprint:
            todo.append(index)
        elif outputs and any(intact(out_dir / name, entry, verify=verify) for name, entry in outputs.items()):
            todo.append(index)
    return todo


def check_unique(stage: str, items: list[Item]) -> None:
    keys = set()
    for item in items:
        if not isinstance(item, Item):
            raise InputError(f"stage {stage}: items() must give sdpflow Item objects, not {type(item).__name__}")
        if item.key in keys:
            raise InputError(f"stage {stage}: item key {item.key!r} appears twice: item keys must be unique")
        keys.add(item.key)
