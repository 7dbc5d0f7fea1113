"""What a sync asks of its database, once for every backend: the schema check, the state an
incremental sync starts from, and the one transaction that commits a group of whole units.

The methods are blocking; :class:`~cc_collect_async.database.sink.DatabaseSink` and
:func:`~cc_collect_async.database.sync.sync` call them in a worker thread (one at a time,
one connection), so no event loop ever waits on the database. A backend supplies the
connection, the lock, and its way to take staged rows in and type them (a file DuckDB
reads; COPY into a temporary table for PostgreSQL).
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import attrs

from .ddl import COLUMNS, LIVES, META, RUNS, SCHEMA_VERSION, UNITS, WATERMARKS, SqlDialect, quote
from .errors import NotADatabaseError, SchemaVersionError
from .staged import staged_lines
from .tables import KIND_TABLES, KindTable
from .target import DatabaseTarget

__all__ = ["Backend", "ConnectionLostError", "Group", "RunFinish", "RunStart", "SyncState"]


class ConnectionLostError(Exception):
    """The connection broke during a transaction: reconnect and run the transaction again
    (it replaces whole units, so running it twice is harmless)."""


@attrs.frozen
class RunStart:
    run_id: str
    userid: str
    base_url: str
    started_at: datetime
    since: datetime | None
    until: datetime | None
    kinds: str


@attrs.frozen
class RunFinish:
    """The run's final row, and the watermark to advance ``kinds`` to (None: leave it)."""

    run_id: str
    userid: str
    values: dict[str, Any]
    watermark: datetime | None = None
    kinds: tuple[str, ...] = ()


@attrs.define
class Group:
    """Whole units committed together: their lives, rows and ``cc_units`` entries.

    ``replaced[kind]`` lists the lives whose rows of that kind are deleted first, so a
    unit's refetch replaces its rows whole, also when it came back empty.
    """

    lives: list[tuple[Any, ...]] = attrs.field(factory=list)
    units: list[tuple[Any, ...]] = attrs.field(factory=list)
    #: Each kind's rows, page by page, as the backend's ``page_rows`` made them.
    rows: dict[str, list[Any]] = attrs.field(factory=dict)
    replaced: dict[str, list[str]] = attrs.field(factory=dict)
    finish: RunFinish | None = None
    #: Set by the thread that committed it.
    committed: bool = False

    def __bool__(self) -> bool:
        return bool(self.lives or self.units or self.finish)


@attrs.frozen
class SyncState:
    """Where an account's last syncs left off, for the kinds asked."""

    #: Where the last complete sync of each kind ended (kinds never synced are absent).
    watermarks: Mapping[str, datetime]
    #: Start of the oldest live with a unit that was not final when fetched.
    oldest_open: datetime | None
    #: Start of the earliest window of a run that did not complete, for some of the kinds
    #: asked, and that no later complete run has synced them over (its failed or unreached
    #: units are still to fetch).
    resume_from: datetime | None = None


