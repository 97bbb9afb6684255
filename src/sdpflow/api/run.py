""":class:`Run`: one run of the run database as Python sees it (status, summary, products, tables)."""

from __future__ import annotations

import ctypes
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import pandas

    from sdpflow.store import RunStore


@dataclass(frozen=True)
class Product:
    """A product of a run: its file (or folder) and the SHA-256 recorded when its stage completed."""

    path: Path
    checksum: str
    size_bytes: int | None
    stage: str


class Run:
    """A run of a pipeline, read from the run database whenever asked (another process may be running it).

    ``sdpflow.run`` and ``sdpflow.resume`` return one; ``Run(run_id, db=...)`` opens any recorded run
    (a unique prefix of its id is enough). A run started in the background (``wait=False``, or from a
    notebook) is waited for by :meth:`wait`, which draws its progress and raises its error.
    """

    def __init__(self, run_id: str, db: str | None = None, *, store: RunStore | None = None):
        from sdpflow.store import RunStore

        self._store = store or RunStore(db)
        self.id: str = self._store.get_run(run_id)["id"]
        self._worker: _FlowThread | None = None

    # -- the record -------------------------------------------------------------------------
    @property
    def record(self) -> dict[str, Any]:
        """The run's row of the run database (pipeline, config, out_dir, status, started, error...)."""
        return self._store.get_run(self.id)

    @property
    def status(self) -> str:
        """``running``, ``completed``, ``failed``, ``interrupted``, or ``stopped`` (recorded running, process gone)."""
        from sdpflow.pipelines.runner import run_status

        record = self.record
        if self.id in _RUNNING_HERE:  # its flow runs in this process: not "stopped" for having its pid
            return record["status"]
        return run_status(record)

    @property
    def pipeline(self) -> str:
        return self.record["pipeline"]

    @property
    def out_dir(self) -> Path:
        return Path(self.record["out_dir"])

    @property
    def error(self) -> str | None:
        """The one-line error of a failed run."""
        return self.record["error"]

    @property
    def summary(self) -> Any:
        """The pipeline's typed summary of the finished run (imaging: ``ImagingSummary``); None if it declares none."""
        from sdpflow.pipelines import get_pipeline

        reader = get_pipeline(self.pipeline).read_summary
        return reader(self.out_dir) if reader is not None else None

    @property
    def summary_text(self) -> str:
        """The headline `sdpflow run` prints after the run ("" before the run wrote it)."""
        from sdpflow.pipelines import get_pipeline

        summary = get_pipeline(self.pipeline).summary
        return summary(self.out_dir) if summary is not None else ""

    @property
    def products(self) -> dict[str, Product]:
        """Recorded products by name (relative to the output folder): path, SHA-256, size, stage."""
        out = self.out_dir
        return {row["path"]: Product(out / row["path"], row["checksum"], row["size_bytes"], row["stage"])
                for row in self._store.get_products(self.id)}

    @property
    def report(self) -> Path | None:
        """The run's HTML report (the pipeline's ``report.html``, else ``runs report``'s), None if none is written."""
        for name in ("report.html", "run-report.html"):
            if (self.out_dir / name).is_file():
                return self.out_dir / name
        return None

    @property
    def dashboard(self) -> str | None:
        """The Dask dashboard's link while the run is running (None otherwise, or before its cluster opened)."""
        if self.status != "running":
            return None
        opened = [event for event in self._store.get_events(self.id) if event["event"] == "cluster-opened"]
        return (opened[-1].get("detail") or {}).get("dashboard") if opened else None

    def table(self, name: str) -> pandas.DataFrame:
        """Result table ``name`` of this run (as ``sdpflow runs show RUN --table NAME``), a row per result."""
        import pandas

        return pandas.DataFrame(self._store.result_rows(self.id, name))

    # -- a run in progress ----------------------------------------------------------------------
    def wait(self) -> Run:
        """Wait for a run started here in the background, drawing its progress; raises the run's error."""
        if self._worker is not None:
            self._worker.wait()
        return self

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status!r}, out_dir={str(self.out_dir)!r})"


#: Ids of the runs whose flows run in this process (in any thread).
_RUNNING_HERE: set[str] = set()


class RunningHere:
    """An observer that records, from its first event to the end of the block, that a run's flow runs here."""

    def __init__(self) -> None:
        self.run_id: str | None = None

    def __call__(self, record: dict[str, Any]) -> None:
        if self.run_id is None and record.get("run_id"):
            self.run_id = record["run_id"]
            _RUNNING_HERE.add(self.run_id)

    def __enter__(self) -> RunningHere:
        return self

    def __exit__(self, *exc: object) -> None:
        _RUNNING_HERE.discard(self.run_id)


class _FlowThread:
    """A flow run in a thread of its own (a notebook's event loop is never blocked by Dask's client).

    The flow's events travel through a queue to whichever thread waits, which draws the progress:
    a notebook's output belongs to the thread of the cell that started the run.
    """

    def __init__(self, start: Callable[[list[Callable[[dict[str, Any]], None]]], Any], progress: Any):
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.progress = progress
        self.running_here = RunningHere()
        self.error: BaseException | None = None
        self._recorded = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(start,), name="sdpflow-run", daemon=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _main(self, start: Callable[..., Any]) -> None:
        try:
            with self.running_here:
                start([self._observe])
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            self.error = error
        finally:
            self.events.put(None)
            self._recorded.set()

    def _observe(self, record: dict[str, Any]) -> None:
        self.running_here(record)
        self._recorded.set()
        self.events.put(record)

    def start(self) -> str:
        """Start the flow; its run id once recorded. Bad input found before that is raised here, as the CLI's."""
        self._thread.start()
        self._recorded.wait()
        if self.running_here.run_id is None:
            self._thread.join()
            raise self.error if self.error is not None else RuntimeError("the flow ended without recording a run")
        return self.running_here.run_id

    def wait(self) -> None:
        try:
            with self.progress:
                while (record := self._next_event()) is not None:
                    self.progress(record)
        except KeyboardInterrupt:  # unwind the flow as Ctrl-C would: the run is marked interrupted
            _raise_in(self._thread, KeyboardInterrupt)
            self._thread.join()
            raise
        self._thread.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error


    def _next_event(self) -> dict[str, Any] | None:
        while True:  # a timeout, so that Ctrl-C (a kernel's interrupt) is seen at once
            try:
                return self.events.get(timeout=0.5)
            except queue.Empty:
                continue


def _raise_in(thread: threading.Thread, kind: type[BaseException]) -> None:
    """Raise ``kind`` in ``thread`` at its next Python instruction."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(kind))
