"""The client side of a fan-out stage: batches in flight, retries, bulk records, progress."""

from __future__ import annotations

import time
import uuid
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sdpflow.engine.fanout import (
    DB_FLUSH_ITEMS,
    DB_FLUSH_S,
    PROGRESS_S,
    Batch,
    FanOut,
    check_unique,
    item_fingerprint,
    items_digest,
    pending_items,
    run_batch,
)
from sdpflow.errors import ClusterError, StageFailed

if TYPE_CHECKING:
    from sdpflow.engine.flow import StageContext
    from sdpflow.store.db import RunStore

#: Failed item keys named in the stage's error and its ``items-failed`` event.
FAILED_KEYS_SHOWN = 20
#: Seconds between looks at finished batches while none is ready (and at whether the client closed).
WAIT_POLL_S = 0.005


@dataclass
class FanOutResult:
    """What a fan-out stage did in this invocation; ``digest`` stands for its outputs downstream."""

    items: int
    ran: int
    completed: int
    failed: list[str] = field(default_factory=list)
    digest: str = ""


class FanOutDriver:
    """Runs one fan-out stage for one run: submits batches, retries failed items, writes records."""

    def __init__(self, fan_out: FanOut, ctx: "StageContext", store: "RunStore", stage_fingerprint: str,
                 *, verify: bool = False, force: bool = False):
        self.fan_out, self.ctx, self.store = fan_out, ctx, store
        self.force = force
        self.stage = ctx.stage.name
        self.stage_fingerprint = stage_fingerprint
        self.verify = verify
        self.pending_records: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()
        self.last_progress = 0.0
        self.mean_s: float | None = None  # running mean seconds per item
        self.done = 0

    def run(self) -> FanOutResult:
        items = list(self.fan_out.items(self.ctx))
        check_unique(self.stage, items)
        self.items = items
        self.fingerprints = [item_fingerprint(self.stage_fingerprint, item) for item in items]
        self.states = self.store.item_states(self.ctx.run_id, self.stage)
        todo = (list(range(len(items))) if self.force
                else pending_items(items, self.fingerprints, self.states, self.ctx.out_dir, verify=self.verify))
        self.total = len(todo)
        self.ctx.log("items-planned", items=len(items), to_run=len(todo), completed_before=len(items) - len(todo))
        if todo:
            try:
                self._run_items(todo)
            finally:
                self._flush(force=True)
        current = {item.key: self.states[item.key] for item in items if item.key in self.states}
        failed_now = sorted(key for key, (status, _, _) in current.items() if status == "failed")
        result = FanOutResult(items=len(items), ran=len(todo), completed=len(items) - len(failed_now),
                              failed=failed_now, digest=items_digest(current))
        if failed_now:
            self.ctx.log("items-failed", count=len(failed_now), keys=failed_now[:FAILED_KEYS_SHOWN])
            fraction = len(failed_now) / max(1, len(items))
            if fraction > self.fan_out.max_failed_fraction:
                first = self.store.item_records(self.ctx.run_id, self.stage, status="failed")[failed_now[0]]["error"]
                raise StageFailed(
                    f"stage {self.stage}: {len(failed_now)} of {len(items)} items failed "
                    f"({', '.join(failed_now[:5])}{'…' if len(failed_now) > 5 else ''}; first error: {first}); "
                    f"more than max_failed_fraction {self.fan_out.max_failed_fraction:g}: "
                    f"see `sdpflow runs show {self.ctx.run_id}`, fix and resume"
                )
        return result

    # -- the loop -------------------------------------------------------------------------------
    def _run_items(self, todo: list[int]) -> None:
        from distributed import as_completed

        client = self.ctx.client
        slots = max(1, sum(client.nthreads().values()))
        window = max(8, 4 * slots)
        token = uuid.uuid4().hex[:8]
        fresh = deque(todo)
        retry: deque[tuple[int, int]] = deque()  # (item index, attempt), each retried alone
        inflight: dict[str, list[tuple[int, int]]] = {}
        completed = as_completed([], with_results=False)

        def fill() -> None:
            futures = []
            while len(inflight) < window and (fresh or retry):
                if retry:
                    batch = [retry.popleft()]
                else:
                    size = self._batch_size(len(fresh), slots)
                    batch = [(fresh.popleft(), 1) for _ in range(min(size, len(fresh)))]
                key = f"{self.stage}-items-{token}-{batch[0][0]}-{batch[0][1]}"
                specs = Batch([(self.items[index].key, self.items[index].payload, attempt) for index, attempt in batch])
                future = client.submit(run_batch, self.fan_out, self.stage, str(self.ctx.out_dir), specs,
                                       key=key, pure=False)
                inflight[key] = batch
                futures.append(future)
            completed.update(futures)

        fill()
        while inflight:
            for future in self._next_done(completed, client, len(inflight)):
                batch = inflight.pop(future.key)
                outcomes = self._outcomes(future, batch)
                for (index, attempt), outcome in zip(batch, outcomes):
                    if outcome["status"] == "failed" and attempt <= self.fan_out.retries:
                        retry.append((index, attempt + 1))
                        continue
                    outcome["fingerprint"] = self.fingerprints[index]
                    self.pending_records.append(outcome)
                    self.done += 1
            fill()
            self._flush()
            self._progress()
        self._progress(final=True)

    def _next_done(self, completed: Any, client: Any, in_flight: int) -> list[Any]:
        """The futures finished since the last call, waiting for one.

        :class:`ClusterError` when the client closes (its scheduler lost): its futures come back
        cancelled, which are no failures of the items, or never, and a blocking wait would hang the
        driver for good (a retry submitted to the closed client never finishes).
        """
        while True:
            status = client.status
            if status in ("closing", "closed"):
                raise ClusterError(f"stage {self.stage}: lost the Dask scheduler with {in_flight} batches of items in "
                                   f"flight: check the cluster, then `sdpflow runs resume {self.ctx.run_id}`")
            if status == "running":  # while it reconnects, cancelled futures are not the items' failures
                done = completed.next_batch(block=False)
                if done:
                    return done
            time.sleep(WAIT_POLL_S)

    def _outcomes(self, future: Any, batch: list[tuple[int, int]]) -> list[dict[str, Any]]:
        """The batch's outcomes; a batch whose task failed as a whole (a lost worker) fails each item."""
        try:
            outcomes = future.result()
        except Exception as error:  # noqa: BLE001 - recorded per item, and retried
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            return [{"key": self.items[index].key, "status": "failed", "rows": None, "outputs": None,
                     "elapsed": None, "finished": time.time(), "worker": None, "error": message,
                     "attempts": attempt} for index, attempt in batch]
        finally:
            with suppress(Exception):
                future.release()
        elapsed = [outcome["elapsed"] for outcome in outcomes if outcome["elapsed"] is not None]
        if elapsed:
            mean = sum(elapsed) / len(elapsed)
            self.mean_s = mean if self.mean_s is None else 0.8 * self.mean_s + 0.2 * mean
        return outcomes

    def _batch_size(self, remaining: int, slots: int) -> int:
        """Items per Dask task: about ``target_batch_s`` of work, but enough tasks for every thread."""
        if self.mean_s is None:
            return 1
        size = int(self.fan_out.target_batch_s / max(self.mean_s, 1e-6))
        spread = -(-remaining // (2 * slots))
        return max(1, min(size, self.fan_out.max_batch, spread))

    def _flush(self, force: bool = False) -> None:
        due = time.monotonic() - self.last_flush >= DB_FLUSH_S or len(self.pending_records) >= DB_FLUSH_ITEMS
        if self.pending_records and (force or due):
            records, self.pending_records = self.pending_records, []
            self.store.record_items(self.ctx.run_id, self.stage, records, self.fan_out.table)
            for record in records:
                self.states[record["key"]] = (record["status"], record["fingerprint"], record["outputs"])
            self.last_flush = time.monotonic()

    def _progress(self, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self.last_progress >= PROGRESS_S:
            self.last_progress = now
            self.ctx.progress(self.done, self.total, "items")


def run_fan_out(fan_out: FanOut, ctx: "StageContext", store: "RunStore", stage_fingerprint: str,
                *, verify: bool = False, force: bool = False) -> FanOutResult:
    """Run a fan-out stage's pending items (all of them with ``force``; see :class:`FanOutDriver`)."""
    return FanOutDriver(fan_out, ctx, store, stage_fingerprint, verify=verify, force=force).run()

