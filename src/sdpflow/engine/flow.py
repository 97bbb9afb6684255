"""Checkpointed flows: named stages whose outputs are written atomically and fingerprinted.

A :class:`Flow` is a DAG of :class:`Stage` objects. :func:`run_flow` runs it for one run of
the run database: each stage writes its declared outputs into a staging folder, and on
success they are checksummed and moved into the run's output folder in one rename each.
A stage is skipped on a later run (``resume``) only when it completed, its outputs are
intact, and its fingerprint -- sdpflow version, its own configuration section, and the
checksums of its inputs -- is unchanged; otherwise it and every stage downstream rerun.
Every transition goes to the run database and to ``events.jsonl`` in the output folder.
"""

from __future__ import annotations

import shutil
import threading
import time
import traceback
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable

from sdpflow.engine.events import EventLog
from sdpflow.errors import InputError, StageFailed
from sdpflow.provenance import checksum, config_hash, provenance_record, replace_atomically, sdpflow_version
from sdpflow.store.db import RunStore, utc_now

#: Observers receive every event record (a dict) as it happens; the CLI draws progress from them.
Observer = Callable[[dict[str, Any]], None]

EVENT_LOG_NAME = "events.jsonl"
TASK_LOG_NAME = "tasks.jsonl"
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
    """

    name: str
    run: Callable[["StageContext"], Any]
    outputs: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    config: Any = None
    retries: int = 0
    backoff_s: float = 1.0
    input_checksum: Callable[[str], str] | None = None  # default: every byte of the file or folder


@dataclass
class Flow:
    """A named DAG of stages; ``client_factory`` opens the Dask client when a stage first needs it."""

    name: str
    stages: list[Stage]
    client_factory: Callable[[], ContextManager[Any]] | None = None

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
) -> FlowResult:
    """Run (or resume) ``flow`` as run ``run_id``, writing products into ``out_dir``.

    ``from_stage`` forces that stage and everything after it to rerun; ``until_stage``
    stops after that stage. Raises :class:`StageFailed` when a stage fails for good; the
    run is then recorded as failed and its completed stages stay usable by a later resume.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = flow.stage_names()
    for wanted in (from_stage, until_stage):
        if wanted is not None and wanted not in names:
            raise InputError(f"flow {flow.name} has no stage {wanted!r}: choose one of {', '.join(names)}")
    observers = list(observers)
    event_log = EventLog(out_dir / EVENT_LOG_NAME)
    result = FlowResult(run_id=run_id, out_dir=out_dir)

    def emit(event: str, stage: str | None = None, *, persist: bool = True, **detail: Any) -> None:
        record = {"run_id": run_id, "flow": flow.name, "event": event, "stage": stage, **detail}
        event_log.write(record)
        if persist:
            store.add_event(run_id, event, stage=stage, detail=detail or None)
        for observer in observers:
            observer(record)

    with ExitStack() as stack:
        stack.callback(event_log.close)
        client_holder: list[Any] = []

        def open_client() -> Any:
            if not client_holder:
                if flow.client_factory is None:
                    raise RuntimeError(f"flow {flow.name} has no Dask client factory")
                client_holder.append(stack.enter_context(flow.client_factory()))
                _start_task_stream(client_holder[0])
                emit("cluster-opened", dashboard=getattr(client_holder[0], "dashboard_link", None))
            return client_holder[0]

        records = store.get_stages(run_id)
        rerun: set[str] = set()
        forced = set(names[names.index(from_stage):]) if from_stage else set()
        emit("flow-started", stages=names, total=len(names))
        for index, stage in enumerate(flow.stages):
            inputs = InputChecksums(stage, out_dir, records)
            stack.callback(inputs.wait)
            fingerprint = partial(_fingerprint, stage, inputs)
            reason = _rerun_reason(stage, records.get(stage.name), fingerprint, out_dir, forced, rerun)
            if reason is None:
                result.skipped.append(stage.name)
                emit("stage-skipped", stage=stage.name, index=index, total=len(names), reason="outputs intact")
            else:
                rerun.add(stage.name)
                stage_started = time.time()
                result.results[stage.name] = _run_stage(
                    stage, store, run_id, out_dir, inputs, fingerprint, reason, index, len(names), open_client, emit
                )
                if client_holder:
                    _log_tasks(client_holder[0], stage.name, stage_started, out_dir / TASK_LOG_NAME)
                result.ran.append(stage.name)
                records[stage.name] = store.get_stages(run_id)[stage.name]
            if stage.name == until_stage:
                emit("flow-stopped", stage=stage.name, reason="until-stage")
                break
        emit("flow-completed", ran=result.ran, skipped=result.skipped)
    return result


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
    with EventLog(path) as log:
        log.write_many(rows)


