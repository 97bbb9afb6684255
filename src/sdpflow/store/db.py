"""Open, create and write the run database.

One :class:`RunStore` per process. SQLite gets WAL journaling, a busy timeout and
``BEGIN IMMEDIATE`` transactions so that many writer processes queue instead of failing;
PostgreSQL gets ordinary transactions. Every write is one short transaction.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import MetaData, Table, bindparam, create_engine, delete, event, func, insert, inspect, select, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError, ProgrammingError

from sdpflow.errors import InputError, RunNotFound, StoreError
from sdpflow.provenance import config_hash, current_user, sdpflow_version
from sdpflow.store.secrets import redact_secrets
from sdpflow.store import schema
from sdpflow.store.results import TABLE_PREFIX, ResultTable
from sdpflow.store.schema import SCHEMA_VERSION
from sdpflow.store.urls import default_db_url, normalise_url, redact_url

#: Seconds a SQLite writer waits for the lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 60.0


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def new_run_id(pipeline: str) -> str:
    """A sortable, readable run id: ``20261121-054700-ical-3f9a``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{pipeline}-{secrets.token_hex(2)}"


class RunStore:
    """The run database at ``url`` (default: :func:`default_db_url`), created if missing."""

    def __init__(self, url: str | None = None):
        self.url = normalise_url(url or default_db_url())
        self.redacted_url = redact_url(self.url)
        self.engine = self._create_engine()
        self._created_results: set[str] = set()
        self._create_schema()

    def __reduce__(self):  # a store sent to another process reconnects there
        return (RunStore, (self.url,))

    # -- connection -------------------------------------------------------------------
    def _create_engine(self) -> Engine:
        try:
            parsed = make_url(self.url)
            backend = parsed.get_backend_name()
        except ArgumentError:
            backend = None
        if backend not in ("sqlite", "postgresql"):
            raise InputError(f"run database URL {self.redacted_url!r} is not valid: use sqlite:///PATH or "
                             "postgresql://USER@HOST/DATABASE") from None
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                try:
                    Path(database).parent.mkdir(parents=True, exist_ok=True)
                    # readable by its owner only: it holds configurations, paths and errors (SQLite
                    # gives its -wal and -shm files the same mode)
                    os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
                except OSError as error:
                    raise StoreError(f"cannot create run database {database}: {error.strerror}") from None
            engine = create_engine(self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

            @event.listens_for(engine, "connect")
            def _sqlite_connect(dbapi_connection, _record):
                dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _sqlite_begin(connection):
                # Take the write lock at the start, so concurrent writers wait (busy timeout)
                # instead of failing when a read transaction tries to upgrade.
                connection.exec_driver_sql("BEGIN IMMEDIATE")

            return engine
        try:
            return create_engine(self.url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        except (ModuleNotFoundError, ImportError) as error:
            raise StoreError(f"no driver for run database {self.redacted_url}: {error}") from None

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as connection:
                yield connection
        except (OperationalError, ProgrammingError) as error:
            if isinstance(error, ProgrammingError) and "does not exist" not in str(error.orig):
                raise
            raise StoreError(
                f"run database {self.redacted_url} cannot be used: {_first_line(error.orig)}; "
                "check --db / SDPFLOW_DB and that the server is running"
            ) from None

    def _create_schema(self) -> None:
        for attempt in range(5):
            try:
                with self._transaction() as connection:
                    schema.metadata.create_all(connection)
                    found = connection.execute(
                        select(schema.schema_info.c.value).where(schema.schema_info.c.key == "schema_version")
                    ).scalar_one_or_none()
                    if found is None:
                        connection.execute(insert(schema.schema_info).values(key="schema_version", value=str(SCHEMA_VERSION)))
                    elif int(found) < SCHEMA_VERSION:
                        _upgrade(connection, int(found))
                    elif int(found) > SCHEMA_VERSION:
                        raise StoreError(
                            f"run database {self.redacted_url} has schema version {found}, newer than this "
                            f"sdpflow's {SCHEMA_VERSION}: upgrade sdpflow or use another --db"
                        )
                return
            except (IntegrityError, ProgrammingError, DBAPIError) as error:
                # Another process created the tables at the same moment: look again.
                if attempt == 4:
                    raise StoreError(f"cannot create the schema in {self.redacted_url}: {_first_line(error)}") from None
                time.sleep(0.2 * (attempt + 1))

    def schema_version(self) -> int:
        with self._transaction() as connection:
            return int(
                connection.execute(
                    select(schema.schema_info.c.value).where(schema.schema_info.c.key == "schema_version")
                ).scalar_one()
            )

    # -- runs ---------------------------------------------------------------------------
    def create_run(self, pipeline: str, config: dict[str, Any], out_dir: str | Path, cluster: str | None = None,
                   *, name: str | None = None) -> str:
        """Record a new run as running; returns its id, which embeds ``name`` (default: ``pipeline``).

        ``pipeline`` is the reference a resume looks the pipeline up by (a name or ``module:ATTRIBUTE``).
        Values named like secrets are stored redacted (:mod:`sdpflow.store.secrets`).
        """
        run_id = new_run_id(name or pipeline)
        config = redact_secrets(config)
        with self._transaction() as connection:
            connection.execute(
                insert(schema.runs).values(
                    id=run_id,
                    pipeline=pipeline,
                    config=config,
                    config_hash=config_hash(config),
                    out_dir=str(Path(out_dir).resolve()),
                    status="running",
                    host=socket.gethostname(),
                    user=current_user(),
                    pid=os.getpid(),
                    cluster=cluster,
                    sdpflow_version=sdpflow_version(),
                    started=utc_now(),
                )
            )
        return run_id

    def mark_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """Set a run's status; ``running`` clears the finish time, others set it."""
        values: dict[str, Any] = {"status": status, "error": error}
        if status == "running":
            values.update(finished=None, pid=os.getpid(), host=socket.gethostname())
        else:
            values["finished"] = utc_now()
        with self._transaction() as connection:
            connection.execute(update(schema.runs).where(schema.runs.c.id == run_id).values(**values))

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run; a unique prefix of its id is enough."""
        with self._transaction() as connection:
            row = connection.execute(select(schema.runs).where(schema.runs.c.id == run_id)).mappings().first()
            if row is None:
                rows = (
                    connection.execute(select(schema.runs).where(schema.runs.c.id.startswith(run_id, autoescape=True)))
                    .mappings()
                    .all()
                )
                if len(rows) == 1:
                    row = rows[0]
                elif len(rows) > 1:
                    raise RunNotFound(f"run id {run_id!r} is ambiguous ({len(rows)} runs start with it): give more of it")
        if row is None:
            raise RunNotFound(f"no run {run_id!r} in {self.redacted_url}: see `sdpflow runs list`")
        return dict(row)

    def list_runs(self, limit: int = 20, pipeline: str | None = None) -> list[dict[str, Any]]:
        """The most recent runs first."""
        query = select(schema.runs).order_by(schema.runs.c.started.desc()).limit(limit)
        if pipeline:
            query = query.where(schema.runs.c.pipeline == pipeline)
        with self._transaction() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    # -- stages -------------------------------------------------------------------------
    def set_stage(self, run_id: str, name: str, **values: Any) -> None:
        """Create or update the record of one stage of a run."""
        with self._transaction() as connection:
            changed = connection.execute(
                update(schema.stages)
                .where(schema.stages.c.run_id == run_id, schema.stages.c.name == name)
                .values(**values)
            ).rowcount
            if not changed:
                connection.execute(insert(schema.stages).values(run_id=run_id, name=name, **{"attempt": 0, **values}))

    def mark_running_stages(self, run_id: str, status: str) -> None:
        """Give every stage of a run still recorded as running the status ``status`` (e.g. interrupted)."""
        with self._transaction() as connection:
            connection.execute(update(schema.stages)
                               .where(schema.stages.c.run_id == run_id, schema.stages.c.status == "running")
                               .values(status=status, finished=utc_now()))

    def get_stages(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The stage records of a run, by stage name."""
        with self._transaction() as connection:
            rows = connection.execute(
                select(schema.stages).where(schema.stages.c.run_id == run_id).order_by(schema.stages.c.id)
            ).mappings()
            return {row["name"]: dict(row) for row in rows}

    # -- products, events, tasks ----------------------------------------------------------
    def record_product(
        self, run_id: str, stage: str, path: str, checksum: str, size_bytes: int | None, provenance: dict[str, Any]
    ) -> None:
        """Record (or replace) a product of a run with its checksum and provenance."""
        with self._transaction() as connection:
            connection.execute(
                schema.products.delete().where(schema.products.c.run_id == run_id, schema.products.c.path == path)
            )
            connection.execute(
                insert(schema.products).values(
                    run_id=run_id, stage=stage, path=path, checksum=checksum, size_bytes=size_bytes,
                    provenance=provenance, created=utc_now(),
                )
            )

    def get_products(self, run_id: str) -> list[dict[str, Any]]:
        """The products of a run, in the order they were recorded."""
        return self._rows_of_run(schema.products, run_id)

    def add_event(self, run_id: str, event_name: str, stage: str | None = None, detail: dict[str, Any] | None = None) -> None:
        """Record one event of a run."""
        self.add_events(run_id, [{"event": event_name, "stage": stage, "detail": detail}])

    def add_events(self, run_id: str, records: list[dict[str, Any]]) -> None:
        """Record several events of a run in one transaction."""
        if not records:
            return
        now = utc_now()
        rows = [
            {"run_id": run_id, "time": record.get("time") or now, "stage": record.get("stage"),
             "event": record["event"], "detail": record.get("detail")}
            for record in records
        ]
        with self._transaction() as connection:
            connection.execute(insert(schema.events), rows)

    def get_events(self, run_id: str) -> list[dict[str, Any]]:
        """The events of a run, in the order they were recorded."""
        return self._rows_of_run(schema.events, run_id)

    def add_tasks(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Record the outcome of task-pool tasks (see ``schema.tasks`` for the columns), in one transaction."""
        if rows:
            with self._transaction() as connection:
                connection.execute(insert(schema.tasks), [{"run_id": run_id, **row} for row in rows])

    def get_tasks(self, run_id: str) -> list[dict[str, Any]]:
        """The tasks of a run, in the order they were recorded."""
        return self._rows_of_run(schema.tasks, run_id)

    def _rows_of_run(self, table, run_id: str) -> list[dict[str, Any]]:
        with self._transaction() as connection:
            query = select(table).where(table.c.run_id == run_id).order_by(table.c.id)
            return [dict(row) for row in connection.execute(query).mappings()]

    def count(self, table: str, run_id: str) -> int:
        """How many rows of ``table`` belong to a run."""
        target = schema.metadata.tables[table]
        with self._transaction() as connection:
            return connection.execute(select(func.count()).select_from(target).where(target.c.run_id == run_id)).scalar_one()

    # -- items of fan-out stages and their result rows -------------------------------------
    def record_items(self, run_id: str, stage: str, outcomes: list[dict[str, Any]],
                     table: ResultTable | None = None) -> None:
        """Record a batch of item outcomes, and the result rows of the completed ones, in one transaction.

        Each outcome has ``key``, ``status``, ``fingerprint``, ``attempts``, ``elapsed``,
        ``finished``, ``worker``, ``outputs``, ``error`` and, when completed, ``rows`` (a list
        of dicts for ``table``). Writing an item again replaces its record and its rows.
        """
        if not outcomes:
            return
        records = [{"run_id": run_id, "stage": stage, **{name: outcome.get(name) for name in _ITEM_COLUMNS}}
                   for outcome in outcomes]
        for record in records:
            record["outputs"] = _json_text(record["outputs"])
        result_rows: list[dict[str, Any]] = []
        replaced: list[str] = []
        if table is not None:
            for outcome in outcomes:
                if outcome["status"] == "completed":
                    replaced.append(outcome["key"])
                    result_rows += table.rows_for(run_id, stage, outcome["key"], outcome.get("rows") or ())
            for row in result_rows:
                row["extra"] = _json_text(row["extra"])
        with self._transaction() as connection:
            _executemany(connection, self._upsert_items(connection), records)
            if table is not None and replaced:
                target = self._result_table(connection, table)
                for start in range(0, len(replaced), 500):
                    connection.execute(delete(target).where(target.c.run_id == run_id,
                                                            target.c.item.in_(replaced[start:start + 500])))
                if result_rows:
                    _executemany(connection, insert(target).values({name: bindparam(name) for name in result_rows[0]}),
                                 result_rows)

    def _upsert_items(self, connection: Connection):
        dialect = connection.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            raise StoreError(f"run database {self.redacted_url}: item records need SQLite or PostgreSQL, not {dialect}")
        names = ("run_id", "stage", *_ITEM_COLUMNS)
        statement = dialect_insert(schema.items).values({name: bindparam(name) for name in names})
        return statement.on_conflict_do_update(
            index_elements=["run_id", "stage", "key"],
            set_={name: statement.excluded[name] for name in _ITEM_COLUMNS if name != "key"},
        )

    def _result_table(self, connection: Connection, table: ResultTable) -> Table:
        target = table.table()
        if target.name not in self._created_results:
            target.create(connection, checkfirst=True)
            self._created_results.add(target.name)
        return target

    def item_records(self, run_id: str, stage: str, status: str | None = None) -> dict[str, dict[str, Any]]:
        """The item records of one stage of a run, by item key (only those with ``status`` when given)."""
        columns = [schema.items.c[name] for name in _ITEM_COLUMNS]
        query = select(*columns).where(schema.items.c.run_id == run_id, schema.items.c.stage == stage)
        if status is not None:
            query = query.where(schema.items.c.status == status)
        with self._transaction() as connection:
            return {row["key"]: dict(row) for row in connection.execute(query).mappings()}

    def item_states(self, run_id: str, stage: str) -> dict[str, tuple[str, str | None, dict[str, Any] | None]]:
        """{item key: (status, fingerprint, outputs)} of one stage of a run: what a resume compares."""
        items = schema.items.c
        query = select(items.key, items.status, items.fingerprint, items.outputs).where(
            items.run_id == run_id, items.stage == stage)
        with self._transaction() as connection:
            return {key: (status, fingerprint, outputs) for key, status, fingerprint, outputs in connection.execute(query)}

    def item_counts(self, run_id: str) -> dict[str, dict[str, int]]:
        """How many items of each stage of a run are completed, failed...: {stage: {status: count}}."""
        query = (select(schema.items.c.stage, schema.items.c.status, func.count())
                 .where(schema.items.c.run_id == run_id).group_by(schema.items.c.stage, schema.items.c.status))
        counts: dict[str, dict[str, int]] = {}
        with self._transaction() as connection:
            for stage, status, count in connection.execute(query):
                counts.setdefault(stage, {})[status] = count
        return counts

    def result_tables(self) -> list[str]:
        """The names of the result tables this database holds."""
        with self._transaction() as connection:
            names = inspect(connection).get_table_names()
        return sorted(name[len(TABLE_PREFIX):] for name in names if name.startswith(TABLE_PREFIX))

    def result_rows(self, run_id: str, name: str) -> list[dict[str, Any]]:
        """The rows of result table ``name`` that belong to a run, by item and row number."""
        if name not in self.result_tables():
            known = ", ".join(self.result_tables()) or "none yet"
            raise RunNotFound(f"no result table {name!r} in {self.redacted_url} (tables: {known})")
        with self._transaction() as connection:
            target = Table(TABLE_PREFIX + name, MetaData(), autoload_with=connection)
            query = (select(*(column for column in target.columns if column.name not in ("id", "run_id")))
                     .where(target.c.run_id == run_id).order_by(target.c.item, target.c.row))
            return [dict(row) for row in connection.execute(query).mappings()]

    def dispose(self) -> None:
        self.engine.dispose()


#: The columns of an item record that a fan-out stage writes.
_ITEM_COLUMNS = ("key", "status", "fingerprint", "attempts", "elapsed", "finished", "worker", "outputs", "error")


def _json_text(value: Any) -> str | None:
    """A JSON column's value serialised once here (bulk writes pass text to the driver)."""
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _executemany(connection: Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
    """Execute ``statement`` once per row through the driver's executemany.

    Passing the rows through SQLAlchemy's per-row parameter processing cost ~50 µs a row;
    JSON columns are serialised by the caller (:func:`_json_text`).
    """
    compiled = statement.compile(dialect=connection.dialect)
    if compiled.positiontup:
        parameters: list[Any] = [tuple(row[name] for name in compiled.positiontup) for row in rows]
    else:
        parameters = rows
    connection.exec_driver_sql(compiled.string, parameters)


def _upgrade(connection: Connection, found: int) -> None:
    """Bring a database of schema version ``found`` up to :data:`SCHEMA_VERSION`.

    Version 2 only added tables, which ``create_all`` has just created; a step that changes
    existing tables goes here, one ``if found < N`` block per version.
    """
    connection.execute(update(schema.schema_info).where(schema.schema_info.c.key == "schema_version")
                       .values(value=str(SCHEMA_VERSION)))


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
