"""Checkpointed flows: named stages whose outputs are written atomically and fingerprinted.

A :class:`Flow` is a DAG of :class:`Stage` objects. :func:`run_flow` runs it for one run of
the run database: each stage writes its declared outputs into a staging folder, and on
success they are moved into the run's output folder in one rename each and recorded with
their manifest (size, modification time, SHA-256). A stage is skipped on a later run
(``resume``) only when it completed, its outputs are intact (sizes and times; every byte with
``verify``), and its fingerprint -- sdpflow version, its code, its own configuration section,
and the checksums of its inputs -- is unchanged; otherwise it and every stage downstream
rerun. A fan-out stage (:mod:`sdpflow.engine.fanout`) is checkpointed per item instead.
Every transition goes to the run database and to ``events.jsonl`` in the output folder.
"""

from __future__ import annotations

import hashlib
import inspect
import shutil
import threading
import time
import traceback
import logging
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Iterator

from sdpflow.engine.events import EventLog
from sdpflow.engine.fanout import FanOut
from sdpflow.engine.manifest import entry_checksum, intact, manifest_entry
from sdpflow.errors import ClusterError, InputError, StageFailed
from sdpflow.provenance import (atomic_path, checksum, config_hash, provenance_record, replace_atomically,
                                sdpflow_version)
from sdpflow.store.db import RunStore, utc_now

log = logging.getLogger(__name__)

#: Observers receive every event record (a dict) as it happens; the CLI draws progress from them.
Observer = Callable[[dict[str, Any]], None]

EVENT_LOG_NAME = "events.jsonl"
TASK_LOG_NAME = "tasks.jsonl"
DASK_REPORT_NAME = "dask-report.html"
STAGING_DIR = ".staging"


@dataclass(frozen=True)
class Stage:
    """One named step of a flow.

    ``run(ctx)`` computes and writes each name in ``outputs`` to ``ctx.output(name)``.
    ``inputs`` are files or folders outside the flow (a MeasurementSet, say); ``after`` names
    upstream stages, whose outputs count as inputs. ``config`` is the configuration this
    stage depends on (any JSON-able value); a change to it reruns the stage.
    ``input_checksum(path)`` replaces the checksum of every byte of an external input when
    only part of it matters (the columns of a MeasurementSet that a stage reads, say).
    A fan-out stage gives ``fan_out`` instead of ``run``. ``code`` names the version of the
    stage's code; by default the source of the modules defining its functions is hashed, so
    editing them reruns the stage.
    """

    name: str
    run: Callable[["StageContext"], Any] | None = None
    outputs: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    config: Any = None
    retries: int = 0
    backoff_s: float = 1.0
    input_checksum: Callable[[str], str] | None = None  # default: every byte of the file or folder
    fan_out: FanOut | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        if (self.run is None) == (self.fan_out is None):
            raise ValueError(f"stage {self.name}: give exactly one of run= and fan_out=")

    def functions(self) -> list[Callable]:
        """The functions whose code this stage runs."""
        if self.fan_out is not None:
            return [self.fan_out.items, self.fan_out.target]
        return [self.run]


@dataclass
class Flow:
    """A named DAG of stages; ``client_factory`` opens the Dask client when a stage first needs it."""

    name: str
    stages: list[Stage]
    client_factory: Callable[[], ContextManager[Any]] | None = None
    version: str | None = None  # a declared code version (Pipeline.version): replaces hashing the stages' sources
    performance_report: bool = False  # Dask's performance report of the run, as DASK_REPORT_NAME in its folder

    def __post_init__(self) -> None:
        names = [stage.name for stage in self.stages]
        duplicates = {name for name in names if names.count(name) > 1}
        if duplicates:
            raise ValueError(f"flow {self.name}: stage names repeat: {sorted(duplicates)}")
        self.stages = _topological_order(self.stages)

    def stage_names(self) -> list[str]:
        return [stage.name for stage in self.stages]


def _topological_order(stages: list[Stage]) -> list[Stage]:
    by_name = {stage.name: stage for stage in stages}
    for stage in stages:
        for upstream in stage.after:
            if upstream not in by_name:
                raise ValueError(f"stage {stage.name} comes after unknown stage {upstream}")
    ordered: list[Stage] = []
    state: dict[str, int] = {}

    def visit(stage: Stage) -> None:
        if state.get(stage.name) == 2:
            return
        if state.get(stage.name) == 1:
            raise ValueError(f"stages form a cycle through {stage.name}")
        state[stage.name] = 1
        for upstream in stage.after:
            visit(by_name[upstream])
        state[stage.name] = 2
        ordered.append(stage)

    for stage in stages:  # keeps the declared order where dependencies allow
        visit(stage)
    return ordered


