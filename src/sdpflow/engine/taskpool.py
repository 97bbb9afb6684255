"""Task pools on Dask: executables, functions and methods run together, each one recorded.

A :class:`TaskPool` collects tasks, then :meth:`TaskPool.submit` sends them to a Dask
cluster and returns at once; :meth:`TaskPool.finished` waits and gives
``{task name: exit status or return value}``. A failing task never stops the pool.

How it stays fast and bounded at 10^5 tasks:

* Tasks travel in *chunks* (several tasks per Dask task) when they are short: the chunk size
  adapts so that a chunk lasts about :data:`CHUNK_TARGET_S`; long tasks travel one by one.
  Every task still gets its own event records and result.
* At most ``window`` chunks are in flight; finished chunks are gathered in batches and
  released at once, so client memory does not grow with the pool.
* The client writes the event log: one ``os.write`` per batch of finished chunks, with the
  worker address, host and pid each task reports. A task on a worker that dies is rerun by
  Dask; the scheduler's ``remove-worker`` event names it, and the log gets ``retried``.
* The run database gets task rows in batches (every :data:`DB_FLUSH_ROWS` rows or
  :data:`DB_FLUSH_S` seconds), never per task.
"""

from __future__ import annotations

import inspect
import os
import shlex
import threading
import time
from collections import deque
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from sdpflow.engine import taskpool_worker as tw
from sdpflow.engine.events import EventLog
from sdpflow.errors import ClusterError, InputError

#: Seconds a chunk of short tasks should last (chunk size adapts to it).
CHUNK_TARGET_S = 0.1
#: Most tasks in one chunk.
MAX_CHUNK = 100
#: Task rows written to the run database in one transaction.
DB_FLUSH_ROWS = 5000
#: Seconds between run-database writes while a pool runs.
DB_FLUSH_S = 2.0
#: Seconds between looks at finished chunks while none is ready (and at whether the client closed).
WAIT_POLL_S = 0.005
#: Characters kept of a return value's repr in the event log and the run database.
RESULT_REPR_CHARS = 200

_STATUS = {tw.FINISHED: "finished", tw.FAILED: "failed", tw.TIMED_OUT: "timed-out", tw.CANCELLED: "cancelled"}
_PENDING = 255


class TaskError(Exception):
    """What :meth:`TaskPool.finished` gives for a function task that did not finish.

    Returned, not raised. ``status`` is ``failed``, ``timed-out`` or ``cancelled``;
    ``traceback`` is the worker's formatted traceback when the task raised.
    """

    def __init__(self, task: str, status: str, message: str, traceback: str | None = None):
        super().__init__(f"task {task!r} {status}: {message}")
        self.task, self.status, self.message, self.traceback = task, status, message, traceback


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task as added: ``target`` is an argv prefix (executables) or a callable."""

    name: str
    kind: str
    target: Any
    args: tuple
    kwargs: dict | None = None
    cwd: str | None = None
    env: dict | None = None
    timeout: float | None = None
    nproc: int = 1
    stdout: str | None = None
    stderr: str | None = None


def task_kind(target: Any) -> str:
    """``executable`` for a path or a name, ``method`` for a bound method, else ``function``."""
    if isinstance(target, (str, os.PathLike)):
        return tw.EXECUTABLE
    if inspect.ismethod(target):
        return tw.METHOD
    if callable(target):
        return tw.FUNCTION
    raise InputError(f"task target {target!r} is neither an executable (path or name) nor a callable")


def container_prefix(container: str | Sequence[str] | None) -> list[str]:
    """The argv prefix of a container, e.g. ``apptainer exec image.sif`` -> 3 words."""
    if container is None:
        return []
    words = shlex.split(container) if isinstance(container, str) else [str(word) for word in container]
    if not words:
        raise InputError("container: give a command prefix such as 'apptainer exec image.sif'")
    return words


def iso_utc(seconds: float) -> str:
    """Seconds since the epoch as ISO-8601 UTC with microseconds."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="microseconds")


