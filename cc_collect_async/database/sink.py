"""``DatabaseSink``: a harvest committed into a database, whole units at a time.

Pages become the backend's rows as they arrive, per unit. A unit that ends well joins the
current *group*; a group is handed to the writer about every ``group_seconds`` (or sooner
when it holds ``group_rows`` records or lives), and the writer commits it in one transaction
in a worker thread: DuckDB pays a few milliseconds per commit, so one transaction per unit
would make the database what limits a sync. ``group_seconds=0`` commits every unit on its own.

At most two groups are outstanding (one committing, one waiting); past that the harvest's
consumer waits, and the harvest's own bounded stream then slows the fetching. A commit that
loses its connection reconnects and runs again (it replaces whole units, so that is safe).
Nothing counts as stored before its transaction commits: a crash at any moment leaves whole
units, and a rerun fetches what is missing.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any, TypeVar

import anyio

from ..harvest.events import Batch, UnitResult
from ..harvest.plan import KINDS, Live, Unit
from ..harvest.report import HarvestReport
from ..json_codec import dumps
from .backend import Backend, ConnectionLostError, Group, RunFinish, RunStart
from .errors import DatabaseBusyError, DatabaseError
from .open import open_backend
from .tables import KIND_TABLES, storable, wire_time
from .target import DatabaseTarget, parse_target

__all__ = ["DatabaseSink"]

Clock = Callable[[], datetime]
T = TypeVar("T")

#: Attempts at one commit whose connection keeps breaking, and the waits between them: a
#: minute in all, for a server restarting or failing over.
_ATTEMPTS = 9
_FIRST_WAIT = 0.5
_LONGEST_WAIT = 15.0


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _integer(value: Any) -> int | None:
    if type(value) is int:
        return value if -(1 << 31) <= value < (1 << 31) else None
    if isinstance(value, str) and value.strip().isdigit():
        return _integer(int(value))
    return None


class DatabaseSink:
    """A :class:`~cc_collect_async.harvest.Sink` that commits into a database.

    Use it as an async context manager around :meth:`Harvester.run`::

        async with DatabaseSink("duckdb:///cc.duckdb", account=client.userid) as sink:
            report = await harvester.run(sink)

    ``database``: a ``--db`` URL, a :class:`DatabaseTarget`, or a :class:`Backend` already
    opened (then it is left open). ``settle``: a unit is *final* (never fetched again by an
    incremental sync) when its live had ended at least this long before it was listed.
    ``advance_watermark``: where the watermark of each of ``advance_kinds`` (default:
    ``kinds``) moves when the run completes.
    """

    def __init__(
        self,
        database: str | DatabaseTarget | Backend,
        *,
        account: str,
        base_url: str = "",
        group_seconds: float = 1.0,
        group_rows: int = 5_000,
        settle: timedelta = timedelta(hours=3),
        clock: Clock | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        kinds: tuple[str, ...] = (),
        advance_watermark: datetime | None = None,
        advance_kinds: tuple[str, ...] | None = None,
        units_skipped: Callable[[], int] | None = None,
        run_id: str | None = None,
    ) -> None:
        if isinstance(database, str):
            database = parse_target(database)
        self._target = database if isinstance(database, DatabaseTarget) else None
        self.backend: Backend | None = database if isinstance(database, Backend) else None
        self._owns_backend = self.backend is None
        self.account = account
        self.base_url = base_url
        self.group_seconds = max(0.0, group_seconds)
        self.group_rows = max(1, group_rows)
        self.settle = settle
        self._clock = clock or _utc_now
        self.since, self.until, self.kinds = since, until, kinds
        self.advance_watermark = advance_watermark
        self.advance_kinds = kinds if advance_kinds is None else advance_kinds
        if advance_watermark is not None and not self.advance_kinds:
            raise ValueError("advance_watermark needs the kinds it moves: pass kinds")
        self.units_skipped = units_skipped
        self.run_id = run_id or uuid.uuid4().hex
        #: Committed so far (counted only once their transaction committed).
        self.committed_units = 0
        self.committed_records = 0
        self.transactions = 0
        self.reconnects = 0
        self.report: HarvestReport | None = None

        #: When each live was listed: a unit is final by its live's end against this. Held
        #: only while the harvest holds the live (its units are still to come or running):
        #: a backfill lists hundreds of thousands of lives in one run.
        self._listed: weakref.WeakKeyDictionary[Live, datetime] = weakref.WeakKeyDictionary()
        #: Record batches of the units still being fetched.
        self._open_units: dict[Unit, list[Any]] = {}
        self._group = Group()
        self._group_units = 0
        self._group_records = 0
        self._group_rows = 0
        self._group_started = time.monotonic()
        self._outstanding: deque[tuple[Group, int, int]] = deque()
        self._limiter = anyio.CapacityLimiter(1)
        self._db_lock = anyio.Lock()
        self._wake = anyio.Event()
        self._space = anyio.Event()
        self._failure: BaseException | None = None
        self._closed = False
        self._task_group: Any = None

    def __repr__(self) -> str:
        where = self.backend or self._target
        return f"DatabaseSink({where!r}, account={self.account!r}, run_id={self.run_id!r})"

    # -- lifetime -------------------------------------------------------------------------

    async def __aenter__(self) -> DatabaseSink:
        if self.backend is None:
            assert self._target is not None
            self.backend = await self._call(open_backend, self._target, self.account)
        backend = self.backend
        try:
            start = RunStart(
                run_id=self.run_id,
                userid=self.account,
                base_url=self.base_url,
                started_at=self._clock(),
                since=self.since,
                until=self.until,
                kinds=dumps(list(self.kinds)).decode(),
            )
            await self._call(backend.begin_run, start)
            self._task_group = anyio.create_task_group()
            await self._task_group.__aenter__()
            self._task_group.start_soon(self._writer)
        except BaseException:
            await self._release()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            if self._task_group is not None:
                self._task_group.cancel_scope.cancel()
                await self._task_group.__aexit__(None, None, None)
        finally:
            await self._release()
        if self._failure is not None and exc is None:
            raise self._failure
        return None

    async def _release(self) -> None:
        if self._owns_backend and self.backend is not None:
            backend, self.backend = self.backend, None
            with anyio.CancelScope(shield=True):
                await self._call(backend.close)

    async def _call(self, func: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)

    # -- the Sink protocol ----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._task_group is None:
            raise RuntimeError("use a DatabaseSink inside 'async with DatabaseSink(...) as sink'")
        if self._closed:
            # Its run's row is final: another run's units would be committed nowhere.
            raise RuntimeError(
                "a DatabaseSink takes one Harvester.run: open a new one for the next run"
            )

    async def live(self, live: Live) -> None:
        self._check_open()
        self._listed[live] = self._clock()
        self._group.lives.append(self._live_row(live))
        await self._maybe_hand_off()

    async def write(self, batch: Batch) -> None:
        self._check_open()
        unit = batch.unit
        kind = unit.kind
        assert self.backend is not None
        made = self.backend.page_rows(
            KIND_TABLES[kind],
            unit.live.liveid,
            unit.live.roomid,
            batch.records,
            KINDS[kind].page_keys,
        )
        self._open_units.setdefault(unit, []).append(made)

    async def unit_end(self, result: UnitResult) -> None:
        unit = result.unit
        batches = self._open_units.pop(unit, None)
        if not result.ok:
            return
        kind = unit.kind
        group = self._group
        group.replaced.setdefault(kind, []).append(unit.live.liveid)
        if batches:
            group.rows.setdefault(kind, []).extend(batches)
            self._group_rows += result.records
        group.units.append(self._unit_row(result))
        self._group_units += 1
        self._group_records += result.records
        await self._maybe_hand_off()

    async def close(self, report: HarvestReport) -> None:
        """Commit what is complete and the run's row (and the watermark, when the run was
        complete). Called shielded by :meth:`Harvester.run`, also on cancellation."""
        if self._closed or self._task_group is None:  # a second run, or never entered
            return
        self.report = report
        self._open_units.clear()
        self._closed = True
        if self._failure is None:
            group, units, records = self._take_group()
            group.finish = self._finish(report)
            self._outstanding.append((group, units, records))
            async with self._db_lock:
                while self._outstanding and self._failure is None:
                    try:
                        await self._commit_head()
                    except Exception as exc:
                        self._failure = exc
        if self._failure is not None:
            raise self._failure

    # -- grouping -------------------------------------------------------------------------

    def _due(self) -> bool:
        group = self._group
        if len(group.lives) >= self.group_rows:
            # Lives listed far ahead of the units, or a rerun whose every unit is final and
            # skipped: they go by themselves rather than all in the run's last transaction.
            return True
        if not group.units:
            return False
        return (
            time.monotonic() - self._group_started >= self.group_seconds
            or self._group_rows >= self.group_rows
        )

    def _take_group(self) -> tuple[Group, int, int]:
        taken = (self._group, self._group_units, self._group_records)
        self._group = Group()
        self._group_units = self._group_records = self._group_rows = 0
        self._group_started = time.monotonic()
        return taken

    async def _maybe_hand_off(self) -> None:
        if self._failure is not None:
            raise self._failure
        if not self._due():
            return
        while len(self._outstanding) >= 2:
            await self._space.wait()
            if self._failure is not None:
                raise self._failure
        self._outstanding.append(self._take_group())
        self._wake.set()

    async def _writer(self) -> None:
        """Commits handed-off groups in order; also hands off a group that has waited its
        ``group_seconds`` while no unit ended. A database error stops it and is raised to
        the harvest at its next event (or by :meth:`close`)."""
        while self._failure is None:
            if not self._outstanding:
                self._wake = anyio.Event()
                with anyio.move_on_after(self.group_seconds or 1.0):
                    await self._wake.wait()
                if not self._outstanding and not self._closed and self._due():
                    self._outstanding.append(self._take_group())
                continue
            try:
                async with self._db_lock:
                    if self._outstanding and not self._closed:
                        await self._commit_head()
            except Exception as exc:
                self._failure = exc
        space, self._space = self._space, anyio.Event()
        space.set()

    async def _commit_head(self) -> None:
        group, units, records = self._outstanding[0]
        try:
            if not group.committed:
                await self._commit(group)
        finally:
            # Set by the worker thread as it commits: a cancellation that arrives while the
            # thread finishes cannot make a committed group look pending (or the reverse).
            if group.committed:
                self._outstanding.popleft()
                self.transactions += 1
                self.committed_units += units
                self.committed_records += records
                space, self._space = self._space, anyio.Event()
                space.set()

    async def _commit(self, group: Group) -> None:
        backend = self.backend
        assert backend is not None

        def commit() -> None:
            backend.commit(group)
            group.committed = True

        await self._reconnecting(commit, "committing")

    async def query(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in the database thread, between two commits: a lookup while the
        harvest runs, such as the final units of a page of lives. A connection lost on the
        way is made again and ``func`` run again."""
        if self._failure is not None:
            raise self._failure
        async with self._db_lock:
            return await self._reconnecting(lambda: func(*args), "reading")

    async def _reconnecting(self, func: Callable[[], T], doing: str) -> T:
        """``func()`` in the database thread, run again on a new connection when the
        connection breaks, until it works or the attempts run out. Called with ``_db_lock``
        held, so nothing else uses the connection in between.

        Each attempt reconnects first if the last one found the connection broken, and a
        server that refuses the new connection (restarting, failing over) costs an attempt
        like a lost one: ``func`` never runs without a connection."""
        backend = self.backend
        assert backend is not None
        wait = _FIRST_WAIT
        waited = 0.0
        attempt = 0
        broken = False
        while True:
            attempt += 1
            try:
                if broken:
                    await self._call(backend.reconnect)
                    self.reconnects += 1
                    broken = False
                result: T = await self._call(func)
                return result
            except DatabaseBusyError:
                raise  # the account's lock, taken by another sync in the meantime
            except (ConnectionLostError, DatabaseError) as exc:
                if not broken and not isinstance(exc, ConnectionLostError):
                    raise  # ``func`` failed on a working connection: not ours to retry
                broken = True
                if attempt == _ATTEMPTS:
                    raise DatabaseError(
                        f"{backend.target.display}: connection lost while {doing}, and "
                        f"{attempt} attempts over {waited:.0f} s did not get "
                        f"it back ({exc}); the units not committed are fetched again by the "
                        "next sync"
                    ) from None
            await anyio.sleep(wait)
            waited += wait
            wait = min(wait * 2, _LONGEST_WAIT)

    # -- rows -----------------------------------------------------------------------------

    def _live_row(self, live: Live) -> tuple[Any, ...]:
        assert self.backend is not None
        raw, text = storable(dict(live.wire()), exact=self.backend.exact_json)
        seen = self._clock()
        return (
            live.liveid,
            self.account,
            live.roomid,
            None if raw.get("class_name") is None else str(raw.get("class_name")),
            _integer(raw.get("room_type")),
            wire_time(raw.get("start_time")),
            wire_time(raw.get("end_time")),
            seen,
            seen,
            text,
        )

    def _unit_row(self, result: UnitResult) -> tuple[Any, ...]:
        live = result.unit.live
        end = wire_time(live.raw.get("end_time")) if live.raw else None
        listed_at = self._listed.get(live) or self._clock()
        final = end is not None and listed_at >= end + self.settle
        issues = dumps(list(result.issues)).decode() if result.issues else None
        return (
            live.liveid,
            result.unit.kind,
            self.account,
            live.roomid,
            result.records,
            result.pages,
            result.duplicates,
            issues,
            end,
            self._clock(),
            self.run_id,
            final,
        )

    def _finish(self, report: HarvestReport) -> RunFinish:
        values: dict[str, Any] = {
            "finished_at": self._clock(),
            "complete": report.complete,
            "lives": report.lives,
            "units": sum(c.units - c.failed for c in report.kinds.values()),  # stored
            "units_skipped": self.units_skipped() if self.units_skipped else 0,
            "records": report.records,
            "requests": report.requests,
            "retries": report.retries,
            "rate_limited": report.rate_limited,
            "failures": len(report.failures),
            "report": dumps(report.to_dict()).decode(),
        }
        watermark = self.advance_watermark if report.complete else None
        return RunFinish(self.run_id, self.account, values, watermark, self.advance_kinds)