@dataclass
class StageContext:
    """What a running stage sees: where to write, the client, the run's ids, a progress hook."""

    stage: Stage
    run_id: str
    out_dir: Path
    attempt: int
    staging_dir: Path
    _inputs: "InputChecksums"
    _client_opener: Callable[[], Any]
    _emit: Callable[..., None]
    config_hash: str = ""
    _store: RunStore | None = None

    @property
    def inputs(self) -> dict[str, str]:
        """The checksums of the stage's inputs (waits for them if they are still being computed)."""
        return self._inputs.result()

    def output(self, name: str) -> Path:
        """Where to write the declared output ``name`` (moved into place when the stage succeeds)."""
        if name not in self.stage.outputs:
            raise KeyError(f"stage {self.stage.name} does not declare output {name!r}")
        path = self.staging_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def product(self, name: str) -> Path:
        """The final path of an output of this or an upstream stage, in the run's output folder."""
        return self.out_dir / name

    @property
    def client(self) -> Any:
        """The run's Dask client, opened on first use and shared by all stages."""
        return self._client_opener()

    def provenance(self) -> dict[str, Any]:
        """The provenance record to store inside this stage's products."""
        return provenance_record(config_hash=self.config_hash, inputs=self.inputs, run_id=self.run_id)

    def progress(self, done: float, total: float, description: str | None = None) -> None:
        """Report progress within the stage (e.g. major cycles done of total)."""
        self._emit("stage-progress", stage=self.stage.name, done=done, total=total, description=description,
                   persist=False)

    def log(self, event: str, **detail: Any) -> None:
        """Record a stage-specific event (e.g. a metric per major cycle)."""
        self._emit(event, stage=self.stage.name, **detail)

    def result_rows(self, table: str) -> list[dict[str, Any]]:
        """This run's rows of result table ``table`` (written by fan-out stages upstream), by item and row."""
        if self._store is None:
            raise RuntimeError(f"stage {self.stage.name}: no run database to read result table {table} from")
        return self._store.result_rows(self.run_id, table)


@dataclass
class FlowResult:
    run_id: str
    out_dir: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)


def run_flow(
    flow: Flow,
    store: RunStore,
    run_id: str,
    out_dir: str | Path,
    *,
    from_stage: str | None = None,
    until_stage: str | None = None,
    observers: Iterable[Observer] = (),
    verify: bool = False,
) -> FlowResult:
    """Run (or resume) ``flow`` as run ``run_id``, writing products into ``out_dir``.

    ``from_stage`` forces that stage and everything after it to rerun; ``until_stage``
    stops after that stage; ``verify`` re-hashes recorded outputs instead of comparing their
    sizes and times. Raises :class:`StageFailed` when a stage fails for good; the run is then
    recorded as failed and its completed stages stay usable by a later resume.
    """
    check_stage_names(flow, from_stage, until_stage)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        run = FlowRun(flow, store, run_id, out_dir, list(observers), stack, verify)
        return run.execute(from_stage, until_stage)


def _worker_count(client: Any) -> int | None:
    """How many workers the scheduler has now (None when it cannot say)."""
    try:
        return len(client.nthreads())
    except Exception:  # a stand-in client, or a scheduler that is slow to answer: the count is only shown
        return None


def check_stage_names(flow: Flow, from_stage: str | None, until_stage: str | None) -> None:
    """An :class:`InputError` unless each given ``--from-stage``/``--until-stage`` is a stage of ``flow``."""
    names = flow.stage_names()
    for option, wanted in (("--from-stage", from_stage), ("--until-stage", until_stage)):
        if wanted is not None and wanted not in names:
            raise InputError(f"{option} {wanted}: flow {flow.name} has no such stage: choose one of {', '.join(names)}")


