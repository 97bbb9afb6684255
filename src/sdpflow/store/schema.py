"""Tables of the run database. Bump :data:`SCHEMA_VERSION` when they change."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

#: 1: runs, stages, products, events, tasks; 2: items (fan-out stages' per-item records).
SCHEMA_VERSION = 2

metadata = MetaData()

schema_info = Table(
    "schema_info",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

def _run_table(name: str, *columns) -> Table:
    """A table of rows that belong to a run: an integer ``id`` and ``run_id`` (deleted with the run) first."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        *columns,
    )


runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("pipeline", String(64), nullable=False),
    Column("config", JSON, nullable=False),
    Column("config_hash", String(80), nullable=False),
    Column("out_dir", Text, nullable=False),
    Column("status", String(16), nullable=False),  # running, completed, failed, interrupted
    Column("host", String(256), nullable=False),
    Column("user", String(128), nullable=False),
    Column("pid", Integer),
    Column("cluster", String(512)),
    Column("sdpflow_version", String(64), nullable=False),
    Column("started", DateTime(timezone=True), nullable=False),
    Column("finished", DateTime(timezone=True)),
    Column("error", Text),
)

stages = _run_table(
    "stages",
    Column("name", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # pending, running, completed, failed, skipped
    Column("attempt", Integer, nullable=False, default=0),
    Column("fingerprint", String(80)),
    Column("inputs", JSON),  # {path: checksum}
    Column("outputs", JSON),  # {relative path: checksum}
    Column("started", DateTime(timezone=True)),
    Column("finished", DateTime(timezone=True)),
    Column("error", Text),
    UniqueConstraint("run_id", "name", name="uq_stage_run_name"),
)

products = _run_table(
    "products",
    Column("stage", String(128), nullable=False),
    Column("path", Text, nullable=False),
    Column("checksum", String(80), nullable=False),
    Column("size_bytes", Integer),
    Column("provenance", JSON, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    UniqueConstraint("run_id", "path", name="uq_product_run_path"),
)

events = _run_table(
    "events",
    Column("time", DateTime(timezone=True), nullable=False),
    Column("stage", String(128)),
    Column("event", String(32), nullable=False),
    Column("detail", JSON),
)

tasks = _run_table(
    "tasks",
    Column("pool", String(128), nullable=False),
    Column("name", String(256), nullable=False),
    Column("kind", String(16), nullable=False),  # executable, function, method
    Column("status", String(16), nullable=False),  # finished, failed, timed-out, cancelled
    Column("attempts", Integer, nullable=False, default=1),
    Column("start", Float),  # seconds since the epoch
    Column("end", Float),
    Column("elapsed", Float),  # seconds
    Column("worker", String(256)),
    Column("result", Text),  # exit status or a short repr of the return value
    Column("error", Text),
)

items = _run_table(
    "items",
    Column("stage", String(128), nullable=False),
    Column("key", String(512), nullable=False),
    Column("status", String(16), nullable=False),  # completed, failed
    Column("fingerprint", String(80)),
    Column("attempts", Integer, nullable=False, default=1),
    Column("elapsed", Float),  # seconds the item's function ran
    Column("finished", Float),  # seconds since the epoch
    Column("worker", String(256)),
    Column("outputs", JSON),  # {path relative to the run folder: manifest entry}
    Column("error", Text),
    UniqueConstraint("run_id", "stage", "key", name="uq_item_run_stage_key"),  # also the (run, stage) index
)

Index("ix_stages_run", stages.c.run_id)
Index("ix_events_run", events.c.run_id)
Index("ix_tasks_run", tasks.c.run_id)
Index("ix_runs_started", runs.c.started)
