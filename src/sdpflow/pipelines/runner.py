"""Start and resume runs of a pipeline: the run record, the cluster, the flow."""

from __future__ import annotations

import os
import socket
import traceback
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel

from sdpflow.config import load_config
from sdpflow.engine.cluster import check_reachable, check_spec, open_cluster
from sdpflow.engine.flow import (DASK_REPORT_NAME, EVENT_LOG_NAME, STAGING_DIR, TASK_LOG_NAME, Flow, FlowResult,
                                 Observer, check_stage_names, run_flow)
from sdpflow.engine.outdir import OutputLock, claim_output_folder, refuse_foreign, refuse_inside
from sdpflow.errors import ConfigError, InputError, SdpflowError
from sdpflow.pipelines.registry import Pipeline, get_pipeline
from sdpflow.provenance import atomic_path, replace_atomically, sdpflow_version
from sdpflow.store.db import RunStore
from sdpflow.store.secrets import restore_secrets, without_secrets

#: The resolved configuration of a run, in its output folder: ``sdpflow run NAME --config`` takes it again.
CONFIG_FILE_NAME = "config.yaml"


def configure(
    pipeline_name: str,
    config_path: str | Path | None = None,
    overrides: Iterable[str] = (),
    values: dict[str, Any] | None = None,
) -> tuple[Pipeline, BaseModel]:
    """A pipeline (a name or ``module:ATTRIBUTE``) and its validated configuration, as ``sdpflow run`` and
    :func:`sdpflow.run` take them: defaults, then the YAML file, then ``values`` (options), then ``overrides``
    (``key=value``, as ``--set``). A bad key or value is a :class:`ConfigError` naming it."""
    pipeline = get_pipeline(pipeline_name)
    return pipeline, load_config(pipeline.config_model, config_path, overrides, values=values, name=pipeline_name)


def start_run(
    pipeline_name: str,
    config: BaseModel,
    out_dir: str | Path,
    *,
    store: RunStore,
    cluster_spec: str | None = None,
    observers: Iterable[Observer] = (),
    until_stage: str | None = None,
    overwrite: bool = False,
) -> FlowResult:
    """Record a new run of a pipeline (a name or ``module:ATTRIBUTE``) and run it to the end (or ``until_stage``).

    ``overwrite``: accept an output folder holding files sdpflow did not write (none of them is replaced).
    """
    pipeline = get_pipeline(pipeline_name)
    config = _with_cluster(config, cluster_spec)
    check_spec(getattr(config, "cluster", None))  # a bad --cluster is exit 2 before anything is recorded
    flow = _flow(pipeline, config)  # checks the inputs before anything is recorded or started
    check_stage_names(flow, None, until_stage)
    _check_reachable(config)  # an unreachable scheduler is exit 3 before the folder is made
    out = _claim(flow, config, Path(out_dir), overwrite)
    with OutputLock(out) as lock:  # a second run on this folder stops here, before it is recorded
        run_id = store.create_run(pipeline_name, config.model_dump(mode="json"), out_dir, cluster=_cluster_label(config),
                                  name=pipeline.name)
        lock.set_run_id(run_id)
        write_config_file(out, config, run_id, pipeline_name)
        return _execute(flow, run_id, out, store, observers, None, until_stage)


def resume_run(
    run_id: str,
    *,
    store: RunStore,
    cluster_spec: str | None = None,
    observers: Iterable[Observer] = (),
    from_stage: str | None = None,
    until_stage: str | None = None,
    verify: bool = False,
) -> FlowResult:
    """Continue a run: completed stages with intact outputs are skipped, the rest rerun.

    Outputs count as intact when their sizes and modification times are as recorded; with
    ``verify`` every recorded output is hashed again.
    """
    record = store.get_run(run_id)
    if record["status"] == "running" and process_alive(record):
        raise InputError(
            f"run {record['id']} is still running (pid {record['pid']} on {record['host']}): wait for it or stop it"
        )
    pipeline = get_pipeline(record["pipeline"])
    recorded = restore_secrets(record["config"], f"run {record['id']}")  # kept out of the database
    try:
        config = pipeline.config_model.model_validate(recorded)
    except Exception as error:  # the configuration no longer validates against this sdpflow
        raise ConfigError(f"run {record['id']}: its recorded configuration no longer validates: {error}") from None
    config = _with_cluster(config, cluster_spec)
    check_spec(getattr(config, "cluster", None))  # a bad --cluster is exit 2 before anything is recorded
    flow = _flow(pipeline, config)
    check_stage_names(flow, from_stage, until_stage)  # before the run's status changes
    _check_reachable(config)
    with OutputLock(record["out_dir"], record["id"]):
        write_config_file(Path(record["out_dir"]), config, record["id"], record["pipeline"])
        store.mark_run(record["id"], "running")
        return _execute(flow, record["id"], Path(record["out_dir"]), store, observers, from_stage, until_stage, verify)


