"""``sync``: an incremental harvest into a database, the coroutine ``cc-collect sync`` is a
thin layer over.

The database is opened (connected, locked, schema checked) before anything is fetched, and
the account's state read from it decides the window (:mod:`.incremental`); the harvest then
runs into a :class:`~cc_collect_async.database.sink.DatabaseSink`, skipping the final units
it looks up a listing page at a time. Database work runs in a worker thread, one call at a
time, so this works under asyncio and trio alike.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import attrs

from ..beijing import as_beijing
from ..client import CollectClient
from ..harvest.plan import DEFAULT_KINDS, Live, parse_kinds
from ..harvest.report import HarvestReport
from ..harvest.scheduler import Harvester
from ..harvest.task_groups import sole_error
from .backend import Backend
from .incremental import SyncPlan, plan_sync
from .open import open_backend
from .sink import DatabaseSink
from .target import DEFAULT_DATABASE, DatabaseTarget, parse_target

__all__ = ["SyncReport", "sync"]

Watch = Callable[[SyncPlan, Harvester], Coroutine[Any, Any, None]]


@attrs.frozen
class SyncReport:
    """What a sync did. ``harvest`` is None when the window was empty (nothing to do)."""

    database: str
    plan: SyncPlan
    run_id: str | None
    harvest: HarvestReport | None
    #: Units not fetched because an earlier run had made them final, by kind.
    units_skipped_by_kind: dict[str, int] = attrs.field(factory=dict)
    committed_units: int = 0
    committed_records: int = 0
    transactions: int = 0
    reconnects: int = 0

    @property
    def units_skipped(self) -> int:
        return sum(self.units_skipped_by_kind.values())

    @property
    def complete(self) -> bool:
        return self.harvest is None or self.harvest.complete


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


async def sync(
    client: CollectClient,
    database: str | os.PathLike[str] | DatabaseTarget = DEFAULT_DATABASE,
    *,
    schema: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: str | Sequence[str] = DEFAULT_KINDS,
    settle: timedelta = timedelta(hours=3),
    refresh_days: int = 0,
    group_seconds: float = 1.0,
    rate: float | None = None,
    concurrency: int | None = None,
    harvest_options: Mapping[str, Any] | None = None,
    clock: Callable[[], datetime] | None = None,
    watch: Watch | None = None,
    on_report: Callable[[SyncReport], None] | None = None,
) -> SyncReport:
    """Sync the account's lives into ``database`` and return what happened.

    ``since``/``until`` (Beijing time when naive) override the incremental window;
    ``settle`` is how long after its live ended a unit counts as final; ``refresh_days``
    fetches the last N days again; ``group_seconds`` is how often a transaction commits
    (0: one per unit). ``watch(plan, harvester)`` runs beside the harvest (a progress
    display) and is cancelled when it ends. ``on_report(report)`` is called with the report
    also when the sync is cancelled (say, by Ctrl-C) once the harvest began: what it had
    committed by then. Raises the errors of
    :mod:`cc_collect_async.database.errors` before fetching anything when the database
    cannot be used, and ``AuthError`` when the server rejects the credentials.
    """
    if isinstance(database, os.PathLike):
        database = os.fspath(database)
    target = database if isinstance(database, DatabaseTarget) else parse_target(database, schema)
    if since is not None and until is not None and as_beijing(since) >= as_beijing(until):
        raise ValueError(f"since ({since}) must be before until ({until})")
    chosen = parse_kinds(kinds)
    now = clock or _utc_now
    limiter = anyio.CapacityLimiter(1)

    async def call(func: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(func, *args, limiter=limiter)

    backend: Backend = await call(open_backend, target, client.userid)
    try:
        state = await call(backend.state, client.userid, chosen)
        plan = plan_sync(
            state, kinds=chosen, now=now(), since=since, until=until, refresh_days=refresh_days
        )
        if plan.window is None:
            nothing = SyncReport(target.display, plan, None, None)
            if on_report is not None:
                on_report(nothing)
            return nothing

        async def final_units(lives: Sequence[Live]) -> set[tuple[str, str]]:
            liveids = [live.liveid for live in lives]
            return await sink.query(
                backend.final_units, client.userid, chosen, liveids, plan.skip_until
            )

        harvester = Harvester(
            client,
            window=plan.window,
            kinds=chosen,
            rate=rate,
            concurrency=concurrency,
            # Asked a listing page at a time, between commits: a re-sweep of months never
            # holds every final unit of its span at once.
            skip=final_units if plan.skip_until > plan.since else (),
            **dict(harvest_options or {}),
        )
        sink = DatabaseSink(
            backend,
            account=client.userid,
            base_url=client.base_url,
            group_seconds=group_seconds,
            settle=settle,
            clock=now,
            since=plan.since,
            until=plan.until,
            kinds=chosen,
            advance_watermark=plan.advance_to,
            advance_kinds=plan.advance_kinds,
            units_skipped=lambda: harvester.units_skipped,
        )

        try:
            with sole_error():  # an AuthError or a DatabaseError, not a group of one
                async with sink, anyio.create_task_group() as watching:
                    if watch is not None:
                        watching.start_soon(watch, plan, harvester)
                    try:
                        await harvester.run(sink)
                    finally:
                        watching.cancel_scope.cancel()
        finally:  # also when cancelled: what was committed by then
            report = SyncReport(
                target.display,
                plan,
                sink.run_id,
                sink.report,
                units_skipped_by_kind=harvester.units_skipped_by_kind,
                committed_units=sink.committed_units,
                committed_records=sink.committed_records,
                transactions=sink.transactions,
                reconnects=sink.reconnects,
            )
            if on_report is not None and report.harvest is not None:
                on_report(report)
        return report
    finally:
        with anyio.CancelScope(shield=True):
            await call(backend.close)
