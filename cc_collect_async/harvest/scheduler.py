"""The fan-out harvest: every record of every kind for every live, under the limits.

Shape of a run: one planner walks the lives (a window listing or an explicit list) and starts
a task per unit (live x kind) as soon as a live is known, never more than ``max_units`` at
once. A paginated unit fetches page 1, learns the page count and length the server really
uses, then keeps up to ``lookahead`` further pages in flight while it hands pages on in
order. Everything flows to the consumer through one bounded memory stream, so a slow sink
slows the fetching instead of filling memory. Requests pass the client's one request path,
which applies the concurrency cap, the rate limiter and the retry policy.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Hashable,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import aclosing, asynccontextmanager
from datetime import datetime, timezone
from typing import Any, Literal

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..client import CollectClient
from ..endpoints import RawPage
from ..errors import AuthError, CollectError, DecodeError
from ..governor import Governor
from ..instrumentation import UnitEvent
from ..retry import RetryPolicy
from .events import Batch, Progress, UnitResult
from .listing import list_live_pages
from .plan import (
    DEFAULT_KINDS,
    KINDS,
    EndpointKind,
    Kind,
    Live,
    SummaryKind,
    Unit,
    Window,
    parse_kinds,
)
from .report import HarvestReport, KindCounts, UnitProblem
from .sink import Sink
from .task_groups import sole_error

__all__ = ["Event", "Harvester", "SkipLookup"]

#: What the stream yields: a newly known live, a page of records, or the end of a unit.
Event = Live | Batch | UnitResult

#: Told a page of listed lives, gives the (liveid, kind) units among them an earlier run
#: completed: those are not fetched again.
SkipLookup = Callable[[Sequence[Live]], Awaitable[Collection[tuple[str, str]]]]


@attrs.define
class _PageSlot:
    number: int
    done: anyio.Event = attrs.field(factory=anyio.Event)
    page: RawPage | None = None
    error: CollectError | None = None


# anyio's send, receive and acquire always pass through the event loop once, even when they
# need not wait; per unit of work that was a tenth of a harvest's CPU (benchmarks/). These
# take the item or token at once when they can and wait only when they must. Every caller
# awaits I/O soon after, so cancellation is still noticed promptly.


async def _send(stream: MemoryObjectSendStream[Event], event: Event) -> None:
    try:
        stream.send_nowait(event)
    except anyio.WouldBlock:
        await stream.send(event)


async def _receive(stream: MemoryObjectReceiveStream[Event]) -> Event | None:
    """The next event, or None once the stream has ended."""
    try:
        return stream.receive_nowait()
    except anyio.WouldBlock:
        try:
            return await stream.receive()
        except anyio.EndOfStream:
            return None
    except anyio.EndOfStream:
        return None


def _fixed(units: frozenset[tuple[str, str]]) -> SkipLookup:
    async def lookup(lives: Sequence[Live]) -> Collection[tuple[str, str]]:
        return units

    return lookup


async def _acquire(semaphore: anyio.Semaphore) -> None:
    try:
        semaphore.acquire_nowait()
    except anyio.WouldBlock:
        await semaphore.acquire()


#: Lives listed ahead of the units. A night holds a few thousand lives of a few hundred bytes
#: to a few kilobytes each, so the whole listing of a night fits; only a window of months
#: makes the listing wait for the units (and the ETA appear later).
_LIVES_AHEAD = 20_000


@attrs.define
class _UnitTally:
    """Counts and completeness checks of one running unit."""

    unit: Unit
    kind: Kind
    seen: set[Hashable] = attrs.field(factory=set)
    page_sizes: list[int] = attrs.field(factory=list)
    records: int = 0
    duplicates: int = 0
    issues: list[str] = attrs.field(factory=list)

    def keep_new(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Drop records already delivered for this unit (same natural key)."""
        seen = self.seen
        keys = self.kind.page_keys(items)
        fresh = set(keys)
        if len(fresh) == len(keys) and seen.isdisjoint(fresh):  # the common case
            seen |= fresh
            kept = items
        else:
            kept = []
            for item, key in zip(items, keys, strict=True):
                if key in seen:
                    self.duplicates += 1
                    continue
                seen.add(key)
                kept.append(item)
        self.page_sizes.append(len(items))
        self.records += len(kept)
        return kept

    def check_pages(self, length: int, page_count: int, total: int | None) -> None:
        """Compare what was fetched with what the server said there was."""
        fetched = sum(self.page_sizes)
        if total is not None:
            if fetched < total:
                self.issues.append(f"shortfall: fetched {fetched} of {total} records")
            elif fetched > total:
                self.issues.append(f"overrun: fetched {fetched} records, server reported {total}")
        else:
            for number, size in enumerate(self.page_sizes[:-1], start=1):
                if size != length:
                    self.issues.append(f"page {number} held {size} records, not {length}")
            last = self.page_sizes[-1] if self.page_sizes else 0
            if page_count and not 0 < last <= length:
                self.issues.append(f"last page {page_count} held {last} records")
            if not page_count and fetched:
                self.issues.append(f"overrun: {fetched} records on a reply of 0 pages")
        if self.duplicates:
            self.issues.append(f"{self.duplicates} record(s) repeated across pages, delivered once")

    def result(self, *, requests: int = 0) -> UnitResult:
        return UnitResult(
            self.unit,
            ok=True,
            pages=len(self.page_sizes),
            records=self.records,
            requests=requests,
            issues=tuple(self.issues),
            duplicates=self.duplicates,
        )