def _claim(flow: Flow, config: BaseModel, out: Path, overwrite: bool) -> Path:
    """Claim the run's output folder: never inside its MeasurementSet, never replacing a foreign file."""
    if getattr(config, "ms", None):
        refuse_inside(out, config.ms)
    written = [*(name for stage in flow.stages for name in stage.outputs), EVENT_LOG_NAME, TASK_LOG_NAME, STAGING_DIR,
               CONFIG_FILE_NAME, DASK_REPORT_NAME]
    out = claim_output_folder(out, writer=f"sdpflow run {flow.name}", overwrite=overwrite, writes=written)
    refuse_foreign(out, written)
    return out


def write_config_file(out: Path, config: BaseModel, run_id: str, pipeline_name: str) -> Path:
    """Write the run's resolved configuration as ``config.yaml`` in its output folder (atomically; never over
    a file sdpflow did not write). Secret-named values are left out and named in its header."""
    refuse_foreign(out, [CONFIG_FILE_NAME])
    values, left_out = without_secrets(config.model_dump(mode="json"))
    command = f"flow {pipeline_name}" if ":" in pipeline_name else pipeline_name
    header = (f"# The resolved configuration of sdpflow run {run_id} (sdpflow {sdpflow_version()}).\n"
              f"# Run it again: sdpflow run {command} --config {CONFIG_FILE_NAME} --out NEW_FOLDER\n")
    if left_out:
        header += f"# Left out, as secrets (give them again): {', '.join(left_out)}\n"
    path = out / CONFIG_FILE_NAME
    staged = atomic_path(path)
    staged.write_text(header + yaml.safe_dump(values, sort_keys=False))
    replace_atomically(staged, path)
    return path


def _flow(pipeline: Pipeline, config: BaseModel) -> Flow:
    """The pipeline's flow for this configuration, its cluster opened only when a stage needs it."""
    cluster_config = getattr(config, "cluster", None)
    try:
        stages = pipeline.build(config)
    except SdpflowError:
        raise
    except Exception as error:  # a bug in the pipeline's code: one line here, the traceback with -v
        frame = traceback.extract_tb(error.__traceback__)[-1]
        raise SdpflowError(f"pipeline {pipeline.name!r} could not build its stages: {type(error).__name__}: {error} "
                           f"({Path(frame.filename).name}:{frame.lineno}): fix the pipeline; -v shows the "
                           "traceback") from error
    return Flow(pipeline.name, stages,
                client_factory=lambda: open_cluster(cluster_config, worker_imports=pipeline.worker_imports),
                version=getattr(pipeline, "version", None),
                performance_report=bool(getattr(cluster_config, "dask_report", False)))


def _execute(
    flow: Flow,
    run_id: str,
    out_dir: Path,
    store: RunStore,
    observers: Iterable[Observer],
    from_stage: str | None,
    until_stage: str | None,
    verify: bool = False,
) -> FlowResult:
    try:
        result = run_flow(
            flow, store, run_id, out_dir, from_stage=from_stage, until_stage=until_stage, observers=observers,
            verify=verify,
        )
    except KeyboardInterrupt:
        store.mark_run(run_id, "interrupted", error="interrupted by the user")
        store.mark_running_stages(run_id, "interrupted")
        raise
    except SdpflowError as error:
        store.mark_run(run_id, "failed", error=str(error))
        raise
    except Exception as error:
        store.mark_run(run_id, "failed", error=f"{type(error).__name__}: {error}")
        raise
    store.mark_run(run_id, "completed")
    return result


def _with_cluster(config: BaseModel, cluster_spec: str | None) -> BaseModel:
    """The configuration with ``cluster.spec`` replaced by the command line's ``--cluster``."""
    if cluster_spec and hasattr(config, "cluster"):
        return config.model_copy(update={"cluster": config.cluster.model_copy(update={"spec": cluster_spec})})
    return config


def _check_reachable(config: BaseModel) -> None:
    if getattr(config, "cluster", None) is not None:
        check_reachable(config.cluster)


def _cluster_label(config: BaseModel) -> str | None:
    cluster = getattr(config, "cluster", None)
    return (cluster.spec or os.environ.get("SDPFLOW_SCHEDULER") or "local") if cluster is not None else None


def is_stopped(record: dict[str, Any]) -> bool:
    """A run recorded as running whose process on this host is gone (``runs resume`` continues it)."""
    return (record["status"] == "running" and record.get("host") == socket.gethostname()
            and not process_alive(record))


def run_status(record: dict[str, Any]) -> str:
    """A run's status as shown to users: ``stopped`` for a run recorded as running whose process is gone."""
    return "stopped" if is_stopped(record) else record["status"]


def process_alive(record: dict[str, Any]) -> bool:
    """Whether the process that last ran this run is alive (known only on the same host)."""
    if record.get("host") != socket.gethostname() or not record.get("pid"):
        return False
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return int(record["pid"]) != os.getpid()