class Backend(abc.ABC):
    """A database a sync writes to. Use from one thread at a time."""

    dialect: SqlDialect
    #: Whether the JSON columns take a record's text exactly, lone surrogates' escapes
    #: included (PostgreSQL's json does; DuckDB's JSON refuses them).
    exact_json = True

    def __init__(self, target: DatabaseTarget) -> None:
        self.target = target
        self.schema = target.schema

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target.display!r})"

    def name(self, table: str) -> str:
        return self.dialect.table(self.schema, table)

    # -- what each backend supplies -------------------------------------------------------

    @abc.abstractmethod
    def open(self, lock_key: str) -> None:
        """Connect, take the lock for ``lock_key`` (the account) and make sure the schema
        is there and not newer than this code. Raises the database errors."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def reconnect(self) -> None:
        """After :class:`ConnectionLostError`: a new connection, the lock taken again."""

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abc.abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]: ...

    @abc.abstractmethod
    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        rows: list[tuple[Any, ...]],
        keep: Sequence[str],
        stored: Collection[tuple[Any, ...]] | None = None,
    ) -> None:
        """Insert ``rows``; where the key exists, update every column but the key and
        ``keep``. ``stored``, when given, holds every key of ``rows`` the table may hold
        already (a backend without an index on the key can skip looking for the rest)."""

    def texts(self, values: list[str]) -> Any:
        """``values`` as the one parameter of :meth:`SqlDialect.one_of`."""
        return values

    def delete_lives(self, table: str, liveids: list[str]) -> None:
        """Delete the rows of ``liveids`` from ``table`` (the list bound as one parameter)."""
        self.execute(
            f"DELETE FROM {self.name(table)} WHERE {self.dialect.one_of('liveid')}",
            (self.texts(liveids),),
        )

    @abc.abstractmethod
    def load(self, table: KindTable, batches: list[bytes]) -> None:
        """Append the pages (as :meth:`page_rows` made them) to ``table``: the backend's
        bulk path."""

    def page_rows(
        self,
        table: KindTable,
        liveid: str,
        roomid: str,
        records: Sequence[Any],
        key_of: Callable[[Sequence[Any]], list[Hashable]],
    ) -> bytes:
        """One page of records as :meth:`load` takes them, made in the event loop's thread:
        staged rows (:mod:`.staged`) the database types itself; with the record's text as
        received where the JSON columns take it exactly."""
        return staged_lines(liveid, roomid, records, key_of, exact=self.exact_json)

    @abc.abstractmethod
    def table_names(self) -> set[str]:
        """The tables of the schema, lower case."""

    # -- shared ---------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create what is missing, bring an older schema up to date; refuse a newer schema
        or a schema of someone else's."""
        existing = self.table_names()
        version: int | None = None
        if META in existing:
            found = self.execute(
                f"SELECT value FROM {self.name(META)} WHERE key = {self.dialect.param}",
                ("schema_version",),
            )
            version = int(found[0][0]) if found and str(found[0][0]).isdigit() else 0
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{self.target.display} holds cc-collect tables of schema version "
                    f"{version}, newer than this cc_collect_async knows ({SCHEMA_VERSION}); "
                    "upgrade cc_collect_async, or sync into another --db or --schema"
                )
            if version == SCHEMA_VERSION and existing >= self._expected_tables():
                return
        elif LIVES in existing or UNITS in existing:
            raise NotADatabaseError(
                f"{self.target.display} has {LIVES}/{UNITS} tables without {META}: not made "
                "by cc-collect; use another --db or --schema"
            )
        with self.transaction():
            self.lock_schema_changes()
            # PostgreSQL checks CREATE on the database even for a schema that exists: a
            # role allowed only into its schema would be refused.
            create_schema = not self.execute(
                "SELECT 1 FROM information_schema.schemata "
                f"WHERE catalog_name = current_database() AND schema_name = {self.dialect.param}",
                (self.schema,),
            )
            if version is not None:
                self.upgrade(version)
                if version < 4 and WATERMARKS in existing:
                    self._watermark_per_kind()
                if version < 5 and WATERMARKS in existing:
                    self._watermarks_not_past_their_runs()
            for statement in self.dialect.create_statements(
                self.schema, create_schema=create_schema
            ):
                self.execute(statement)
            # An upsert: DuckDB before 1.2 refuses to insert a key deleted in the same
            # transaction.
            self.execute(
                f"INSERT INTO {self.name(META)} (key, value) VALUES ({self.dialect.params(2)}) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                ("schema_version", str(SCHEMA_VERSION)),
            )

    def _watermark_per_kind(self) -> None:
        """Version 4: the account's watermark (version 3) becomes one per kind it has units
        of, in a table rebuilt with the kind in its key."""
        rebuilt = f"{WATERMARKS}_rebuilt"
        self.execute(self.dialect.create_table(self.schema, WATERMARKS, as_name=rebuilt))
        self.execute(
            f"INSERT INTO {self.name(rebuilt)} (userid, kind, watermark, run_id, updated_at) "
            "SELECT w.userid, u.kind, w.watermark, w.run_id, w.updated_at "
            f"FROM {self.name(WATERMARKS)} AS w "
            f"JOIN (SELECT DISTINCT userid, kind FROM {self.name(UNITS)}) AS u "
            "ON u.userid = w.userid"
        )
        self.execute(f"DROP TABLE {self.name(WATERMARKS)}")
        self.execute(f"ALTER TABLE {self.name(rebuilt)} RENAME TO {quote(WATERMARKS)}")

    def _watermarks_not_past_their_runs(self) -> None:
        """Version 5: a watermark later than the start of the run that set it (an ``--until``
        in the future, before version 5) goes back to that start, the minute its listing
        reached: the lives that started after it were never listed."""
        marks, table = self.name(WATERMARKS), quote(WATERMARKS)
        self.execute(
            f"UPDATE {marks} SET watermark = r.start FROM (SELECT run_id, "
            f"date_trunc('minute', started_at) AS start FROM {self.name(RUNS)}) AS r "
            f"WHERE {table}.run_id = r.run_id AND {table}.watermark > r.start"
        )

    def upgrade(self, version: int) -> None:  # noqa: B027 - only DuckDB has changed tables
        """Inside the creating transaction, before the ``IF NOT EXISTS`` statements: change
        the tables a schema of ``version`` made differently."""

    def lock_schema_changes(self) -> None:  # noqa: B027 - only PostgreSQL needs it
        """Inside the creating transaction: keep two first syncs from racing (PostgreSQL)."""

    @staticmethod
    def _expected_tables() -> set[str]:
        return {META, LIVES, UNITS, RUNS, WATERMARKS} | {t.name for t in KIND_TABLES.values()}

    def state(self, userid: str, kinds: Sequence[str]) -> SyncState:
        p = self.dialect.param
        kind_params = self.dialect.params(len(kinds))
        found = self.execute(
            f"SELECT kind, watermark FROM {self.name(WATERMARKS)} "
            f"WHERE userid = {p} AND kind IN ({kind_params})",
            (userid, *kinds),
        )
        # A live that a complete run's listing of its start no longer held (the vendor
        # removed it; a listed live was seen after the run started) holds no sync back: its
        # units are not final, and are fetched if a listing ever holds it again.
        rows = self.execute(
            f"SELECT min(l.start_time) FROM {self.name(UNITS)} AS u "
            f"JOIN {self.name(LIVES)} AS l ON l.liveid = u.liveid "
            f"WHERE u.userid = {p} AND NOT u.final AND u.kind IN ({kind_params}) "
            f"AND NOT EXISTS (SELECT 1 FROM {self.name(RUNS)} AS r WHERE r.userid = u.userid "
            "AND r.complete AND r.started_at > l.last_seen AND r.since <= l.start_time "
            "AND l.start_time < date_trunc('minute', r.until))",
            (userid, *kinds),
        )
        runs = self.execute(
            "SELECT started_at, complete, since, until, CAST(kinds AS TEXT) "
            f"FROM {self.name(RUNS)} WHERE userid = {p} ORDER BY started_at",
            (userid,),
        )
        return SyncState(
            watermarks={str(kind): mark for kind, mark in found if mark is not None},
            oldest_open=rows[0][0] if rows else None,
            resume_from=_resume_from(runs, kinds),
        )

    def final_units(
        self, userid: str, kinds: Sequence[str], liveids: list[str], until: datetime
    ) -> set[tuple[str, str]]:
        """(liveid, kind) of the final units of ``liveids`` (one listing page) whose live
        started before ``until``. Asked a page at a time, so a re-sweep of a long span never
        holds every final unit of the span at once."""
        p = self.dialect.param
        rows = self.execute(
            f"SELECT u.liveid, u.kind FROM {self.name(UNITS)} AS u "
            f"JOIN {self.name(LIVES)} AS l ON l.liveid = u.liveid "
            f"WHERE {self.dialect.one_of('u.liveid')} AND u.userid = {p} AND u.final "
            f"AND u.kind IN ({self.dialect.params(len(kinds))}) AND l.start_time < {p}",
            (self.texts(liveids), userid, *kinds, until),
        )
        return {(str(liveid), str(kind)) for liveid, kind in rows}

    def begin_run(self, run: RunStart) -> None:
        with self.transaction():
            columns = ("run_id", "userid", "base_url", "started_at", "since", "until", "kinds")
            self.execute(
                f"INSERT INTO {self.name(RUNS)} ({', '.join(quote(c) for c in columns)}, complete) "
                f"VALUES ({self.dialect.params(len(columns))}, false)",
                (
                    run.run_id,
                    run.userid,
                    run.base_url,
                    run.started_at,
                    run.since,
                    run.until,
                    run.kinds,
                ),
            )

    def commit(self, group: Group) -> None:
        """One transaction: lives, then each kind's rows replaced, then the units (and the
        run's end). Raises :class:`ConnectionLostError` when the connection broke."""
        with self.transaction():
            if group.lives:
                self.upsert(LIVES, COLUMNS[LIVES], group.lives, keep=("first_seen",))
            stored = self._stored(group.replaced)
            for kind in group.replaced:
                table = KIND_TABLES[kind]
                if stored.get(kind):
                    self.delete_lives(table.name, stored[kind])
                batches = group.rows.get(kind)
                if batches:
                    self.load(table, batches)
            if group.units:
                known = {(liveid, kind) for kind, lives in stored.items() for liveid in lives}
                self.upsert(UNITS, COLUMNS[UNITS], group.units, keep=(), stored=known)
            if group.finish is not None:
                self._finish(group.finish)

    def _stored(self, replaced: dict[str, list[str]]) -> dict[str, list[str]]:
        """Of the lives whose units of a kind are replaced, those with rows of that kind to
        delete: the units committed before (rows and unit row commit together). One look
        through ``cc_units``' key for all kinds, so a first sync neither scans a kind's
        table nor pays a statement per kind."""
        if not replaced:
            return {}
        liveids = sorted({liveid for lives in replaced.values() for liveid in lives})
        rows = self.execute(
            f"SELECT kind, liveid FROM {self.name(UNITS)} WHERE {self.dialect.one_of('liveid')}",
            (self.texts(liveids),),
        )
        stored: dict[str, list[str]] = {}
        for kind, liveid in rows:
            stored.setdefault(str(kind), []).append(str(liveid))
        wanted = {kind: set(lives) for kind, lives in replaced.items()}
        return {
            kind: [liveid for liveid in lives if liveid in wanted[kind]]
            for kind, lives in stored.items()
            if kind in wanted
        }

    def _finish(self, finish: RunFinish) -> None:
        p = self.dialect.param
        names = list(finish.values)
        assignments = ", ".join(f"{quote(name)} = {p}" for name in names)
        self.execute(
            f"UPDATE {self.name(RUNS)} SET {assignments} WHERE run_id = {p}",
            (*finish.values.values(), finish.run_id),
        )
        if finish.watermark is None:
            return
        table = self.name(WATERMARKS)
        for kind in finish.kinds:
            self.execute(
                f"INSERT INTO {table} (userid, kind, watermark, run_id, updated_at) "
                f"VALUES ({self.dialect.params(5)}) ON CONFLICT (userid, kind) DO UPDATE SET "
                f"watermark = greatest({table}.watermark, excluded.watermark), "
                "run_id = excluded.run_id, updated_at = excluded.updated_at",
                (
                    finish.userid,
                    kind,
                    finish.watermark,
                    finish.run_id,
                    finish.values["finished_at"],
                ),
            )

    @staticmethod
    def update_clause(columns: Sequence[str], key: Sequence[str], keep: Sequence[str]) -> str:
        updates = [c for c in columns if c not in key and c not in keep]
        return ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in updates)


KEYS = {LIVES: ("liveid",), UNITS: ("liveid", "kind")}


def _resume_from(runs: Sequence[tuple[Any, ...]], kinds: Sequence[str]) -> datetime | None:
    """The start of the earliest window a run left unfinished for any of ``kinds``, from
    the account's runs in the order they started (started_at, complete, since, until, kinds
    as JSON).

    A later complete run finishes a kind of it only when it synced that kind over the whole
    window: a sync of other kinds, or a narrower backfill, leaves it to resume. A window
    reaches no further than its run's start (an ``--until`` in the future), or no nightly
    sync would ever cover it."""
    pending: list[tuple[datetime, datetime | None, set[str]]] = []
    for started, complete, since, until, synced_json in runs:
        synced = set(json.loads(synced_json or "[]"))
        if not complete:
            if since is not None:
                end = until if until is None or started is None else min(until, started)
                pending.append((since, end, synced))
            continue
        if since is None or until is None:
            continue
        for start, end, left in pending:
            if since <= start and (end is None or until >= end):
                left -= synced
    return min((start for start, _, left in pending if left.intersection(kinds)), default=None)
