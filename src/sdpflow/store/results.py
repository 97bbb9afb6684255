"""Result tables: science rows (per component, per tile...) kept in the run database.

A pipeline declares a :class:`ResultTable` with typed columns; rows come back from its
fan-out stages' items and the driver writes them in bulk. Each row belongs to one item of
one run: ``(run_id, item, row)`` is unique, so writing an item's rows again replaces them
(an idempotent upsert, whatever crashed in between). Values of keys that are not declared
columns go into the ``extra`` JSON column (JSONB on PostgreSQL).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from sqlalchemy import JSON, Boolean, Column, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

from sdpflow.store.schema import runs

#: Physical tables are named ``result_<name>``.
TABLE_PREFIX = "result_"

_TYPES = {int: Integer, float: Float, str: Text, bool: Boolean}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_RESERVED = {"id", "run_id", "stage", "item", "row", "extra"}

#: Result tables live apart from the core schema: each is created when a run first writes it.
results_metadata = MetaData()


@dataclass(frozen=True)
class ResultTable:
    """A result table: ``columns`` maps column names to ``int``, ``float``, ``str`` or ``bool``.

    ``indexed`` names the columns queries filter on (an index each). Units belong in the
    column names or the pipeline's documentation (``rm_radm2``, ``flux_jy``).
    """

    name: str
    columns: dict[str, type] = field(default_factory=dict)
    indexed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"result table name {self.name!r}: use lower-case letters, digits and _")
        for column, kind in self.columns.items():
            if not _NAME.match(column) or column in _RESERVED:
                raise ValueError(f"result table {self.name}: column name {column!r} is not allowed")
            if kind not in _TYPES:
                raise ValueError(f"result table {self.name}: column {column} has type {kind!r}; use int, float, str or bool")
        unknown = set(self.indexed) - set(self.columns)
        if unknown:
            raise ValueError(f"result table {self.name}: indexed columns {sorted(unknown)} are not declared")

    @property
    def table_name(self) -> str:
        return TABLE_PREFIX + self.name

    def table(self) -> Table:
        """The SQLAlchemy table (one per name and process)."""
        existing = results_metadata.tables.get(self.table_name)
        if existing is not None:
            declared = {column.name for column in existing.columns} - _RESERVED
            if declared != set(self.columns):
                raise ValueError(f"result table {self.name} is declared twice with different columns")
            return existing
        table = Table(
            self.table_name,
            results_metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("run_id", String(64), ForeignKey(runs.c.id, ondelete="CASCADE"), nullable=False),
            Column("stage", String(128), nullable=False),
            Column("item", String(512), nullable=False),
            Column("row", Integer, nullable=False),
            *(Column(name, _TYPES[kind]) for name, kind in self.columns.items()),
            Column("extra", JSON().with_variant(JSONB(), "postgresql")),
        )
        Index(f"uq_{self.table_name}_item", table.c.run_id, table.c.item, table.c.row, unique=True)
        for name in self.indexed:
            Index(f"ix_{self.table_name}_{name}", table.c.run_id, table.c[name])
        return table

    def rows_for(self, run_id: str, stage: str, item: str, values: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Database rows for one item's result rows: declared columns typed, the rest in ``extra``."""
        rows = []
        for number, value in enumerate(values):
            row = {"run_id": run_id, "stage": stage, "item": item, "row": number}
            extra = {}
            for name, datum in value.items():
                if name in self.columns:
                    row[name] = _cell(datum, self.columns[name])
                else:
                    extra[name] = _json_safe(datum)
            for name in self.columns:
                row.setdefault(name, None)
            row["extra"] = extra or None
            rows.append(row)
        return rows


def _cell(value: Any, kind: type) -> Any:
    """A value converted to its column's type; NaN and infinities are stored as NULL."""
    if value is None:
        return None
    if kind is float:
        value = float(value)
        return value if math.isfinite(value) else None
    return kind(value)


def _json_safe(value: Any) -> Any:
    """Numpy scalars and arrays as plain JSON values; non-finite floats as null."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    return value