class Harvester:
    """Harvest every record of the chosen kinds for a window of lives or an explicit list.

    Either ``window`` (lives listed through ``/collect/live/record``, page by page, units
    starting while the listing goes on) or ``lives`` (``Live`` objects or ``(roomid, liveid)``
    pairs). Requests pass a :class:`~cc_collect_async.governor.Governor`: ``rate`` (requests
    per second, with ``burst``) is the server's limit if known, a ceiling the governor keeps
    at or below; without it the rate starts at ``initial_rate``, opens to a quarter of
    ``concurrency`` per round trip, doubles every round trip until the server first says
    "too fast", then follows the limit it found, never above
    ``max_rate``. ``endpoint_rates`` are known per-endpoint limits; others are learnt.
    ``concurrency`` caps the requests in flight (default: the client's own cap, its pool
    size); below it the governor keeps about rate x round trip in flight.

    Consume it with ``async with harvester.stream() as events`` or ``await harvester.run(sink)``;
    afterwards ``harvester.report`` holds the final account. A harvester runs once.
    """

    def __init__(
        self,
        client: CollectClient,
        *,
        window: Window | None = None,
        lives: Iterable[Live | tuple[str, str]] | None = None,
        kinds: str | Sequence[str] = DEFAULT_KINDS,
        rate: float | None = None,
        burst: int = 1,
        initial_rate: float = 10.0,
        max_rate: float = 10_000.0,
        endpoint_rates: Mapping[str, float] | None = None,
        concurrency: int | None = None,
        retry: RetryPolicy | None = None,
        page_length: int = 1000,
        rollcall_method: Literal["POST", "GET"] = "POST",
        buffer: int = 16,
        skip: Iterable[tuple[str, str]] | SkipLookup = (),
    ) -> None:
        if (window is None) == (lives is None):
            raise ValueError("give either a window or a list of lives")
        self.kinds = parse_kinds(kinds)
        self.window = window
        self._explicit = (
            None
            if lives is None
            else [live if isinstance(live, Live) else Live(*live) for live in lives]
        )
        self.concurrency = concurrency or client.max_concurrency
        self.rate_limiter = Governor(
            rate or None,
            burst=burst,
            initial_rate=initial_rate,
            max_rate=max_rate,
            endpoint_rates=endpoint_rates,
            max_in_flight=self.concurrency,
        )
        self.client = client.with_options(
            rate_limiter=self.rate_limiter,
            endpoint_limiters={},
            retry=retry,
            max_concurrency=self.concurrency,
            cache=False,  # a harvest reads each reply once: caching would only cost memory
        )
        self.page_length = page_length
        self.rollcall_method = rollcall_method
        self.buffer = buffer
        #: Units in progress at once: enough to keep every request slot busy.
        self.max_units = max(2 * self.concurrency, 4)
        self.lookahead = self.concurrency
        #: Units already done by an earlier run, not fetched again: a set of (liveid, kind),
        #: or a lookup asked a listing page at a time (a database's final units).
        self._skip: SkipLookup = skip if callable(skip) else _fixed(frozenset(skip))
        self.report = HarvestReport(
            started_at=datetime.now(timezone.utc), kinds={k: KindCounts() for k in self.kinds}
        )
        self._units_total_by_kind: Counter[str] = Counter()
        self._skipped_by_kind: Counter[str] = Counter()
        self._planning_done = False
        self._finished = False
        self._started = False
        self._fatal: AuthError | None = None
        self._t0 = 0.0  # set on anyio's clock when the harvest starts
        self._rate_samples: deque[tuple[float, int]] = deque()

    # -- consuming ------------------------------------------------------------------------

    @asynccontextmanager
    async def stream(self) -> AsyncIterator[MemoryObjectReceiveStream[Event]]:
        """Run the harvest; yield the stream of events. Leaving the block early cancels it."""
        if self._started:
            raise RuntimeError("a Harvester runs once; make a new one")
        self._started = True
        self._t0 = anyio.current_time()
        send, receive = anyio.create_memory_object_stream[Event](self.buffer)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._main, send)
                try:
                    yield receive
                finally:
                    # Cancel before the stream closes: closing first would wake the units
                    # blocked on a full stream with BrokenResourceError instead of Cancelled.
                    tg.cancel_scope.cancel()
        finally:
            receive.close()
            self._finish()
        if self._fatal is not None:
            raise self._fatal

    async def run(self, sink: Sink) -> HarvestReport:
        """Drive ``sink`` with the whole harvest and return the report.

        The sink is closed in every case, cancellation included. Raises AuthError when the
        server rejects the credentials (after closing the sink), and what the sink raised,
        as itself (not in an exception group).
        """
        with sole_error():
            try:
                async with self.stream() as events:
                    while (event := await _receive(events)) is not None:
                        if isinstance(event, Batch):
                            await sink.write(event)
                        elif isinstance(event, UnitResult):
                            await sink.unit_end(event)
                        else:
                            await sink.live(event)
            finally:
                with anyio.CancelScope(shield=True):
                    await sink.close(self.report)
        return self.report

    def progress(self) -> Progress:
        """A snapshot of the running harvest for a progress display."""
        stats = self.client.stats
        now = anyio.current_time()
        samples = self._rate_samples
        samples.append((now, stats.requests))
        while len(samples) > 2 and now - samples[0][0] > 5.0:
            samples.popleft()
        span = now - samples[0][0]
        rate = (stats.requests - samples[0][1]) / span if span > 0 else 0.0
        kinds = self.report.kinds
        return Progress(
            lives=self.report.lives,
            units_total=self._units_total_by_kind.total(),
            units_done=sum(c.units for c in kinds.values()),
            units_failed=sum(c.failed for c in kinds.values()),
            records=sum(c.records for c in kinds.values()),
            requests=stats.requests,
            retries=stats.retries,
            rate_limited=stats.rate_limited,
            request_rate=rate,
            elapsed=now - self._t0,
            planning_done=self._planning_done,
            records_by_kind={k: c.records for k, c in kinds.items()},
            units_done_by_kind={k: c.units for k, c in kinds.items()},
            units_skipped_by_kind=self.units_skipped_by_kind,
            server_waits={w.endpoint or "": w.until - now for w in self.rate_limiter.waits()},
            units_total_by_kind=dict(self._units_total_by_kind),
        )

    @property
    def units_skipped(self) -> int:
        """Units not fetched because an earlier run had completed them (counted as their
        lives are listed)."""
        return self._skipped_by_kind.total()

    @property
    def units_skipped_by_kind(self) -> dict[str, int]:
        """:attr:`units_skipped`, kind by kind."""
        return dict(self._skipped_by_kind)

    # -- running ------------------------------------------------------------------------

    def _finish(self) -> None:
        report = self.report
        stats = self.client.stats
        report.finished_at = datetime.now(timezone.utc)
        report.duration = anyio.current_time() - self._t0
        report.requests = stats.requests
        report.retries = stats.retries
        report.rate_limited = stats.rate_limited
        report.cancelled = not self._finished and self._fatal is None
        if self._fatal is not None:
            report.fatal = str(self._fatal)

    def _stop(self, error: AuthError, scope: anyio.CancelScope) -> None:
        """Authentication was rejected: every other request would be too. Stop at once."""
        if self._fatal is None:
            self._fatal = error
        scope.cancel()

    async def _main(self, send: MemoryObjectSendStream[Event]) -> None:
        slots = anyio.Semaphore(self.max_units)
        # The lives come from a task of their own that lists without waiting for the units:
        # the next listing page is on its way while the units of this one run (reading it
        # only when the planner ran dry stalled every unit for a round trip per page), and
        # every live, hence the unit total and an ETA, is known within the first minutes.
        found, lives = anyio.create_memory_object_stream[tuple[Live, tuple[str, ...]]](_LIVES_AHEAD)
        async with send, anyio.create_task_group() as tg:
            tg.start_soon(self._list, found, tg.cancel_scope)
            async with lives:
                async for live, kinds in lives:
                    await _send(send, live)
                    for name in kinds:
                        await _acquire(slots)
                        tg.start_soon(
                            self._run_unit, Unit(live, name), send, slots, tg.cancel_scope
                        )
        self._finished = self._fatal is None

    async def _list(
        self,
        found: MemoryObjectSendStream[tuple[Live, tuple[str, ...]]],
        scope: anyio.CancelScope,
    ) -> None:
        """List every live into ``found`` with the kinds to fetch for it (those an earlier
        run did not complete, asked of the skip lookup a page at a time), counting its units
        as it goes."""
        async with found:
            try:
                async with aclosing(self._live_pages()) as pages:
                    async for page in pages:
                        done = await self._skip(page) if page else ()
                        for live in page:
                            self.report.lives += 1
                            kinds = tuple(k for k in self.kinds if (live.liveid, k) not in done)
                            self._skipped_by_kind.update(k for k in self.kinds if k not in kinds)
                            self._units_total_by_kind.update(kinds)
                            await found.send((live, kinds))
                self._planning_done = True
                self.report.lives_listed = True
            except AuthError as exc:
                self._planning_done = True
                self._stop(exc, scope)

    async def _live_pages(self) -> AsyncGenerator[list[Live], None]:
        if self._explicit is not None:
            seen: set[str] = set()
            page: list[Live] = []
            for live in self._explicit:
                if live.liveid not in seen:
                    seen.add(live.liveid)
                    page.append(live)
                if len(page) == self.page_length:
                    yield page
                    page = []
            if page:
                yield page
            return
        assert self.window is not None

        def failed(room: str | None, exc: CollectError) -> None:
            self.report.failures.append(UnitProblem("lives", room or "", "", str(exc)))

        async with aclosing(
            list_live_pages(self.client, self.window, failed, page_length=self.page_length)
        ) as pages:
            async for page in pages:
                yield page

    async def _run_unit(
        self,
        unit: Unit,
        send: MemoryObjectSendStream[Event],
        slots: anyio.Semaphore,
        scope: anyio.CancelScope,
    ) -> None:
        try:
            try:
                result = await self._fetch_unit(unit, send)
            except AuthError as exc:
                self._stop(exc, scope)
                return
            except CollectError as exc:
                result = UnitResult(unit, ok=False, pages=0, records=0, error=str(exc))
            self._account(result)
            await _send(send, result)
        finally:
            slots.release()

    def _account(self, result: UnitResult) -> None:
        hooks = self.client.instrumentation
        if hooks is not None:
            ok = result.ok
            hooks.on_unit(
                UnitEvent(
                    kind=result.unit.kind,
                    outcome="ok" if ok else "failed",
                    records=result.records if ok else 0,
                    pages=result.pages if ok else 0,
                )
            )
        counts = self.report.kinds[result.unit.kind]
        counts.units += 1
        live = result.unit.live
        if not result.ok:
            counts.failed += 1
            reason = result.error or "failed"
            self.report.failures.append(
                UnitProblem(result.unit.kind, live.roomid, live.liveid, reason)
            )
            return
        counts.pages += result.pages
        counts.records += result.records
        counts.duplicates += result.duplicates
        for issue in result.issues:
            self.report.issues.append(
                UnitProblem(result.unit.kind, live.roomid, live.liveid, issue)
            )

    async def _fetch_unit(self, unit: Unit, send: MemoryObjectSendStream[Event]) -> UnitResult:
        kind = KINDS[unit.kind]
        tally = _UnitTally(unit, kind)
        if isinstance(kind, SummaryKind):
            records = [await self._summary(kind, unit.live)]
        elif not isinstance(kind, EndpointKind):
            raise TypeError(f"no way to fetch a {type(kind).__name__}")
        elif kind.endpoint.paging is None:
            records = await self.client.fetch_records(kind.endpoint.name, **kind.params(unit.live))
        else:
            await self._fetch_pages(unit, kind, tally, send)
            return tally.result()
        kept = tally.keep_new(records)
        if tally.duplicates:
            tally.issues.append(
                f"{tally.duplicates} record(s) repeated in the reply, delivered once"
            )
        if kept:
            await _send(send, Batch(unit, 1, kept))
        return tally.result()

    async def _fetch_pages(
        self,
        unit: Unit,
        kind: EndpointKind,
        tally: _UnitTally,
        send: MemoryObjectSendStream[Event],
    ) -> None:
        endpoint = kind.endpoint
        assert endpoint.paging is not None
        params = kind.params(unit.live)
        method = self.rollcall_method if endpoint.name == "rollcall" else None
        wanted = min(self.page_length, endpoint.paging.max_length or math.inf)

        async def fetch(number: int, length: int) -> RawPage:
            return await self.client.fetch_page(
                endpoint.name, number, length, method=method, **params
            )

        first = await fetch(1, int(wanted))
        # Pages are numbered by the length the server reports, not the one asked for.
        length, page_count, total = first.length, first.page_count, first.total
        if page_count <= 1:  # most units: no task group for pages that do not exist
            await self._emit(unit, 1, first, tally, send)
            tally.check_pages(length, page_count, total)
            return
        failure: CollectError | None = None

        async def fetch_into(slot: _PageSlot) -> None:
            try:
                slot.page = await fetch(slot.number, length)
            except CollectError as exc:
                slot.error = exc
            finally:
                slot.done.set()

        async with anyio.create_task_group() as tg:
            pending: deque[_PageSlot] = deque()
            next_page = 2

            def start_more() -> None:
                nonlocal next_page
                while next_page <= page_count and len(pending) < self.lookahead:
                    slot = _PageSlot(next_page)
                    pending.append(slot)
                    tg.start_soon(fetch_into, slot)
                    next_page += 1

            start_more()
            await self._emit(unit, 1, first, tally, send)
            while pending:
                slot = pending.popleft()
                await slot.done.wait()
                if slot.error is None and slot.page is not None and slot.page.length != length:
                    slot.error = DecodeError(
                        f"page {slot.number} reports page length {slot.page.length}, "
                        f"page 1 reported {length}",
                        endpoint=endpoint.name,
                    )
                if slot.error is not None:
                    failure = slot.error
                    tg.cancel_scope.cancel()
                    break
                assert slot.page is not None
                # A later page may announce more pages than the first did (records added).
                page_count = max(page_count, slot.page.page_count)
                total = slot.page.total if slot.page.total is not None else total
                start_more()
                await self._emit(unit, slot.number, slot.page, tally, send)
        if failure is not None:
            raise failure
        tally.check_pages(length, page_count, total)

    async def _emit(
        self,
        unit: Unit,
        number: int,
        page: RawPage,
        tally: _UnitTally,
        send: MemoryObjectSendStream[Event],
    ) -> None:
        kept = tally.keep_new(page.items)
        if kept:
            await _send(send, Batch(unit, number, kept))

    async def _summary(self, kind: SummaryKind, live: Live) -> dict[str, Any]:
        """The composite per-live summary: each part's reply data under its field."""
        data: dict[str, Any] = {}
        for part in kind.parts:
            envelope = await self.client.call(part.endpoint, **part.params(live))
            data[part.field] = envelope.get("data")
        return kind.record(live, data)