class TaskPool:
    """A named pool of tasks run on Dask.

    ``events``: path of the JSON-lines event log (none if ``None``). ``db``: a run-database
    URL or :class:`~sdpflow.store.db.RunStore`; the pool is then a run (``pipeline="pool"``)
    and every task a row of ``tasks``. ``chunk_size``: tasks per Dask task, or ``"auto"``.
    ``window``: most chunks in flight (default: 8 per worker thread, at least 32).
    ``on_progress(done, total)`` is called from the pool's thread after each batch.
    """

    def __init__(
        self,
        name: str,
        *,
        events: str | Path | None = None,
        db: Any = None,
        out_dir: str | Path = ".",
        chunk_size: int | str = "auto",
        window: int | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ):
        if not name or not isinstance(name, str):
            raise InputError("a task pool needs a non-empty name")
        if chunk_size != "auto" and not (isinstance(chunk_size, int) and chunk_size >= 1):
            raise InputError(f"chunk_size must be 'auto' or a positive integer, not {chunk_size!r}")
        self.name = name
        self.events_path = Path(events) if events is not None else None
        self.out_dir = Path(out_dir)
        self.chunk_size = chunk_size
        self.window = window
        self.on_progress = on_progress
        self._db = db
        self._specs: list[TaskSpec | None] = []
        self._index: dict[str, int] = {}
        self.run_id: str | None = None
        self.client = None
        self._closers: list[Callable[[], None]] = []
        self._thread: threading.Thread | None = None
        self._driver: _Driver | None = None
        self._result: dict[str, Any] | None = None

    # -- building -----------------------------------------------------------------------
    def add_task(
        self,
        name: str,
        target: Any,
        *args: Any,
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
        nproc: int = 1,
        stdout: str | Path | None = None,
        stderr: str | Path | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Add a task: an executable (path or name on PATH; ``args`` become strings) or a callable.

        Executables run in ``cwd`` with ``env`` added to the worker's environment, are killed
        (with their whole process group) after ``timeout`` seconds, and write ``stdout`` /
        ``stderr`` to files (relative paths are relative to ``cwd``); without ``stderr`` its
        last line becomes the error message of a failing run. Callables get ``*args`` and
        ``kwargs``; ``cwd``, ``env`` and output files apply to executables only. A callable
        with a ``timeout`` runs in a child process of the worker, killed after ``timeout``
        seconds (status ``timed-out``); there ``os._exit`` fails only its own task, and its
        stdout and stderr are kept as an executable's stderr is (the last line of a failing
        run becomes its error). Without a timeout a callable runs in the worker's thread.
        ``nproc`` is recorded; each task uses one worker thread.
        """
        if self._thread is not None:
            raise InputError(f"pool {self.name!r} was already submitted: create a new pool for more tasks")
        if not isinstance(name, str) or not name:
            raise InputError(f"pool {self.name!r}: a task name must be a non-empty string")
        if name in self._index:
            raise InputError(f"pool {self.name!r}: duplicate task name {name!r}")
        kind = task_kind(target)
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise InputError(f"task {name!r}: timeout must be a positive number of seconds, not {timeout!r}")
        if kind != tw.EXECUTABLE:
            extras = {"cwd": cwd, "env": env, "stdout": stdout, "stderr": stderr}
            given = [key for key, value in extras.items() if value is not None]
            if given:
                raise InputError(f"task {name!r}: {', '.join(given)} apply to executables only, not to a {kind}")
            target_value: Any = target
        else:
            target_value = os.fspath(target)
            if kwargs:
                raise InputError(f"task {name!r}: kwargs apply to callables only")
        self._index[name] = len(self._specs)
        self._specs.append(
            TaskSpec(
                name, kind, target_value, tuple(args), kwargs or None,
                os.fspath(cwd) if cwd is not None else None,
                {str(k): str(v) for k, v in env.items()} if env else None,
                float(timeout) if timeout is not None else None, int(nproc),
                os.fspath(stdout) if stdout is not None else None,
                os.fspath(stderr) if stderr is not None else None,
            )
        )

    def __len__(self) -> int:
        return len(self._specs)

    # -- running ------------------------------------------------------------------------
    def submit(
        self,
        client_or_cluster_spec: Any = None,
        nodes: int | None = None,
        threads_per_worker: int | None = None,
        worker_plugin: Any = None,
        container: str | Sequence[str] | None = None,
    ) -> int:
        """Send the tasks to Dask and return the number submitted, without waiting.

        ``client_or_cluster_spec``: a ``distributed.Client``, or a cluster spec (``local``,
        ``local:N``, ``tcp://host:port``; default ``$SDPFLOW_SCHEDULER``, else local) for a
        cluster of ``nodes`` workers with ``threads_per_worker`` threads, closed by
        :meth:`finished`. ``worker_plugin``: one ``WorkerPlugin`` or several, registered
        before the first task and unregistered (so torn down) when the pool ends.
        ``container``: an argv prefix put before every executable task.
        """
        if self._thread is not None:
            raise InputError(f"pool {self.name!r} was already submitted")
        if not self._specs:
            raise InputError(f"pool {self.name!r} has no tasks: add some with add_task")
        prefix = container_prefix(container)
        plugins = [] if worker_plugin is None else list(worker_plugin) if isinstance(worker_plugin, (list, tuple)) else [worker_plugin]
        self.client, close = _open_client(client_or_cluster_spec, nodes, threads_per_worker)
        self._closers.append(close)
        try:
            for plugin in plugins:
                name = getattr(plugin, "name", None) or f"sdpflow-{type(plugin).__name__}-{id(plugin):x}"
                self.client.register_plugin(plugin, name=name)
                self._closers.insert(0, _unregister(self.client, name))
            store = self._open_store()
            if store is not None:
                self.run_id = store.create_run(
                    "pool", {"pool": self.name, "tasks": len(self._specs), "container": prefix or None},
                    self.out_dir, cluster=str(client_or_cluster_spec) if isinstance(client_or_cluster_spec, str) else None,
                )
            else:
                from sdpflow.store.db import new_run_id

                self.run_id = new_run_id("pool")
            log = EventLog(self.events_path) if self.events_path is not None else None
            self._driver = _Driver(self, self.client, prefix, log, store)
        except BaseException:
            self._close()
            raise
        self._thread = threading.Thread(target=self._driver.run, name=f"sdpflow-pool-{self.name}", daemon=True)
        self._thread.start()
        return len(self._specs)

    def finished(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for every task; ``{task name: exit status or return value}``.

        Executables give their exit status (negative: killed by that signal, e.g. -9 after
        a timeout); callables their return value, or a :class:`TaskError` when they raised,
        timed out, exited (``os._exit`` with a timeout set), were cancelled or their workers
        kept dying. Ctrl-C cancels the pool (no subprocess
        is left running) and re-raises. ``timeout`` in seconds raises ``TimeoutError``.
        """
        if self._result is not None:
            return self._result
        if self._thread is None:
            raise InputError(f"pool {self.name!r} was not submitted: call submit first")
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self._thread.is_alive():
                self._thread.join(0.2)
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"pool {self.name!r} still running after {timeout:g} s")
        except KeyboardInterrupt:
            self.cancel()
            raise
        self._close()
        driver = self._driver
        if driver.crash is not None:
            raise driver.crash
        self._result = driver.outcome()
        return self._result

    def run(self, client_or_cluster_spec: Any = None, **submit_options: Any) -> dict[str, Any]:
        """:meth:`submit` then :meth:`finished`."""
        self.submit(client_or_cluster_spec, **submit_options)
        return self.finished()

    def cancel(self) -> None:
        """Stop the pool: kill running executables (whole process groups), drop the rest.

        Tasks not finished are recorded as ``cancelled``. Returns when the pool has ended.
        """
        driver = self._driver
        if driver is None:
            return
        driver.cancel()
        if self._thread is not None:
            self._thread.join(60)
        self._close()

    def statuses(self) -> dict[str, str]:
        """``{task name: finished | failed | timed-out | cancelled | pending}`` so far."""
        if self._driver is None:
            return {spec.name: "pending" for spec in self._specs if spec}
        return self._driver.statuses()

    def _open_store(self):
        if self._db is None:
            return None
        from sdpflow.store.db import RunStore

        return self._db if isinstance(self._db, RunStore) else RunStore(self._db)

    def _close(self) -> None:
        closers, self._closers = self._closers, []
        for close in closers:
            with suppress(Exception):
                close()

    def __enter__(self) -> "TaskPool":
        return self

    def __exit__(self, kind, *_exc) -> None:
        if kind is not None:
            self.cancel()
        self._close()