class FlowRun:
    """One invocation of a flow for one run: its store, ids, folder, event log and Dask client."""

    def __init__(self, flow: Flow, store: RunStore, run_id: str, out_dir: Path, observers: list[Observer],
                 stack: ExitStack, verify: bool):
        self.flow, self.store, self.run_id, self.out_dir = flow, store, run_id, out_dir
        self.observers, self.stack, self.verify = observers, stack, verify
        self.event_log = EventLog(out_dir / EVENT_LOG_NAME)
        stack.callback(self.event_log.close)
        self.client: Any = None

    def emit(self, event: str, stage: str | None = None, *, persist: bool = True, **detail: Any) -> None:
        record = {"run_id": self.run_id, "flow": self.flow.name, "event": event, "stage": stage, **detail}
        self.event_log.write(record)
        if persist:
            self.store.add_event(self.run_id, event, stage=stage, detail=detail or None)
        for observer in self.observers:
            observer(record)

    def open_client(self) -> Any:
        """The run's Dask client, opened on first use (a run whose stages are all skipped starts none)."""
        if self.client is None:
            if self.flow.client_factory is None:
                raise RuntimeError(f"flow {self.flow.name} has no Dask client factory")
            self.emit("cluster-starting", persist=False)
            started = time.perf_counter()
            self.client = self.stack.enter_context(self.flow.client_factory())
            if self.flow.performance_report:
                self.stack.enter_context(_performance_report(self.out_dir / DASK_REPORT_NAME))
            _start_task_stream(self.client)
            self.emit("cluster-opened", dashboard=getattr(self.client, "dashboard_link", None),
                      workers=_worker_count(self.client), elapsed_s=round(time.perf_counter() - started, 2))
        return self.client

    def execute(self, from_stage: str | None, until_stage: str | None) -> FlowResult:
        names = self.flow.stage_names()
        result = FlowResult(run_id=self.run_id, out_dir=self.out_dir)
        records = self.store.get_stages(self.run_id)
        rerun: set[str] = set()
        forced = set(names[names.index(from_stage):]) if from_stage else set()
        self.emit("flow-started", stages=names, total=len(names))
        for index, stage in enumerate(self.flow.stages):
            inputs = InputChecksums(stage, self.out_dir, records)
            self.stack.callback(inputs.wait)
            fingerprint = partial(_fingerprint, stage, inputs, self.flow.version)
            reason = _rerun_reason(stage, records.get(stage.name), fingerprint, self.out_dir, forced, rerun,
                                   self.verify)
            started = time.time()
            if reason is None and stage.fan_out is None:
                result.skipped.append(stage.name)
                self.emit("stage-skipped", stage=stage.name, index=index, total=len(names), reason="outputs intact")
            else:
                attempt = _StageAttempt(self, stage, inputs, fingerprint, reason, index, forced=stage.name in forced)
                value = attempt.run()
                if attempt.skipped:
                    result.skipped.append(stage.name)
                else:
                    rerun.add(stage.name)
                    result.ran.append(stage.name)
                    result.results[stage.name] = value
                    records[stage.name] = self.store.get_stages(self.run_id)[stage.name]
                if self.client is not None:
                    _log_tasks(self.client, stage.name, started, self.out_dir / TASK_LOG_NAME)
            if stage.name == until_stage:
                self.emit("flow-stopped", stage=stage.name, reason="until-stage")
                break
        self.emit("flow-completed", ran=result.ran, skipped=result.skipped)
        with suppress(OSError):  # each stage removed its own staging folder; this is their parent
            (self.out_dir / STAGING_DIR).rmdir()
        return result


@contextmanager
def _performance_report(path: Path) -> Iterator[None]:
    """Dask's performance report of what runs inside, written to ``path`` (atomically) when it ends well;
    a failed or interrupted run does not wait on its scheduler for one."""
    from distributed import performance_report

    staged = atomic_path(path)
    report = performance_report(filename=str(staged))
    report.__enter__()
    yield
    try:
        report.__exit__(None, None, None)
        replace_atomically(staged, path)
    except Exception as error:  # noqa: BLE001 - a report is a nicety; the run's products are written
        log.warning("no Dask performance report: %s: %s", type(error).__name__, error)
        staged.unlink(missing_ok=True)


def _start_task_stream(client: Any) -> None:
    """Ask the scheduler to record every task's start, end and worker from now on."""
    try:
        client.get_task_stream(count=1)
    except Exception:  # noqa: BLE001 - a timeline is a nicety; the run goes on without one
        pass


def _log_tasks(client: Any, stage: str, since: float, path: Path) -> None:
    """Append the Dask tasks a stage ran (worker, key, action, start, stop in epoch seconds) to ``path``."""
    try:
        records = client.get_task_stream(start=since)
    except Exception:  # noqa: BLE001
        return
    rows = [
        {"stage": stage, "key": str(record.get("key")), "worker": record.get("worker"), "action": part["action"],
         "start": part["start"], "stop": part["stop"]}
        for record in records for part in record.get("startstops", ())
    ]
    if rows:
        with EventLog(path) as log:
            log.write_many(rows)