class InputChecksums:
    """Checksums of a stage's external inputs and of its upstream stages' recorded outputs.

    Missing inputs fail at once (:class:`InputError`). Checksumming a large input (a
    MeasurementSet: a second or more) runs in a background thread, so a stage that runs
    anyway starts its cluster and its work meanwhile; :meth:`result` waits for it.
    """

    def __init__(self, stage: Stage, out_dir: Path, records: dict[str, dict[str, Any]]) -> None:
        self._upstream = {f"{upstream}:{name}": value for upstream in stage.after
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


def _fingerprint(stage: Stage, inputs: InputChecksums) -> str:
    """hash(sdpflow version, the stage's configuration, its input checksums)."""
    return config_hash({"version": sdpflow_version(), "config": stage.config, "inputs": inputs.result()})


def _rerun_reason(
    stage: Stage,
    record: dict[str, Any] | None,
    fingerprint: Callable[[], str],
    out_dir: Path,
    forced: set[str],
    rerun: set[str],
) -> str | None:
    """Why ``stage`` must run, or None when its recorded completion still holds."""
    if stage.name in forced:
        return "asked to rerun"
    if record is None or record["status"] != "completed":
        return "not completed"
    if dirty := [upstream for upstream in stage.after if upstream in rerun]:
        return f"upstream {', '.join(dirty)} reran"
    if record.get("fingerprint") != fingerprint():
        return "inputs, configuration or sdpflow version changed"
    for name, recorded in (record.get("outputs") or {}).items():
        path = out_dir / name
        if not path.exists():
            return f"output {name} is missing"
        if checksum(path) != recorded:
            return f"output {name} changed since it was written"
    return None


def _run_stage(
    stage: Stage,
    store: RunStore,
    run_id: str,
    out_dir: Path,
    inputs: InputChecksums,
    fingerprint: Callable[[], str],
    reason: str,
    index: int,
    total: int,
    open_client: Callable[[], Any],
    emit: Callable[..., None],
) -> Any:
    previous = store.get_stages(run_id).get(stage.name)
    attempt = (previous or {}).get("attempt") or 0
    stage_hash = config_hash(stage.config)
    for try_number in range(stage.retries + 1):
        attempt += 1
        staging = out_dir / STAGING_DIR / stage.name
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        store.set_stage(run_id, stage.name, status="running", attempt=attempt, started=utc_now(), finished=None,
                        error=None, fingerprint=None)
        emit("stage-started", stage=stage.name, index=index, total=total, attempt=attempt, reason=reason)
        ctx = StageContext(stage, run_id, out_dir, attempt, staging, inputs, open_client, emit, stage_hash)
        started = time.perf_counter()
        try:
            value = stage.run(ctx)
            inputs.result()  # a failed input checksum fails the stage before its outputs land
            outputs = _commit_outputs(stage, staging, out_dir)
        except Exception as error:  # noqa: BLE001 - a stage may fail in any way; we record it
            message = f"{type(error).__name__}: {error}"
            store.set_stage(run_id, stage.name, status="failed", finished=utc_now(), error=traceback.format_exc())
            if try_number < stage.retries and not isinstance(error, InputError):
                delay = stage.backoff_s * 2**try_number
                emit("stage-retrying", stage=stage.name, attempt=attempt, error=message, delay_s=delay)
                time.sleep(delay)
                continue
            emit("stage-failed", stage=stage.name, attempt=attempt, error=message)
            if isinstance(error, InputError):
                raise
            raise StageFailed(f"stage {stage.name} failed after {try_number + 1} attempt(s): {message}") from error
        elapsed = time.perf_counter() - started
        provenance = ctx.provenance()
        for name, value_checksum in outputs.items():
            path = out_dir / name
            size = path.stat().st_size if path.is_file() else None
            store.record_product(run_id, stage.name, name, value_checksum, size, provenance)
        store.set_stage(run_id, stage.name, status="completed", finished=utc_now(), fingerprint=fingerprint(),
                        inputs=inputs.result(), outputs=outputs)
        emit("stage-completed", stage=stage.name, index=index, total=total, attempt=attempt,
             elapsed_s=round(elapsed, 3), outputs=outputs)
        shutil.rmtree(staging, ignore_errors=True)
        return value
    raise AssertionError("unreachable")


def _commit_outputs(stage: Stage, staging: Path, out_dir: Path) -> dict[str, str]:
    """Checksum each staged output and move it into ``out_dir`` atomically."""
    missing = [name for name in stage.outputs if not (staging / name).exists()]
    if missing:
        raise RuntimeError(f"stage {stage.name} did not write its output(s) {', '.join(missing)}")
    outputs = {}
    for name in stage.outputs:
        staged, final = staging / name, out_dir / name
        outputs[name] = checksum(staged)
        final.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(staged, final)
    return outputs