def _unregister(client, name: str) -> Callable[[], None]:
    def unregister() -> None:
        if client.status == "running":
            client.unregister_worker_plugin(name)

    return unregister


def _open_client(spec: Any, nodes: int | None, threads_per_worker: int | None):
    """A client for ``spec`` and a function that closes what was opened here.

    An existing ``Client`` is used as is (and left open). Anything else goes to
    :func:`sdpflow.engine.cluster.open_cluster`, with ``nodes`` workers of
    ``threads_per_worker`` threads (default: the cores shared among the workers, as IPS
    gives each Dask worker a whole node) when the cluster is local.
    """
    from contextlib import ExitStack

    from distributed import Client

    from sdpflow.config.cluster import ClusterConfig
    from sdpflow.engine.cluster import open_cluster

    if isinstance(spec, Client):
        return spec, lambda: None
    if spec is not None and not isinstance(spec, (str, ClusterConfig)):
        raise InputError(f"submit: give a distributed.Client or a cluster spec, not {type(spec).__name__}")
    if isinstance(spec, ClusterConfig):
        config = spec
    else:
        target = spec or os.environ.get("SDPFLOW_SCHEDULER") or "local"
        count = target.partition(":")[2] if target.startswith("local") else ""
        if count and not count.isdigit():
            raise InputError(f"cluster spec {target!r}: use local or local:N with N workers")
        workers = nodes or (int(count) if count else 1)
        threads = threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
        config = ClusterConfig(spec=spec, n_workers=workers, threads_per_worker=threads)
    stack = ExitStack()
    try:
        client = stack.enter_context(open_cluster(config))
    except BaseException:
        stack.close()
        raise
    return client, stack.close