class InputChecksums:
    """Checksums of a stage's external inputs and of its upstream stages' recorded outputs.

    Missing inputs fail at once (:class:`InputError`). Checksumming a large input (a
    MeasurementSet: a second or more) runs in a background thread, so a stage that runs
    anyway starts its cluster and its work meanwhile; :meth:`result` waits for it.
    """

    def __init__(self, stage: Stage, out_dir: Path, records: dict[str, dict[str, Any]]) -> None:
        self._upstream = {f"{upstream}:{name}": entry_checksum(value) for upstream in stage.after
                          for name, value in ((records.get(upstream) or {}).get("outputs") or {}).items()}
        sources = []
        for path in stage.inputs:
            source = Path(path)
            if not source.exists():
                raise InputError(f"stage {stage.name}: input {source} does not exist")
            sources.append(source)
        self._external: dict[str, str] = {}
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if sources:
            function = stage.input_checksum or checksum
            self._thread = threading.Thread(target=self._compute, args=(sources, function), daemon=True,
                                            name=f"checksum-{stage.name}")
            self._thread.start()

    def _compute(self, sources: list[Path], function: Callable[[str], str]) -> None:
        try:
            for source in sources:
                self._external[str(source.resolve())] = function(str(source))
        except BaseException as error:  # noqa: BLE001 - handed to whoever asks for the result
            self._error = error

    def wait(self) -> None:
        """Wait for the background checksums (so none outlives the flow)."""
        if self._thread is not None:
            self._thread.join()

    def result(self) -> dict[str, str]:
        self.wait()
        if self._error is not None:
            raise self._error
        return {**self._external, **self._upstream}


def code_identity(stage: Stage, flow_version: str | None = None) -> str:
    """What identifies the code a stage runs: its declared ``code``, else the flow's declared
    version, else the SHA-256 of the source files of the modules that define its functions."""
    if stage.code is not None:
        return f"declared:{stage.code}"
    if flow_version is not None:
        return f"version:{flow_version}"
    digest = hashlib.sha256()
    for path in sorted({_source_file(function) for function in stage.functions()} - {None}):
        digest.update(path.encode() + b"\0" + _file_sha256(path).encode())
    return "sha256:" + digest.hexdigest()


def _source_file(function: Callable) -> str | None:
    while isinstance(function, partial):
        function = function.func
    try:
        return inspect.getsourcefile(inspect.unwrap(function)) or None
    except TypeError:  # a builtin or a callable instance: no source of its own
        module = inspect.getmodule(type(function))
        return getattr(module, "__file__", None)


