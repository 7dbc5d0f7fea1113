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
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .backend import KEYS, Backend, ConnectionLostError
from .ddl import POSTGRES, quote
from .errors import DatabaseBusyError, DatabaseError, DatabaseUsageError
from .sql_typing import (
    literal,
    postgres_double,
    postgres_time,
    postgres_trimmed,
    postgres_whole,
)
from .tables import Column, KindTable
from .target import DatabaseTarget

__all__ = ["PostgresBackend"]

#: First key of every advisory lock this project takes (the second is a hash).
_LOCK_SPACE = "cc_collect_async"
_CONNECT_TIMEOUT = 10


def _psycopg() -> Any:
    """psycopg, from the ``postgres`` extra: checked before anything is fetched."""
    try:
        import psycopg
    except ImportError:
        raise DatabaseUsageError(
            "psycopg is not installed: pip install 'cc_collect_async[postgres]'"
        ) from None
    return psycopg


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(text[0].split()) if text else type(exc).__name__


def _clean_text(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL; U+FFFD marks where it was (raw keeps it escaped).
    if type(value) is str and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


#: The session's staging table: a COPY fills it, an INSERT types it into a kind's table.
_STAGE = "pg_temp.cc_stage"
_STAGE_COLUMNS = ("liveid", "roomid", "record_key", "raw", "typing")

#: Staged rows (fields separated by U+001F) read as CSV with a quote character JSON text
#: never holds raw (U+0001), so nothing is unquoted or unescaped. An empty field is NULL,
#: which only the typing copy ever is; ids and keys stay text, even empty.
_COPY_OPTIONS = (
    "(FORMAT csv, DELIMITER E'\\x1f', QUOTE E'\\x01', FORCE_NOT_NULL (liveid, roomid, record_key))"
)


def _path(column: Column, last: str = "->") -> str:
    """``column``'s field out of ``j`` (``->>``: as text): a key at a time, since a path
    array would be taken apart again for every record."""
    *outer, leaf = column.path
    return "j" + "".join(f" -> {literal(part)}" for part in outer) + f" {last} {literal(leaf)}"


def _picked(column: Column) -> str:
    """What is picked out of ``j`` for ``column``: its value for a count or JSON, else its
    text, typed by :func:`_typed`."""
    field = _path(column)
    if column.count:
        return f"CASE WHEN jsonb_typeof({field}) = 'array' THEN jsonb_array_length({field}) END"
    if column.type == "json":
        # As written (jsonb's text would be respaced, its keys reordered).
        return f"CASE WHEN jsonb_typeof({field}) <> 'null' THEN source::json{field[1:]} END"
    if column.type == "timestamptz":
        return postgres_trimmed(_path(column, "->>"))
    return _path(column, "->>")


def _typed(column: Column, text: str) -> str:
    if column.count or column.type == "json":
        return text
    if column.type == "text":
        # An object or a list as written (jsonb's text would be respaced).
        field = _path(column)
        return (
            f"CASE WHEN left({text}, 1) IN ('{{', '[') AND jsonb_typeof({field}) "
            f"IN ('object', 'array') THEN (source::json{field[1:]})::text ELSE {text} END"
        )
    if column.type == "timestamptz":
        return postgres_time(text)
    if column.type == "double":
        return postgres_double(text)
    return postgres_whole(text, column.type)


def _insert_typed(target: str, table: KindTable) -> str:
    """The staged rows into a kind's table, typed by the server (see :mod:`.sql_typing`).

    Each record is parsed once: ``source`` is its typing copy where it has one (PostgreSQL
    cannot take \\u0000 or a lone surrogate out of JSON as text, see :mod:`.staged`), else
    its text as received, and ``j`` is that as jsonb. Each field is then picked once.
    ``OFFSET 0`` keeps the planner from folding a layer into the next, which would parse
    the record again, or pick a field again, at every use."""
    names = ", ".join(quote(c.name) for c in table.columns)
    fields = ", ".join(f"{_picked(c)} AS f{i}" for i, c in enumerate(table.typed))
    typed = ", ".join(_typed(c, f"f{i}") for i, c in enumerate(table.typed))
    parsed = (
        "SELECT s.*, source, source::jsonb AS j "
        f"FROM {_STAGE} AS s, COALESCE(s.typing, s.raw) AS source OFFSET 0"
    )
    picked = f"SELECT *, {fields} FROM ({parsed}) AS p OFFSET 0"
    return (
        f"INSERT INTO {target} ({names}) SELECT liveid, roomid, record_key, {typed}, raw::json "
        f"FROM ({picked}) AS r"
    )


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
            self._stage()
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
            reason = _first_line(exc)
            if "password" in reason:  # none given, or the wrong one
                reason += "; the password goes in the URL, PGPASSWORD or ~/.pgpass"
            raise DatabaseError(f"cannot connect to {self.target.display}: {reason}") from None

    def _stage(self) -> None:
        """The session's staging table (gone with the connection)."""
        self.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE.split('.')[1]} "
            f"({', '.join(f'{name} text' for name in _STAGE_COLUMNS)})"
        )

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
        self._stage()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        with contextlib.suppress(self._psycopg.Error):
            if not connection.broken:
                # The server frees a session's locks only once it has seen the connection
                # go, a moment after close() returns: a sync started right after this one
                # (a scheduler's next account, a retry) found the account still locked.
                connection.execute("SELECT pg_advisory_unlock_all()")
        with contextlib.suppress(self._psycopg.Error):
            connection.close()  # a lock still held (a broken connection) goes with it

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

    def load(self, table: KindTable, batches: list[bytes]) -> None:
        # COPY into a temporary table, then one INSERT that types the records: the bytes
        # cross as they are, and no Python object per value is made in this thread.
        names = ", ".join(_STAGE_COLUMNS)
        with self._errors():
            cursor = self._connection.cursor()
            with cursor.copy(f"COPY {_STAGE} ({names}) FROM STDIN {_COPY_OPTIONS}") as copy:
                for rows in batches:
                    copy.write(rows)
            cursor.execute(_insert_typed(self.name(table.name), table))
            cursor.execute(f"TRUNCATE {_STAGE}")

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        rows: list[tuple[Any, ...]],
        keep: Sequence[str],
        stored: Collection[tuple[Any, ...]] | None = None,
    ) -> None:
        # The primary key's index finds the stored rows: ``stored`` saves nothing here.
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