class _Driver:
    """The pool's thread: submits chunks, gathers them, writes records. Owns its state."""

    def __init__(self, pool: TaskPool, client, prefix: list[str], log: EventLog | None, store):
        self.pool, self.client, self.log, self.store = pool, client, log, store
        self.total = len(pool._specs)
        self.names = [spec.name for spec in pool._specs]
        self.kinds = [spec.kind for spec in pool._specs]
        self.values: list[Any] = [None] * self.total
        self.status = bytearray([_PENDING]) * self.total
        self.attempts = bytearray([1]) * self.total
        self.prefix = prefix
        self.token = f"{pool.run_id}"
        self.key_prefix = f"sdpflow-pool-{self.token}-"
        self.next = 0
        self.done = 0
        self.inflight: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.cancelled = False
        self.crash: BaseException | None = None
        self.retries: deque = deque()
        self.rows: list[dict] = []
        self.last_flush = time.monotonic()
        self.mean_s: float | None = None  # running mean of task durations, seconds
        self.slots = max(1, sum(client.nthreads().values()))
        self.window = pool.window or max(32, 8 * self.slots)
        self.base = {"pool": pool.name, "run": pool.run_id}

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> None:
        from distributed import as_completed

        try:
            self.client.subscribe_topic("all", self._on_scheduler_event)
            self.completed = as_completed([], loop=self.client.loop)
            self._fill()
            while self.inflight:
                batch = self._next_batch()
                self._handle_retries()
                self._handle(batch)
                if not self.cancelled:
                    self._fill()
                self._progress()
            self._handle_retries()
            if self.cancelled:
                self._cancel_unsubmitted()
            self._flush_rows(force=True)
            self._mark_run()
        except BaseException as error:  # noqa: BLE001 - reported by finished()
            self.crash = error
            with suppress(Exception):
                self._flush_rows(force=True)
                if self.store is not None:
                    self.store.mark_run(self.pool.run_id, "failed", f"task pool crashed: {error}")
        finally:
            with suppress(Exception):
                self.client.unsubscribe_topic("all")
            with suppress(Exception):  # long-lived workers would otherwise remember every pool
                self.client.run(tw.forget_pool, self.token)
            if self.log is not None:
                self.log.close()

    def _next_batch(self) -> list:
        """The chunks finished since the last call, waiting for one.

        :class:`ClusterError` when the client closes (its scheduler lost): a blocking wait would
        hang the pool for good, as retries sent to a closed client never finish. While the client
        reconnects, its cancelled futures are not taken as the tasks' failures.
        """
        while True:
            status = self.client.status
            if status in ("closing", "closed"):
                if self.cancelled:  # the pool's own cluster closing after a cancel: what is in flight ends cancelled
                    with self.lock:
                        return list(self.inflight.values())
                raise ClusterError(f"pool {self.pool.name}: lost the Dask scheduler with {len(self.inflight)} chunks "
                                   "of tasks in flight; check the cluster and run the pool again")
            if status == "running":
                batch = self.completed.next_batch(block=False)
                if batch:
                    return batch
            time.sleep(WAIT_POLL_S)

    def _chunk(self) -> int:
        size = self.pool.chunk_size
        if size != "auto":
            return int(size)
        if self.mean_s is None:
            return 1
        size = int(CHUNK_TARGET_S / max(self.mean_s, 1e-6))
        spread = -(-(self.total - self.next) // (2 * self.slots))  # keep every thread busy
        return max(1, min(size, MAX_CHUNK, spread))

    def _fill(self) -> None:
        if len(self.inflight) > self.window * 3 // 4 or self.next >= self.total:
            return
        chunks, keys, records = [], [], []
        now = iso_utc(time.time())
        size = self._chunk()
        specs = self.pool._specs
        # Until a first chunk has told how long a task lasts, only one chunk of one task per
        # worker thread (twice over) goes out: short tasks then travel in full chunks at once.
        window = self.window if self.pool.chunk_size != "auto" or self.mean_s is not None else 2 * self.slots
        while len(self.inflight) + len(chunks) < window and self.next < self.total:
            first = self.next
            last = min(self.total, first + size) - 1
            chunk = []
            for index in range(first, last + 1):
                spec = specs[index]
                specs[index] = None  # the pool keeps no payload once sent
                target = [*self.prefix, spec.target] if spec.kind == tw.EXECUTABLE else spec.target
                chunk.append((index, spec.kind, target, spec.args, spec.kwargs, spec.cwd, spec.env,
                              spec.timeout, spec.stdout, spec.stderr))
                records.append({"time": now, **self.base, "task": spec.name, "kind": spec.kind, "event": "submitted"})
            self.next = last + 1
            chunks.append(chunk)
            keys.append(f"{self.key_prefix}{first}:{last}")
        if self.log is not None:
            self.log.write_many(records)
        futures = self.client.map(tw.run_chunk, [self.token] * len(chunks), chunks, key=keys, pure=False)
        with self.lock:
            for key, future in zip(keys, futures):
                self.inflight[key] = future
        self.completed.update(futures)

    def _handle(self, batch: list) -> None:
        records: list[dict] = []
        ready = [future for future in batch if future.status == "finished"]
        others = [future for future in batch if future.status != "finished"]
        unfetched: dict[Any, str] = {}  # finished chunks whose result could not be fetched: the reason
        outputs: list = []
        if ready:
            try:
                outputs = self.client.gather(ready)
            except Exception:  # noqa: BLE001 - one lost result must not lose the batch
                outputs = []
                for future in ready:
                    try:
                        outputs.append(future.result())
                    except Exception as error:  # noqa: BLE001
                        unfetched[future.key] = f"result lost: {tw.one_line(error)}"
                        outputs.append(None)
        for future, output in zip(ready, outputs):
            if output is not None:
                self._record_chunk(output, records)
        for future in others + [future for future in ready if future.key in unfetched]:
            if future.key in unfetched and not self.cancelled:
                status, message = tw.FAILED, unfetched[future.key]
            elif future.status == "cancelled" or self.cancelled:
                status, message = tw.CANCELLED, "cancelled"
            else:
                status, message = tw.FAILED, _exception_line(future)
            first, last = _span(future.key)
            for index in range(first, last + 1):
                if self.status[index] == _PENDING:
                    self._settle(index, status, None, None, None, message, None, None, None, None, records)
        with self.lock:
            for future in batch:
                self.inflight.pop(future.key, None)
        if self.log is not None:
            self.log.write_many(records)
        self._flush_rows()

    def _record_chunk(self, output: tuple, records: list[dict]) -> None:
        worker, host, pid, results = output
        elapsed_sum = 0.0
        for index, status, value, start, end, error, trace in results:
            if self.status[index] != _PENDING:
                continue  # a rerun chunk: the task was already recorded
            kind = self.kinds[index]
            records.append({"time": iso_utc(start), **self.base, "task": self.names[index], "kind": kind,
                            "event": "started", "start": start, "worker": worker, "host": host, "pid": pid,
                            "attempt": self.attempts[index]})
            self._settle(index, status, value, start, end, error, trace, worker, host, pid, records)
            elapsed_sum += end - start
        if results:
            mean = elapsed_sum / len(results)
            self.mean_s = mean if self.mean_s is None else 0.7 * self.mean_s + 0.3 * mean

    def _settle(self, index, status, value, start, end, error, trace, worker, host, pid, records) -> None:
        name, kind = self.names[index], self.kinds[index]
        label = _STATUS[status]
        self.status[index] = status
        self.done += 1
        elapsed = (end - start) if start is not None else None
        record = {"time": iso_utc(end if end is not None else time.time()), **self.base, "task": name, "kind": kind,
                  "event": label, "start": start, "end": end, "elapsed": elapsed, "worker": worker, "host": host,
                  "pid": pid, "attempt": self.attempts[index]}
        result_text = None
        if kind == tw.EXECUTABLE:
            record["exit_status"] = value
            result_text = None if value is None else str(value)
            self.values[index] = value if value is not None else TaskError(name, label, error or label)
        elif status == tw.FINISHED:
            self.values[index] = value
            if value is not None:
                result_text = record["result"] = _short_repr(value)
        else:
            self.values[index] = TaskError(name, label, error or label, trace)
        if error:
            record["error"] = error
        if trace:
            record["traceback"] = trace
        records.append(record)
        if self.store is not None:
            self.rows.append({"pool": self.pool.name, "name": name, "kind": kind, "status": label,
                              "attempts": self.attempts[index], "start": start, "end": end, "elapsed": elapsed,
                              "worker": worker, "result": result_text, "error": error})

    # -- retries, cancel, bookkeeping ---------------------------------------------------
    def _on_scheduler_event(self, event) -> None:
        # Runs in the client's event loop: only queue what the pool's thread will handle.
        _, message = event
        if isinstance(message, dict) and message.get("action") == "remove-worker":
            keys = [*message.get("processing-tasks", ()), *message.get("lost-computed-tasks", ())]
            ours = [key for key in keys if isinstance(key, str) and key.startswith(self.key_prefix)]
            if ours:
                self.retries.append((message.get("worker"), bool(message.get("expected")), ours, time.time()))

    def _handle_retries(self) -> None:
        records = []
        while self.retries:
            worker, expected, keys, when = self.retries.popleft()
            for key in keys:
                first, last = _span(key)
                for index in range(first, last + 1):
                    if self.status[index] != _PENDING:
                        continue
                    self.attempts[index] = min(255, self.attempts[index] + 1)
                    records.append({"time": iso_utc(when), **self.base, "task": self.names[index],
                                    "kind": self.kinds[index], "event": "retried", "worker": worker,
                                    "attempt": self.attempts[index],
                                    "reason": "worker retired" if expected else "worker lost"})
        if records and self.log is not None:
            self.log.write_many(records)

    def cancel(self) -> None:
        self.cancelled = True
        with suppress(Exception):
            self.client.run(tw.kill_pool, self.token)
        with self.lock:
            futures = list(self.inflight.values())
        with suppress(Exception):
            self.client.cancel(futures, force=True)

    def _cancel_unsubmitted(self) -> None:
        records: list[dict] = []
        for index in range(self.next, self.total):
            self.pool._specs[index] = None
            self._settle(index, tw.CANCELLED, None, None, None, "cancelled before it was submitted",
                         None, None, None, None, records)
        self.next = self.total
        if self.log is not None:
            self.log.write_many(records)

    def _flush_rows(self, force: bool = False) -> None:
        if self.store is None or not self.rows:
            return
        if force or len(self.rows) >= DB_FLUSH_ROWS or time.monotonic() - self.last_flush > DB_FLUSH_S:
            rows, self.rows = self.rows, []
            self.store.add_tasks(self.pool.run_id, rows)
            self.last_flush = time.monotonic()

    def _mark_run(self) -> None:
        if self.store is None:
            return
        bad = sum(1 for status in self.status if status != tw.FINISHED)
        if self.cancelled:
            self.store.mark_run(self.pool.run_id, "interrupted", f"cancelled; {bad} of {self.total} tasks not finished")
        elif bad:
            self.store.mark_run(self.pool.run_id, "failed", f"{bad} of {self.total} tasks did not finish")
        else:
            self.store.mark_run(self.pool.run_id, "completed")

    def _progress(self) -> None:
        if self.pool.on_progress is not None:
            with suppress(Exception):
                self.pool.on_progress(self.done, self.total)

    def statuses(self) -> dict[str, str]:
        return {name: _STATUS.get(status, "pending") for name, status in zip(self.names, self.status)}

    def outcome(self) -> dict[str, Any]:
        return dict(zip(self.names, self.values))


def _span(key: str) -> tuple[int, int]:
    first, _, last = key.rpartition("-")[2].partition(":")
    return int(first), int(last)


def _exception_line(future) -> str:
    try:
        error = future.exception(timeout=5)
    except Exception as failure:  # noqa: BLE001
        error = failure
    return tw.one_line(error)


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= RESULT_REPR_CHARS else text[: RESULT_REPR_CHARS - 3] + "..."


def summarise(statuses: Iterable[str]) -> dict[str, int]:
    """Counts by status."""
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts
