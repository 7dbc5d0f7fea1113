"""PostgreSQL through psycopg 3: COPY for rows, an advisory lock per account and schema.

The lock (``pg_try_advisory_lock``, held by the session) keeps two syncs of one account
into one schema from interleaving, while syncs of other accounts (other machines, one
database) run side by side. Schema changes take a transaction-level lock of their own, so
two first syncs cannot race each other creating the tables.

psycopg's async API needs asyncio, and this library promises trio too: the blocking API is
used from a worker thread instead. A connection that breaks during a transaction raises
:class:`~cc_collect_async.database.backend.ConnectionLostError`; the caller reconnects and
runs the same transaction again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .arrow_rows import rows_batch
from .backend import KEYS, Backend, ConnectionLostError
from .ddl import POSTGRES, quote
from .errors import DatabaseBusyError, DatabaseError, DatabaseUsageError
from .tables import KindTable
from .target import DatabaseTarget

__all__ = ["PostgresBackend"]

#: First key of every advisory lock this project takes (the second is a hash).
_LOCK_SPACE = "cc_collect_async"
_CONNECT_TIMEOUT = 10


def _psycopg() -> Any:
    """psycopg, and pyarrow that types the rows: both from the ``postgres`` extra, checked
    before anything is fetched."""
    try:
        import psycopg
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise DatabaseUsageError(
            f"{exc.name} is not installed: pip install 'cc_collect_async[postgres]'"
        ) from None
    return psycopg


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(text[0].split()) if text else type(exc).__name__


def _csv_options() -> Any:
    try:
        import pyarrow.csv as csv
    except ImportError:  # refused when a backend is made (_psycopg)
        return None
    # Quoting every value tells an empty string ("") from NULL (nothing) in PostgreSQL's CSV.
    return csv.WriteOptions(include_header=False, quoting_style="all_valid")


_CSV = _csv_options()


def _clean_text(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL; U+FFFD marks where it was (raw keeps it escaped).
    if type(value) is str and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


class PostgresBackend(Backend):
    dialect = POSTGRES

    def __init__(self, target: DatabaseTarget) -> None:
        super().__init__(target)
        self._psycopg = _psycopg()
        self._connection: Any = None
        self._lock_key = ""

    # -- connection -----------------------------------------------------------------------

    def open(self, lock_key: str) -> None:
        self._lock_key = lock_key
        try:
            self._connect()
            self._lock()
            self.ensure_schema()
        except BaseException:
            self.close()
            raise

    def _connect(self) -> None:
        psycopg = self._psycopg
        try:
            self._connection = psycopg.connect(
                self.target.location,
                autocommit=True,
                connect_timeout=_CONNECT_TIMEOUT,
                application_name="cc-collect sync",
            )
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot connect to {self.target.display}: {_first_line(exc)}"
            ) from None

    def _lock(self) -> None:
        got = self.execute(
            "SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))",
            (f"{_LOCK_SPACE}:{self.schema}", self._lock_key),
        )
        if not got or not got[0][0]:
            raise DatabaseBusyError(
                f"{self.target.display} is in use by another sync of account "
                f"{self._lock_key}; wait for it to finish"
            )

    def lock_schema_changes(self) -> None:
        self.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s), 0)", (f"{_LOCK_SPACE}:{self.schema}",)
        )

    def reconnect(self) -> None:
        self.close()
        self._connect()
        self._lock()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(self._psycopg.Error):
                connection.close()  # the session's advisory lock goes with it

    # -- statements -----------------------------------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        psycopg = self._psycopg
        try:
            yield
        except psycopg.Error as exc:
            connection = self._connection
            if connection is None or connection.broken or connection.closed:
                raise ConnectionLostError(_first_line(exc)) from None
            if isinstance(exc, psycopg.errors.InsufficientPrivilege):
                raise DatabaseError(
                    f"{self.target.display}: permission denied: {_first_line(exc)}"
                ) from None
            raise DatabaseError(f"{self.target.display}: {_first_line(exc)}") from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._errors():
            cursor = self._connection.execute(sql, list(params) if params else None)
            if cursor.description is None:
                return []
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            return rows

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._errors(), self._connection.transaction():
            yield

    def table_names(self) -> set[str]:
        rows = self.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (self.schema,),
        )
        return {str(name).lower() for (name,) in rows}

    # -- bulk -----------------------------------------------------------------------------

    def load(self, table: KindTable, batches: list[Any]) -> None:
        # CSV written by Arrow's C++ writer (the GIL released), not row by row in Python:
        # this thread must leave the event loop's thread alone.
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as csv

        rows = pa.Table.from_batches([rows_batch(table, batches)])
        for position, column in enumerate(table.columns):
            if column.type == "text":
                # PostgreSQL text cannot hold NUL; U+FFFD marks where it was.
                cleaned = pc.replace_substring(rows.column(position), "\x00", "\ufffd")
                rows = rows.set_column(position, column.name, cleaned)
        sink = pa.BufferOutputStream()
        csv.write_csv(rows, sink, _CSV)
        names = ", ".join(quote(c.name) for c in table.columns)
        with self._errors():
            cursor = self._connection.cursor()
            statement = f"COPY {self.name(table.name)} ({names}) FROM STDIN WITH (FORMAT csv)"
            with cursor.copy(statement) as copy:
                copy.write(sink.getvalue().to_pybytes())

    def upsert(
        self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]], keep: Sequence[str]
    ) -> None:
        names = ", ".join(quote(c) for c in columns)
        key = KEYS[table]
        values = self.dialect.params(len(columns))
        sql = (
            f"INSERT INTO {self.name(table)} ({names}) VALUES ({values}) "
            f"ON CONFLICT ({', '.join(quote(k) for k in key)}) DO UPDATE SET "
            + self.update_clause(columns, key, keep)
        )
        with self._errors():
            self._connection.cursor().executemany(
                sql, [[_clean_text(v) for v in row] for row in rows]
            )
