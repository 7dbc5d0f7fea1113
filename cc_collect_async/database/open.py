"""Opening the database a sync names: the backend for its dialect, connected, locked and
with its schema checked, before anything is fetched."""

from __future__ import annotations

from .backend import Backend
from .target import DatabaseTarget

__all__ = ["open_backend"]


def open_backend(target: DatabaseTarget, account: str) -> Backend:
    """Blocking: run it in a worker thread. Raises the database errors."""
    backend: Backend
    if target.dialect == "duckdb":
        from .duckdb_backend import DuckDBBackend

        backend = DuckDBBackend(target)
    else:
        from .postgres_backend import PostgresBackend

        backend = PostgresBackend(target)
    backend.open(account)
    return backend
