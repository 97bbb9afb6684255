"""sdpflow from Python: run and resume any registered pipeline, list runs, read a run's results.

The same path as the command line: :func:`run` validates with the configuration loader and
starts the run with the runner that ``sdpflow run NAME`` uses (``pipelines.runner``), so the
defaults, the checks and the :mod:`sdpflow.errors` raised (with their one-line messages) are
the CLI's. No science and no Dask here; Dask starts only when a stage needs its cluster.

Inside a running event loop (a Jupyter kernel) the flow runs in a thread of its own, so Dask's
client never blocks the kernel's loop, and the progress is drawn in the notebook.
"""

from __future__ import annotations

import asyncio
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from sdpflow.api.run import Product, Run

if TYPE_CHECKING:
    import pandas

__all__ = ["Product", "Run", "resume", "run", "runs"]

#: Environment variables the command line reads for ``--db`` and ``--cluster``; the API reads them too.
DB_ENV, CLUSTER_ENV = "SDPFLOW_DB", "SDPFLOW_CLUSTER"


def run(
    pipeline: str,
    *,
    out: str | Path,
    cluster: str | None = None,
    db: str | None = None,
    config: str | Path | Mapping[str, Any] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    until_stage: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    wait: bool = True,
    **options: Any,
) -> Run:
    """Run a pipeline, as ``sdpflow run PIPELINE`` does; returns the :class:`Run` once it has finished.

    ``pipeline``: a registered name (``ical``, ``continuum``, ``tiles``, ...) or ``module:ATTRIBUTE``.
    ``out``: the run's output folder. ``cluster``: as ``--cluster`` (``local:2``, ``tcp://host:8786``,
    ``slurm``...; default ``$SDPFLOW_CLUSTER``, then ``$SDPFLOW_SCHEDULER``, then local). ``db``: the
    run database's URL (default ``$SDPFLOW_DB``, then the user's SQLite file). ``config``: a YAML
    file, or a mapping of the same keys. ``options``: the configuration's fields and the command's
    flags in Python spelling (``ms="obs.ms", size=(256, 256), niter=500, weight="briggs 0",
    T_first_selfcal=1``); ``overrides``: ``"key=value"`` strings as ``--set``. Precedence, lowest
    first: defaults, ``config``, ``options``, ``overrides``. ``wait=False`` returns as soon as the
    run is recorded (its flow goes on in a thread; :meth:`Run.wait` waits for it).

    Raises what the command line reports: :class:`sdpflow.errors.ConfigError` for a bad option,
    :class:`~sdpflow.errors.InputError` for bad input data or folders, each with the CLI's message.
    """
    from sdpflow.config import deep_merge
    from sdpflow.config.base import keyword_values
    from sdpflow.pipelines import get_pipeline
    from sdpflow.pipelines.runner import configure, start_run

    model = get_pipeline(pipeline).config_model
    values = keyword_values(model, options, name=pipeline)
    config_path = None
    if isinstance(config, Mapping):
        values = deep_merge(dict(config), values)
    else:
        config_path = config
    _, validated = configure(pipeline, config_path, overrides, values)
    store = _store(db)
    start = partial(start_run, pipeline, validated, out, store=store, cluster_spec=_cluster(cluster),
                    until_stage=until_stage, overwrite=overwrite)
    return _launch(start, store, progress, wait)


def resume(
    run_id: str,
    *,
    cluster: str | None = None,
    db: str | None = None,
    from_stage: str | None = None,
    until_stage: str | None = None,
    verify: bool = False,
    progress: bool = True,
    wait: bool = True,
) -> Run:
    """Continue a run, as ``sdpflow runs resume RUN``: stages whose outputs, inputs, code and configuration are
    unchanged are skipped. ``from_stage``/``until_stage`` choose a range to rerun; ``verify`` re-hashes outputs."""
    from sdpflow.pipelines.runner import resume_run

    store = _store(db)
    start = partial(resume_run, run_id, store=store, cluster_spec=_cluster(cluster), from_stage=from_stage,
                    until_stage=until_stage, verify=verify)
    return _launch(start, store, progress, wait)


#: The filters :func:`runs` takes.
RUN_FILTERS = ("pipeline", "status", "limit")


def runs(db: str | None = None, **filters: Any) -> pandas.DataFrame:
    """The runs of the run database, newest first, as a DataFrame (a row per run, as ``sdpflow runs list``).

    Filters: ``pipeline=`` (the name or ``module:ATTRIBUTE`` it was started with), ``status=`` (``completed``,
    ``failed``, ``running``, ``interrupted``, ``stopped``), ``limit=`` (default 20). Columns: id, pipeline,
    status, started, finished (UTC), duration_s, out_dir, cluster, host, user, error.
    """
    import pandas

    from sdpflow.errors import InputError
    from sdpflow.pipelines.runner import run_status

    unknown = sorted(set(filters) - set(RUN_FILTERS))
    if unknown:
        raise InputError(f"sdpflow.runs(): no filter {unknown[0]!r}: use {', '.join(RUN_FILTERS)}")
    limit = filters.get("limit", 20)
    if not isinstance(limit, int) or limit < 1:
        raise InputError(f"sdpflow.runs(): limit={limit!r}: give a positive whole number")
    store = _store(db)
    rows = []
    for record in store.list_runs(limit=limit if "status" not in filters else 1_000_000,
                                  pipeline=filters.get("pipeline")):
        status = run_status(record)
        if filters.get("status") not in (None, status):
            continue
        finished, started = record["finished"], record["started"]
        rows.append({"id": record["id"], "pipeline": record["pipeline"], "status": status, "started": started,
                     "finished": finished,
                     "duration_s": (finished - started).total_seconds() if finished and started else None,
                     "out_dir": record["out_dir"], "cluster": record["cluster"], "host": record["host"],
                     "user": record["user"], "error": record["error"]})
    columns = ["id", "pipeline", "status", "started", "finished", "duration_s", "out_dir", "cluster", "host",
               "user", "error"]
    return pandas.DataFrame(rows[:limit], columns=columns)


def _store(db: str | None):
    from sdpflow.store import RunStore

    return RunStore(db or os.environ.get(DB_ENV))


def _cluster(cluster: str | None) -> str | None:
    return cluster or os.environ.get(CLUSTER_ENV)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _launch(start: Any, store: Any, progress: bool, wait: bool) -> Run:
    """Run ``start(observers=...)`` here, or in a thread when an event loop runs here or ``wait`` is False."""
    from sdpflow.api.progress import flow_progress
    from sdpflow.api.run import RunningHere, _FlowThread
    from sdpflow.loglines import set_dask_logging

    set_dask_logging(0)  # as the CLI without -v: a failure is the run's one-line error, not Dask's logs
    display = flow_progress(progress)
    if wait and not _loop_running():
        with display, RunningHere() as running_here:
            result = start(observers=[running_here, display])
        return Run(result.run_id, store=store)
    worker = _FlowThread(lambda observers: start(observers=observers), display)
    handle = Run(worker.start(), store=store)
    handle._worker = worker
    return handle.wait() if wait else handle