_SOURCE_HASHES: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: str) -> str:
    stat = Path(path).stat()
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _SOURCE_HASHES:
        _SOURCE_HASHES[key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return _SOURCE_HASHES[key]


def _fingerprint(stage: Stage, inputs: InputChecksums, flow_version: str | None = None) -> str:
    """hash(sdpflow version, the stage's code, its configuration, its input checksums)."""
    return config_hash({"version": sdpflow_version(), "code": code_identity(stage, flow_version),
                        "config": stage.config, "inputs": inputs.result()})


def _rerun_reason(
    stage: Stage,
    record: dict[str, Any] | None,
    fingerprint: Callable[[], str],
    out_dir: Path,
    forced: set[str],
    rerun: set[str],
    verify: bool = False,
) -> str | None:
    """Why ``stage`` must run, or None when its recorded completion still holds."""
    if stage.name in forced:
        return "asked to rerun"
    if record is None or record["status"] != "completed":
        return "not completed"
    if dirty := [upstream for upstream in stage.after if upstream in rerun]:
        return f"upstream {', '.join(dirty)} reran"
    if record.get("fingerprint") != fingerprint():
        return "inputs, code, configuration or sdpflow version changed"
    for name, entry in (record.get("outputs") or {}).items():
        if name.startswith(ITEMS_OUTPUT):
            continue
        if problem := intact(out_dir / name, entry, verify=verify):
            return f"output {name} {problem}"
    return None


#: The pseudo-output under which a fan-out stage records the digest of its items.
ITEMS_OUTPUT = "@items"


class _StageAttempt:
    """Running one stage (with its retries) within a :class:`FlowRun`."""

    def __init__(self, run: FlowRun, stage: Stage, inputs: InputChecksums, fingerprint: Callable[[], str],
                 reason: str | None, index: int, *, forced: bool):
        self.flow_run, self.stage, self.inputs, self.fingerprint = run, stage, inputs, fingerprint
        self.reason, self.index, self.forced = reason, index, forced
        self.skipped = False

    def run_stage(self, ctx: "StageContext") -> tuple[Any, dict[str, Any]]:
        """The stage's value and its outputs' manifest entries."""
        if self.stage.fan_out is None:
            value = self.stage.run(ctx)
            self.inputs.result()  # a failed input checksum fails the stage before its outputs land
            return value, _commit_outputs(self.stage, ctx.staging_dir, self.flow_run.out_dir)
        from sdpflow.engine.fanout_driver import run_fan_out

        value = run_fan_out(self.stage.fan_out, ctx, self.flow_run.store, self.fingerprint(), verify=self.flow_run.verify,
                            force=self.forced)
        return value, {ITEMS_OUTPUT: {"sha256": value.digest, "items": value.items}}

    def run(self) -> Any:
        run, stage = self.flow_run, self.stage
        store, total = run.store, len(run.flow.stages)
        previous = store.get_stages(run.run_id).get(stage.name)
        attempt = (previous or {}).get("attempt") or 0
        stage_hash = config_hash(stage.config)
        for try_number in range(stage.retries + 1):
            attempt += 1
            staging = run.out_dir / STAGING_DIR / stage.name
            shutil.rmtree(staging, ignore_errors=True)
            # a killed driver's batches may still run on the workers and write into their own
            # subfolders here (the fault-injection suite met it): the folder may exist again
            staging.mkdir(parents=True, exist_ok=True)
            ctx = StageContext(stage, run.run_id, run.out_dir, attempt, staging, self.inputs, run.open_client,
                               run.emit, stage_hash, run.store)
            if stage.fan_out is None or self.reason is not None:
                store.set_stage(run.run_id, stage.name, status="running", attempt=attempt, started=utc_now(),
                                finished=None, error=None, fingerprint=None)
                run.emit("stage-started", stage=stage.name, index=self.index, total=total, attempt=attempt,
                         reason=self.reason or "items to check")
            started = time.perf_counter()
            try:
                value, outputs = self.run_stage(ctx)
            except Exception as error:  # noqa: BLE001 - a stage may fail in any way; we record it
                message = f"{type(error).__name__}: {error}"
                store.set_stage(run.run_id, stage.name, status="failed", finished=utc_now(),
                                error=traceback.format_exc())
                # Items are retried one by one; a fan-out stage that failed on its items is not rerun whole.
                # Bad input and a cluster that cannot be had do not get better by trying again.
                retryable = not isinstance(error, (InputError, ClusterError)) and not (
                    stage.fan_out is not None and isinstance(error, StageFailed))
                if try_number < stage.retries and retryable:
                    delay = stage.backoff_s * 2**try_number
                    run.emit("stage-retrying", stage=stage.name, attempt=attempt, error=message, delay_s=delay)
                    time.sleep(delay)
                    continue
                run.emit("stage-failed", stage=stage.name, attempt=attempt, error=message)
                if isinstance(error, (InputError, StageFailed, ClusterError)):
                    raise
                raise StageFailed(f"stage {stage.name} failed after {try_number + 1} attempt(s): {message}") from error
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            if stage.fan_out is not None and self.reason is None and value.ran == 0:
                self.skipped = True  # completed before, same fingerprint, every item intact
                run.emit("stage-skipped", stage=stage.name, index=self.index, total=total, reason="items intact")
                return value
            self._record_completion(ctx, outputs, attempt, time.perf_counter() - started)
            return value
        raise AssertionError("unreachable")

    def _record_completion(self, ctx: "StageContext", outputs: dict[str, Any], attempt: int, elapsed: float) -> None:
        run, stage = self.flow_run, self.stage
        provenance = ctx.provenance()
        for name, entry in outputs.items():
            if not name.startswith(ITEMS_OUTPUT):
                run.store.record_product(run.run_id, stage.name, name, entry["sha256"], entry.get("size"), provenance)
        run.store.set_stage(run.run_id, stage.name, status="completed", finished=utc_now(),
                            fingerprint=self.fingerprint(), inputs=self.inputs.result(), outputs=outputs)
        run.emit("stage-completed", stage=stage.name, index=self.index, total=len(run.flow.stages), attempt=attempt,
                 elapsed_s=round(elapsed, 3), outputs={name: entry["sha256"] for name, entry in outputs.items()})


def _commit_outputs(stage: Stage, staging: Path, out_dir: Path) -> dict[str, dict[str, Any]]:
    """Move each staged output into ``out_dir`` atomically; their manifest entries."""
    missing = [name for name in stage.outputs if not (staging / name).exists()]
    if missing:
        raise RuntimeError(f"stage {stage.name} did not write its output(s) {', '.join(missing)}")
    outputs = {}
    for name in stage.outputs:
        staged, final = staging / name, out_dir / name
        final.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(staged, final)
        outputs[name] = manifest_entry(final)
    return outputs
