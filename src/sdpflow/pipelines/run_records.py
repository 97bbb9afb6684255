"""Runs as JSON-able records with stable keys: what ``runs list/show --json`` print and ``sdpflow ui`` serves.

Times are ISO 8601 strings in UTC; durations are seconds; the configuration is the stored one
with every secret shown as ``<redacted>`` (:func:`sdpflow.store.secrets.shown_secrets`).
A key is never dropped: an unknown value is ``null``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sdpflow.errors import SdpflowError
from sdpflow.pipelines.runner import run_status
from sdpflow.store.db import RunStore
from sdpflow.store.secrets import shown_secrets

#: The keys of a run in ``runs list --json`` (and the first keys of ``runs show --json``).
RUN_KEYS = ("id", "pipeline", "status", "started", "finished", "duration_s", "out_dir", "host", "user", "cluster",
            "sdpflow_version", "error")


def iso_utc(value: datetime | None) -> str | None:
    """``2026-11-29T19:30:00+00:00`` (a naive time, as SQLite returns it, is UTC); None stays None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="seconds")


def _seconds(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return round((finished - started).total_seconds(), 3)


def run_record(run: dict[str, Any]) -> dict[str, Any]:
    """One run of :meth:`RunStore.list_runs` as the keys of :data:`RUN_KEYS` (status as users see it)."""
    return {
        "id": run["id"], "pipeline": run["pipeline"], "status": run_status(run),
        "started": iso_utc(run["started"]), "finished": iso_utc(run["finished"]),
        "duration_s": _seconds(run["started"], run["finished"]), "out_dir": run["out_dir"], "host": run["host"],
        "user": run["user"], "cluster": run["cluster"], "sdpflow_version": run["sdpflow_version"],
        "error": run["error"],
    }


def stage_records(store: RunStore, run_id: str) -> list[dict[str, Any]]:
    """The stages of a run in the order they started: name, status, attempt, times, outputs, item counts."""
    counts = store.item_counts(run_id)
    return [
        {"name": stage["name"], "status": stage["status"], "attempt": stage["attempt"],
         "started": iso_utc(stage["started"]), "finished": iso_utc(stage["finished"]),
         "duration_s": _seconds(stage["started"], stage["finished"]),
         "outputs": sorted(name for name in (stage["outputs"] or {}) if not name.startswith("@")),
         "items": counts.get(stage["name"], {})}
        for stage in store.get_stages(run_id).values()
    ]


def product_records(store: RunStore, run_id: str) -> list[dict[str, Any]]:
    """The recorded products of a run: path (relative to its folder), stage, checksum ("sha256:HEX"), size in bytes."""
    return [{"path": row["path"], "stage": row["stage"], "checksum": row["checksum"], "size_bytes": row["size_bytes"]}
            for row in store.get_products(run_id)]


def event_records(store: RunStore, run_id: str, last: int | None = None) -> list[dict[str, Any]]:
    """The recorded events of a run (the ``last`` ones when given): time, stage, event, detail."""
    events = store.get_events(run_id)
    if last is not None:
        events = events[-last:] if last > 0 else []
    return [{"time": iso_utc(event["time"]), "stage": event["stage"], "event": event["event"],
             "detail": event["detail"]} for event in events]


def science_summary(run: dict[str, Any]) -> dict[str, Any] | None:
    """The pipeline's typed summary of a run (its ``read_summary``) as JSON values; None when the pipeline
    declares none, cannot be loaded, or the run has not written it (yet)."""
    from sdpflow.pipelines.registry import get_pipeline

    try:
        reader = get_pipeline(run["pipeline"]).read_summary
        return reader(Path(run["out_dir"])).model_dump(mode="json") if reader is not None else None
    except (SdpflowError, OSError):
        return None


def run_detail(store: RunStore, run: dict[str, Any]) -> dict[str, Any]:
    """Everything ``runs show --json`` prints: :func:`run_record`'s keys, then ``config`` (secrets redacted),
    ``stages``, ``products`` and ``summary``."""
    return {**run_record(run), "config": shown_secrets(run["config"]), "stages": stage_records(store, run["id"]),
            "products": product_records(store, run["id"]), "summary": science_summary(run)}


def progress_record(store: RunStore, run: dict[str, Any]) -> dict[str, Any]:
    """Where a run stands: its stages (with ``items_total``, the items a fan-out stage planned), how many
    stages are completed of how many, and how many items have an outcome (completed or failed) of how many
    were planned (``null`` before a fan-out stage planned its items)."""
    stages_total, planned = None, {}
    for event in store.get_events(run["id"]):
        detail = event["detail"] or {}
        if event["event"] == "flow-started":
            stages_total = detail.get("total")
        elif event["event"] == "items-planned":
            planned[event["stage"]] = detail.get("items")
    stages = stage_records(store, run["id"])
    for stage in stages:
        stage["items_total"] = planned.get(stage["name"])
    return {"id": run["id"], "status": run_status(run),
            "stages_done": sum(stage["status"] == "completed" for stage in stages),
            "stages_total": stages_total or len(stages),
            "items_done": sum(sum(stage["items"].values()) for stage in stages),
            "items_total": sum(planned.values()) if planned else None, "stages": stages}
