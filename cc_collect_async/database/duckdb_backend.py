"""DuckDB: one embedded file, one writing process at a time.

Rows go in through a staged file DuckDB reads itself (one ``INSERT ... SELECT`` per kind
and group, the JSON typed in SQL: ``executemany`` costs about a millisecond per row).
DuckDB locks the file for the process that writes it, and no reader may hold it meanwhile:
a second sync fails at once with :class:`DatabaseBusyError`. Within one process DuckDB would
hand a second connection the same database, so a process-wide registry refuses that too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import attrs

from ..json_codec import dumps
from .backend import KEYS, Backend, Group
from .ddl import COLUMN_TYPES, COLUMNS, DUCKDB, HISTORY, quote
from .errors import (
    DatabaseBusyError,
    DatabaseError,
    DatabaseUsageError,
    NotADatabaseError,
)
from .sql_typing import duckdb_double, duckdb_time, duckdb_trimmed, duckdb_whole
from .staged import in_parts
from .tables import Column, ColumnType, KindTable
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


def _document(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows as one JSON text, an object per row: the parameter :func:`_rows_of` reads.

    DuckDB before 2.0 takes about 56 us to convert each element of a Python list parameter
    (0.7 ms for a unit's row of 12 values, holding the GIL: on DuckDB 1.4 a sync ran at 0.41
    of harvest's pace). A JSON text it parses in its own code, once per row, typing each
    field as it goes: 1,000 rows of lives in 2-6 ms within 4 MB, on DuckDB 1.1 to 2.0."""
    objects = [dict(zip(columns, row, strict=True)) for row in rows]
    for row in objects:
        for column, value in row.items():
            if isinstance(value, datetime):
                row[column] = value.isoformat()
    return dumps(objects).decode()


def _rows_of(types: dict[str, ColumnType], columns: Sequence[str]) -> str:
    """A SELECT of the rows of one :func:`_document` parameter, as ``columns``, typed. A JSON
    column is read as the text it holds (typed as JSON, DuckDB would parse it again and
    needed 16 MB for 1,000 lives); the insert checks it."""
    structure = {c: "VARCHAR" if types[c] == "json" else DUCKDB.types[types[c]] for c in columns}
    text = dumps([structure]).decode().replace("'", "''")
    return f"SELECT r.* FROM (SELECT unnest(from_json(?::JSON, '{text}')) AS r)"


_STAGED_COLUMNS = (
    "{'liveid': 'VARCHAR', 'roomid': 'VARCHAR', 'record_key': 'VARCHAR', 'raw': 'VARCHAR'}"
)

#: Staged bytes one INSERT reads at most. DuckDB types rows 2,048 at a time, and parsing
#: them takes up to about 18 times their bytes: a group of 5,000 votes with their replies
#: (7 MB staged) needed 50 MB in statements of 4 MB, of brainstorms 75 MB; 12.5 MB in
#: statements of 512 KB. Chat needed 13 and 9 MB; a million records take 3-6% more CPU.
_LOAD_BYTES = 512 << 10


def _read_staged(path: str, size: int) -> str:
    """The staged file of ``size`` bytes as a table. Its buffer and longest line are sized
    to the file: DuckDB's own (a 2 MB line, a buffer of 16 lines on DuckDB 1.2-1.4) refused a
    record over 2 MB and, on those versions, every load under the sync's memory limit."""
    quoted = path.replace("'", "''")
    size = max(size, 1 << 20)
    return (
        f"read_csv('{quoted}', delim='\x1f', quote='', escape='', header=false, "
        f"auto_detect=false, columns={_STAGED_COLUMNS}, buffer_size={size}, "
        f"max_line_size={size})"
    )


def _structure(table: KindTable) -> str:
    """The ``json_transform`` structure that reads every typed field of a record in one
    parse: text where DuckDB casts it, JSON where the column is JSON or a list's length."""
    tree: dict[str, Any] = {}
    for column in table.typed:
        *outer, leaf = column.path
        node = tree
        for part in outer:
            node = node.setdefault(part, {})
        node[leaf] = "JSON" if column.type == "json" or column.count else "VARCHAR"
    return json.dumps(tree)


def _typed_expression(column: Column) -> str:
    value = "j." + ".".join(quote(part) for part in column.path)
    if column.count:
        return f"CAST(json_array_length({value}) AS INTEGER)"
    if column.type == "timestamptz":
        return duckdb_time(duckdb_trimmed(value))
    if column.type in ("text", "json"):
        return value
    if column.type == "double":
        return duckdb_double(value)
    return duckdb_whole(value, column.type)


