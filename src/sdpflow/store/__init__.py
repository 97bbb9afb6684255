"""The run database: runs, stages, products, events and tasks (SQLAlchemy Core).

Knows no Dask and no science. SQLite in the user's data directory by default; PostgreSQL
(through psycopg 3) with the same schema when given a ``postgresql://`` URL.
"""

from sdpflow.store.db import RunStore, default_db_url, redact_url

__all__ = ["RunStore", "default_db_url", "redact_url"]
