"""DuckDB: one embedded file, one writing process at a time.

Rows go in through Arrow tables registered with the connection (one ``INSERT ... SELECT``
per kind and group: ``executemany`` costs about a millisecond per row). DuckDB locks the
file for the process that writes it, and no reader may hold it meanwhile: a second sync
fails at once with :class:`DatabaseBusyError`. Within one process DuckDB would hand a second
connection the same database, so a process-wide registry refuses that too.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .backend import KEYS, Backend
from .ddl import _FIXED, DUCKDB, quote
from .errors import (
    DatabaseBusyError,
    DatabaseError,
    DatabaseUsageError,
    NotADatabaseError,
)
from .tables import KIND_TABLES, ColumnType, RowBuffer
from .target import DatabaseTarget

__all__ = ["DuckDBBackend"]

_OPEN: set[str] = set()
_OPEN_LOCK = threading.Lock()


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise DatabaseUsageError(
            "DuckDB is not installed: pip install 'cc_collect_async[duckdb]'"
        ) from None
    return duckdb


def _arrow_types() -> dict[ColumnType, Any]:
    import pyarrow as pa

    return {
        "text": pa.string(),
        "bigint": pa.int64(),
        "integer": pa.int32(),
        "double": pa.float64(),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "json": pa.string(),
        "boolean": pa.bool_(),
    }


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class DuckDBBackend(Backend):
    dialect = DUCKDB

    def __init__(self, target: DatabaseTarget) -> None:
        super().__init__(target)
        self.path = os.path.abspath(target.location)
        self._connection: Any = None
        self._duckdb = _duckdb()
        try:
            import pyarrow as pa
        except ImportError:
            raise DatabaseUsageError(
                "pyarrow is not installed: pip install 'cc_collect_async[duckdb]'"
            ) from None
        self._pa = pa
        self._types = _arrow_types()
        self._schemas: dict[str, Any] = {}
        self._registered = 0

    # -- connection -----------------------------------------------------------------------

    def open(self, lock_key: str) -> None:
        with _OPEN_LOCK:
            if self.path in _OPEN:
                raise DatabaseBusyError(
                    f"{self.target.display} is in use by another sync in this process"
                )
            _OPEN.add(self.path)
        try:
            self._connect()
            self.ensure_schema()
        except BaseException:
            self.close()
            raise

    def _connect(self) -> None:
        duckdb = self._duckdb
        if os.path.isdir(self.path):
            raise NotADatabaseError(f"{self.target.display} is a directory, not a DuckDB file")
        try:
            self._connection = duckdb.connect(self.path)
        except duckdb.Error as exc:
            text = _one_line(exc)
            if "lock" in text.lower():
                raise DatabaseBusyError(
                    f"{self.target.display} is in use by another sync (or a program holding it "
                    "open): DuckDB allows one writing process and no readers meanwhile; "
                    "wait for it to finish"
                ) from None
            if "not a valid DuckDB database" in text or "version number" in text:
                raise NotADatabaseError(
                    f"{self.target.display} is not a DuckDB database this DuckDB can open "
                    "(another kind of file, or a newer DuckDB's); use another --db"
                ) from None
            raise DatabaseError(f"cannot open {self.target.display}: {text}") from None

    def reconnect(self) -> None:  # pragma: no cover - an embedded database does not drop
        raise DatabaseError(f"{self.target.display}: the connection was lost")

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(self._duckdb.Error):
                connection.close()
        with _OPEN_LOCK:
            _OPEN.discard(self.path)

    # -- statements -----------------------------------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._duckdb.Error as exc:
            raise DatabaseError(f"{self.target.display}: {_one_line(exc)}") from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._errors():
            cursor = self._connection.execute(sql, list(params))
            try:
                rows: list[tuple[Any, ...]] = cursor.fetchall()
            except self._duckdb.InvalidInputError:  # a statement without a result
                rows = []
            return rows

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._errors():
            self._connection.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            with self._errors():
                self._connection.execute("ROLLBACK")
            raise
        with self._errors():
            self._connection.execute("COMMIT")

    def table_names(self) -> set[str]:
        rows = self.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            (self.schema,),
        )
        return {str(name).lower() for (name,) in rows}

    # -- bulk -----------------------------------------------------------------------------

    def _arrow_schema(self, table: str) -> Any:
        schema = self._schemas.get(table)
        if schema is None:
            pa = self._pa
            if table in _FIXED:
                columns = _FIXED[table]
            else:
                kind_table = next(t for t in KIND_TABLES.values() if t.name == table)
                columns = tuple((c.name, c.type) for c in kind_table.columns)
            schema = pa.schema([(name, self._types[type_]) for name, type_ in columns])
            self._schemas[table] = schema
        return schema

    @contextmanager
    def _registered_table(self, table: str, columns: Sequence[Sequence[Any]]) -> Iterator[str]:
        pa = self._pa
        schema = self._arrow_schema(table)
        arrays = [
            pa.array(values, type=field.type) for values, field in zip(columns, schema, strict=True)
        ]
        self._registered += 1
        name = f"cc_batch_{self._registered}"
        with self._errors():
            self._connection.register(name, pa.Table.from_arrays(arrays, schema=schema))
        try:
            yield name
        finally:
            with self._errors():
                self._connection.unregister(name)

    def load(self, table: str, buffer: RowBuffer) -> None:
        with self._registered_table(table, buffer.columns) as batch:
            self.execute(f"INSERT INTO {self.name(table)} SELECT * FROM {quote(batch)}")

    def upsert(
        self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]], keep: Sequence[str]
    ) -> None:
        names = ", ".join(quote(c) for c in columns)
        key = KEYS[table]
        with self._registered_table(table, list(zip(*rows, strict=True))) as batch:
            self.execute(
                f"INSERT INTO {self.name(table)} ({names}) SELECT {names} FROM {quote(batch)} "
                f"ON CONFLICT ({', '.join(quote(k) for k in key)}) DO UPDATE SET "
                + self.update_clause(columns, key, keep)
            )

    def delete_lives(self, table: str, liveids: list[str]) -> None:
        pa = self._pa
        self._registered += 1
        name = f"cc_ids_{self._registered}"
        with self._errors():
            self._connection.register(name, pa.table({"liveid": pa.array(liveids, pa.string())}))
        try:
            self.execute(
                f"DELETE FROM {self.name(table)} WHERE liveid IN (SELECT liveid FROM {quote(name)})"
            )
        finally:
            with self._errors():
                self._connection.unregister(name)