def _insert_typed(target: str, table: KindTable, source: str) -> str:
    """INSERT the staged rows into a kind's table, typing the fields in SQL: one JSON parse
    per record, vectorised, in this thread's C++ (which leaves the event loop alone)."""
    typed = ", ".join(_typed_expression(column) for column in table.typed)
    structure = _structure(table).replace("'", "''")
    return (
        f"INSERT INTO {target} SELECT liveid, roomid, record_key, {typed}, raw "
        f"FROM (SELECT *, json_transform(raw, '{structure}') AS j FROM {source})"
    )


#: DuckDB's memory at the start of a sync (see _config), and what one statement gets per
#: staged byte where that needs more: a statement of one record of 2 MB needed 32 MB, of
#: 20 MB 256 MB, of 4 MB of brainstorms 75 MB (see _LOAD_BYTES).
_MEMORY_BYTES = 16_000_000
_MEMORY_PER_STAGED_BYTE = 24

#: The most DuckDB's memory is raised to for a group or a lookup that keeps running out of
#: it (see DuckDBBackend.commit): four doublings of the start.
_MEMORY_CEILING = 16 * _MEMORY_BYTES


#: How DuckDB words running out of its memory: an ``OutOfMemoryException``, or at COMMIT a
#: ``TransactionException`` ("Failed to commit: could not allocate block ...").
_OUT_OF_MEMORY = ("out of memory", "could not allocate", "failed to allocate", "failed to pin")


class _OutOfMemoryError(DatabaseError):
    """DuckDB ran out of the memory it is allowed for a statement or a commit."""


def _config() -> dict[str, Any]:
    """DuckDB's own memory kept small (it would take 80% of RAM for its cache) and one
    thread: a sync's database work is small steps, and the other core fetches. Measured
    (benchmarks/sync_memory.py): a million records' peak RSS 254 MB with DuckDB's defaults,
    151-154 MB with 24 MB here, 147-149 MB with 16 MB. At 16 MB a sync now and then runs out
    (in an earlier round, one run of two of the million; at 12 MB every run): the group that
    did runs again with more (DuckDBBackend.commit).

    Join filter pushdown is off: for a semi join against a short list (``liveid IN (SELECT
    unnest(?))``, and the deletes of stored rows) and for ``ON CONFLICT`` it reserved about
    6 MiB per statement (on a replay of a sync's statements: 12-16 MB needed with it, 2-4 MB
    without), a peak on top of the cache. The lists are a group's lives: there was nothing
    for it to prune.

    Checkpoints stay at DuckDB's default (every 16 MB of write-ahead log). With DuckDB's
    default row groups (before _ROW_GROUP_ROWS), after 64 MB a million records cost 10-15%
    less CPU (each checkpoint rewrites the last, partly filled row groups), but more memory
    is pinned between checkpoints: at a 16 MB limit a sync of 185,765 records then ran out
    of memory where 16 MB of log did not."""
    return {
        "memory_limit": f"{_MEMORY_BYTES}B",
        "threads": 1,
        "preserve_insertion_order": False,
        "disabled_optimizers": "join_filter_pushdown",
    }


def _release(text: str) -> tuple[int, int]:
    match = re.match(r"v?(\d+)\.(\d+)", text.strip())
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _zstd_for_json(connection: Any, library_version: str) -> bool:
    """Whether this file's JSON columns can be stored with zstd. A record's JSON is most of
    a sync's bytes, and DuckDB's default for text (dictionary and FSST, chosen by trying
    each at every checkpoint) cost more CPU for a larger file: the statements of a sync of
    185,765 records took 2.18 s and left 43 MB, with zstd 1.85 s and 25.5 MB. zstd needs
    DuckDB 1.4 (1.3 refuses it for JSON) and a storage format of 1.2 or later: a column asked
    for zstd in an older format (what DuckDB 1.4 writes unless told otherwise) is stored
    uncompressed."""
    if _release(library_version) < (1, 4):
        return False
    rows = connection.execute(
        "SELECT tags FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()
    tags = rows[0][0] if rows and isinstance(rows[0][0], dict) else {}
    return _release(str(tags.get("storage_version", ""))) >= (1, 2)


#: The name the file is attached under (the connection's own database is in memory).
_ATTACHED = "cc_sync_file"

#: What DuckDB says when the file is in use: another process's lock; this process's own
#: connection to it (ATTACH, DuckDB 1.4 and later; connect, with other settings, before).
_IN_USE = ("lock", "already attached", "different configuration")

#: Rows per row group of the tables this sync writes (DuckDB's default: 122,880). Every
#: checkpoint rewrites each table's last, partly filled row group, so with DuckDB's default a
#: sync's checkpoints kept re-compressing up to 122,880 rows of every table: a million
#: records' sync took 34-36 s of CPU, at 8,192 rows 20 s (benchmarks/README.md). Queries
#: over a million rows ran within 5% of their time. Set from DuckDB 1.4 on (see _open_file).
_ROW_GROUP_ROWS = 8_192

#: Rows of one upsert statement (see DuckDBBackend.upsert): 1,000 lives run within 4 MB.
_UPSERT_ROWS = 1_000


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class DuckDBBackend(Backend):
    dialect = DUCKDB
    exact_json = False

    def __init__(self, target: DatabaseTarget) -> None:
        super().__init__(target)
        self.path = os.path.abspath(target.location)
        self._connection: Any = None
        self._duckdb = _duckdb()
        self._scratch_dir: str | None = None
        #: DuckDB's memory limit: raised for the rest of the sync when a group needs more.
        self.memory_bytes = _MEMORY_BYTES
        self._in_transaction = False

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
            if _zstd_for_json(self._connection, self._duckdb.__version__):
                self.dialect = attrs.evolve(
                    DUCKDB, column_options={"json": "USING COMPRESSION zstd"}
                )
            self._remove_stale_scratch()
            self._spill_beside_file()
            self.ensure_schema()
        except BaseException:
            self.close()
            raise

    def _connect(self) -> None:
        duckdb = self._duckdb
        if os.path.isdir(self.path):
            raise NotADatabaseError(f"{self.target.display} is a directory, not a DuckDB file")
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            raise DatabaseError(
                f"{self.target.display}: the directory {folder} does not exist; create it, or "
                "check --db (duckdb:///FILE is relative to the current directory, "
                "duckdb:////FILE absolute)"
            )
        try:
            self._connection = self._open_file()
        except duckdb.Error as exc:
            text = _one_line(exc)
            # Another process's lock, or this process's own connection to the file.
            if any(sign in text.lower() for sign in _IN_USE):
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

    def _open_file(self) -> Any:
        """A connection to the file: attached to an in-memory connection from DuckDB 1.4 on,
        because ATTACH is where DuckDB takes a row group size (see _ROW_GROUP_ROWS). Before
        1.4 DuckDB would let that second instance open a file this process already holds
        open, and two instances would write one file; ``connect`` refuses it."""
        duckdb = self._duckdb
        if _release(duckdb.__version__) < (1, 4):
            return duckdb.connect(self.path, config=_config())
        connection = duckdb.connect(":memory:", config=_config())
        quoted = self.path.replace("'", "''")
        try:
            connection.execute(
                f"ATTACH '{quoted}' AS {_ATTACHED} (ROW_GROUP_SIZE {_ROW_GROUP_ROWS})"
            )
            connection.execute(f"USE {_ATTACHED}")
        except BaseException:
            connection.close()
            raise
        return connection

    def reconnect(self) -> None:  # pragma: no cover - an embedded database does not drop
        raise DatabaseError(f"{self.target.display}: the connection was lost")

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(self._duckdb.Error):
                connection.close()
        if self._scratch_dir is not None:
            shutil.rmtree(self._scratch_dir, ignore_errors=True)
            self._scratch_dir = None
        with _OPEN_LOCK:
            _OPEN.discard(self.path)

    # -- statements -----------------------------------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._duckdb.Error as exc:
            text = _one_line(exc)
            lowered = text.lower()
            out_of_memory = any(sign in lowered for sign in _OUT_OF_MEMORY)
            kind = _OutOfMemoryError if out_of_memory else DatabaseError
            raise kind(f"{self.target.display}: {text}") from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement; outside a transaction, run again with more memory if it ran out
        (inside one, the transaction is what runs again: see commit)."""
        while True:
            try:
                with self._errors():
                    cursor = self._connection.execute(sql, list(params))
                    try:
                        rows: list[tuple[Any, ...]] = cursor.fetchall()
                    except self._duckdb.InvalidInputError:  # a statement without a result
                        rows = []
                    return rows
            except _OutOfMemoryError as exc:
                if self._in_transaction:
                    raise
                self._more_memory(exc)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._errors():
            self._connection.execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield
            with self._errors():
                self._connection.execute("COMMIT")
        except BaseException:
            # A COMMIT that failed has ended the transaction already.
            with contextlib.suppress(self._duckdb.Error):
                self._connection.execute("ROLLBACK")
            with self._errors():
                self._connection.execute(f"SET memory_limit = '{self.memory_bytes}B'")
            raise
        finally:
            self._in_transaction = False

    def commit(self, group: Group) -> None:
        """The group's transaction (see Backend.commit), run again with more memory while it
        runs out of DuckDB's: safe, since a group replaces whole units."""
        while True:
            try:
                super().commit(group)
                return
            except _OutOfMemoryError as exc:
                self._more_memory(exc)

    def _more_memory(self, exc: _OutOfMemoryError) -> None:
        """Twice DuckDB's memory, for the rest of the sync (the data that needed it is likely
        to come again), up to _MEMORY_CEILING; past that, ``exc`` as a DatabaseError."""
        if self.memory_bytes >= _MEMORY_CEILING:
            raise DatabaseError(
                f"{exc} (with DuckDB's memory at {self.memory_bytes // 1_000_000} MB, the "
                "most a sync gives it)"
            ) from None
        self.memory_bytes = min(2 * self.memory_bytes, _MEMORY_CEILING)
        with self._errors():
            self._connection.execute(f"SET memory_limit = '{self.memory_bytes}B'")

    def table_names(self) -> set[str]:
        rows = self.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema = ?",
            (self.schema,),
        )
        return {str(name).lower() for (name,) in rows}

    # -- bulk -----------------------------------------------------------------------------

    def load(self, table: KindTable, batches: list[bytes]) -> None:
        # Through a file DuckDB reads itself: no Python object per value crosses into the
        # database thread (pyarrow would add 25 MB of memory just by being imported). At
        # most _LOAD_BYTES a statement: one INSERT of a live's 100,000 chat records ran out of
        # DuckDB's memory; in parts, 300,000 go in one transaction.
        path = os.path.join(self._scratch(), f"{table.name}.rows")
        for part in in_parts(batches, _LOAD_BYTES):
            size = sum(len(rows) for rows in part)
            insert = _insert_typed(self.name(table.name), table, _read_staged(path, size))
            try:
                self._stage(path, part)
                with self._memory_for(size):
                    self.execute(insert)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)

    @contextmanager
    def _memory_for(self, size: int) -> Iterator[None]:
        """DuckDB's memory limit raised for a statement of ``size`` staged bytes that needs
        more, and lowered again after it: only a part holding a record of about a megabyte
        or more does (a vote's replies can make a record of megabytes; in_parts takes a
        record longer than _LOAD_BYTES whole)."""
        needed = size * _MEMORY_PER_STAGED_BYTE
        if needed <= self.memory_bytes:
            yield
            return
        self.execute(f"SET memory_limit = '{needed}B'")
        yield  # a statement that fails aborts the transaction: its rollback lowers it
        self.execute(f"SET memory_limit = '{self.memory_bytes}B'")

    def _stage(self, path: str, rows: list[memoryview]) -> None:
        try:
            with open(path, "wb") as file:
                file.writelines(rows)
        except OSError as exc:  # a full disk, most likely: the database file is beside it
            raise DatabaseError(
                f"{self.target.display}: cannot write rows to stage in {os.path.dirname(path)} "
                f"({exc.strerror or exc}); free space there and rerun"
            ) from None

    def _scratch_prefix(self) -> str:
        return f".{os.path.basename(self.path)}.cc-sync-"

    def _scratch(self) -> str:
        # Beside the database file, named after it: a sync killed by SIGKILL cannot clean up,
        # and the next sync of this file is the one that finds (and removes) what it left.
        if self._scratch_dir is None:
            try:
                self._scratch_dir = tempfile.mkdtemp(
                    prefix=self._scratch_prefix(), dir=os.path.dirname(self.path)
                )
            except OSError as exc:
                raise DatabaseError(
                    f"{self.target.display}: cannot make a staging directory beside it "
                    f"({exc.strerror or exc})"
                ) from None
        return self._scratch_dir

    def _spill_beside_file(self) -> None:
        """DuckDB's temporary files (what a sort, a join or a transaction's new rows move out
        of its memory) in a scratch directory beside the file. The connection is in memory
        with the file attached (see _open_file), and an in-memory database spills into
        ``.tmp`` under the current directory: a cron job's, or one it cannot write to, where a
        kill left them. DuckDB makes the directory when it first spills and removes it when
        the connection closes; after a kill, the next sync of the file does."""
        spill = os.path.join(os.path.dirname(self.path), self._scratch_prefix() + "spill")
        quoted = spill.replace("'", "''")
        self.execute(f"SET temp_directory = '{quoted}'")

    def _remove_stale_scratch(self) -> None:
        """Scratch directories of this file's earlier syncs that were killed. Called once
        DuckDB's lock is held: no other process writes this file, so none is a live sync's."""
        folder, prefix = os.path.dirname(self.path), self._scratch_prefix()
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                if entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        rows: list[tuple[Any, ...]],
        keep: Sequence[str],
        stored: Collection[tuple[Any, ...]] | None = None,
    ) -> None:
        # The table has no index (ddl.SqlDialect.index_history): the stored rows of these
        # keys are deleted, their ``keep`` columns' values carried over, and the rows
        # inserted. The rows go as one JSON text (see _document). At most _UPSERT_ROWS rows
        # a statement: DuckDB's memory for a statement grows with its rows.
        if not rows:
            return
        types = COLUMN_TYPES[table]
        key = KEYS[table]
        at = [columns.index(k) for k in key]
        kept = [columns.index(c) for c in keep]
        names = ", ".join(quote(c) for c in columns)
        insert = f"INSERT INTO {self.name(table)} ({names}) {_rows_of(types, columns)}"
        delete = (
            f"DELETE FROM {self.name(table)} AS t USING ({_rows_of(types, key)}) AS n WHERE "
            + " AND ".join(f"t.{quote(k)} = n.{quote(k)}" for k in key)
            + " RETURNING "
            + ", ".join(f"t.{quote(c)}" for c in (*key, *keep))
        )
        for start in range(0, len(rows), _UPSERT_ROWS):
            chunk = rows[start : start + _UPSERT_ROWS]
            row_keys = [tuple(row[i] for i in at) for row in chunk]
            doomed = [k for k in row_keys if stored is None or k in stored]
            if doomed:
                found = self.execute(delete, (_document(key, doomed),))
                old = {tuple(row[: len(key)]): row[len(key) :] for row in found}
                if old and kept:
                    chunk = [
                        _carried(row, old.get(row_key), kept)
                        for row, row_key in zip(chunk, row_keys, strict=True)
                    ]
            self.execute(insert, (_document(columns, chunk),))

    def texts(self, values: list[str]) -> Any:
        return dumps(values).decode()  # one JSON text: see _document

    def upgrade(self, version: int) -> None:
        """Version 3: ``cc_lives`` and ``cc_units`` copied into tables without their primary
        key (see ddl.SqlDialect.index_history), in the transaction that creates the rest."""
        if version >= 3:
            return
        indexed = self.execute(
            "SELECT table_name FROM duckdb_constraints() WHERE database_name = "
            "current_database() AND schema_name = ? AND constraint_type = 'PRIMARY KEY'",
            (self.schema,),
        )
        for name in HISTORY:
            if (name,) not in indexed:
                continue
            rebuilt = f"{name}_rebuilt"
            columns = ", ".join(quote(c) for c in COLUMNS[name])
            self.execute(self.dialect.create_table(self.schema, name, as_name=rebuilt))
            self.execute(
                f"INSERT INTO {self.name(rebuilt)} ({columns}) "
                f"SELECT {columns} FROM {self.name(name)}"
            )
            self.execute(f"DROP TABLE {self.name(name)}")
            self.execute(f"ALTER TABLE {self.name(rebuilt)} RENAME TO {quote(name)}")


def _carried(row: tuple[Any, ...], old: tuple[Any, ...] | None, kept: list[int]) -> tuple[Any, ...]:
    """``row`` with the values of its ``kept`` columns taken from the stored row's ``old``."""
    if old is None:
        return row
    values = list(row)
    for index, value in zip(kept, old, strict=True):
        values[index] = value
    return tuple(values)
