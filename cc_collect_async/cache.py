"""`ResponseCache`: replies shared between callers, with single-flight, for web backends.

A page that shows a live's figures calls the vendor once per view, and the vendor allows
about 100 calls a minute: a few dozen visitors exhaust the account. Records of a live that
has ended never change, so the cache keeps them long, and keeps the replies about running
lives only briefly.

Why not an existing cache: HTTP caches key on the URL, and ours carries ``time`` and
``hash``, so it never matches twice; asyncio-only memoisers break the trio promise. Here
the key is (account, base URL, endpoint, normalised parameters), the cache sits above the
request path (a hit spends no rate-limit token), and concurrent identical calls are merged
the way Go's ``singleflight`` does: one caller (the leader) fetches, the others wait on an
``anyio.Event`` and share its result or its error. A leader that is cancelled wakes the
waiters and one of them fetches in its place, so nobody waits forever and no background
task is needed.

Lifetimes. A reply is *final* when it was fetched after its live ended plus
``settle_margin`` (the vendor's statistics settle a while after the end), or, for a listing
or an account-wide peak, after its window closed plus the margin. End times are learned
from the replies that carry them (``lives`` listings and ``duration``). Final replies are
fresh for ``final_ttl``, others for ``live_ttl``. After that an entry is *stale*: for
``stale_while_revalidate`` more seconds it is served at once to callers that arrive while
another caller refreshes it, and for ``stale_if_error`` more seconds it is served when the
refresh fails with an error worth retrying (too fast, server error, transport, garbled
reply). Errors are never stored. The store is bounded by entries and by bytes (the size of
each reply's JSON), least recently used first out.

A reply is stored as its JSON and every caller is given an envelope of its own, decoded from
it: a caller that changes what it got (a model's ``raw``, the dict ``call`` returns) changes
nothing for the next one.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, Literal, TypeAlias

import anyio
import attrs

from . import json_codec
from .beijing import BEIJING, parse_text, parse_wire_time
from .errors import CollectError
from .instrumentation import CacheEvent, CacheOutcome, Instrumentation

__all__ = ["CacheKey", "CacheStats", "CacheUse", "ResponseCache"]

#: Per-call cache use: True (default) serves fresh entries; ``"refresh"`` skips a stored
#: entry and replaces it; False neither reads nor writes the cache nor merges the call.
CacheUse: TypeAlias = Literal[True, False, "refresh"]
#: (account, base URL, endpoint, sorted wire parameters, which API key signed the call).
CacheKey: TypeAlias = tuple[str, str, str, tuple[tuple[str, str | int], ...], str]
Envelope: TypeAlias = dict[str, Any]

_LIVE_PARAMS = ("liveid", "live_id")
# The counter of CacheStats each way a lookup can end adds to.
_COUNTERS: dict[CacheOutcome, str] = {
    "hit": "hits",
    "miss": "misses",
    "joined": "joined",
    "stale": "stale",
    "stale_if_error": "stale_if_error",
    "refresh": "refreshes",
    "bypass": "bypassed",
}
# Endpoints whose parameters describe a closed time window rather than one live.
_WINDOW_ENDPOINTS = frozenset({"lives", "max_parallel"})


@attrs.define
class CacheStats:
    """Counters since the cache was made, and its current size."""

    hits: int = 0
    misses: int = 0
    joined: int = 0
    stale: int = 0
    stale_if_error: int = 0
    refreshes: int = 0
    bypassed: int = 0
    evictions: int = 0
    entries: int = 0
    bytes: int = 0


@attrs.define(slots=True)
class _Entry:
    #: The reply's JSON: decoded afresh for each caller.
    value: bytes
    size: int
    fetched_at: float
    #: Wall time after which a reply is final: the live's end, or the window's, plus the
    #: settle margin; None when unknown (a running live, a room-wide query).
    subject: str | None
    window_end: float | None
    #: A listing that holds a live still running when fetched: never final, whatever its
    #: window (a window closed at 11:00 lists a live that runs past it, end time blank).
    running: bool = False


class _Flight:
    """One fetch in progress, and what its waiters need to know when it ends."""

    __slots__ = ("done", "error", "event", "value")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.done = False
        self.value: bytes | None = None  # the reply's JSON
        self.error: Exception | None = None


def _envelope(data: bytes) -> Envelope:
    """A caller's own envelope, from a stored reply's JSON."""
    envelope: Envelope = json_codec.loads(data)
    return envelope


def _for_waiter(error: BaseException) -> BaseException:
    """A waiter's own copy of the leader's error. Raised as one object in every waiter, the
    error's traceback would grow by each waiter's frames: thousands of lines to log, and
    every waiter's frames kept alive, for a crowd that called with a wrong key."""
    try:
        mine = copy.copy(error)
    except Exception:  # an exception type that cannot be rebuilt from its arguments
        return error
    return mine.with_traceback(None)


def _end_of(text: object) -> float | None:
    """Epoch seconds of a vendor timestamp, or None when blank or unreadable."""
    try:
        when = parse_wire_time(text)
    except ValueError:
        return None
    return None if when is None else when.timestamp()


def _window_end(endpoint: str, wire: Mapping[str, str | int]) -> float | None:
    if endpoint not in _WINDOW_ENDPOINTS or any(p in wire for p in _LIVE_PARAMS):
        return None
    text = wire.get("end_time")
    if not isinstance(text, str):
        return None
    try:
        end = parse_text(text)
    except ValueError:
        return None
    if len(text.strip()) == len("YYYY-MM-DD"):
        end += timedelta(days=1)  # a date names a whole day: take its last moment
    return end.replace(tzinfo=BEIJING).timestamp()


class ResponseCache:
    """Shared replies of single calls, for interactive use; the harvest never uses it.

    Pass one to ``CollectClient(cache=...)``; every client of a process may share it (the
    key holds the account and base URL). ``clock`` is the wall clock (end times are wall
    times); tests pass a fake one.
    """

    def __init__(
        self,
        *,
        max_entries: int = 1024,
        max_bytes: int = 64 * 1024 * 1024,
        live_ttl: float = 10.0,
        final_ttl: float = 24 * 3600.0,
        settle_margin: float = 600.0,
        stale_while_revalidate: float = 30.0,
        stale_if_error: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be at least 1")
        if min(live_ttl, final_ttl, settle_margin, stale_while_revalidate, stale_if_error) < 0:
            raise ValueError("lifetimes and margins must not be negative")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.live_ttl = live_ttl
        self.final_ttl = final_ttl
        self.settle_margin = settle_margin
        self.stale_while_revalidate = stale_while_revalidate
        self.stale_if_error = stale_if_error
        self._clock = clock
        self._store: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._flights: dict[CacheKey, _Flight] = {}
        # End times of lives, learned from replies; bounded like the store, oldest out.
        self._ends: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._stats = CacheStats()
        self._bytes = 0

    def __repr__(self) -> str:
        return f"ResponseCache(entries={len(self._store)}, bytes={self._bytes})"

    # -- public ---------------------------------------------------------------------------

    @staticmethod
    def key(
        account: str,
        base_url: str,
        endpoint: str,
        wire: Mapping[str, str | int],
        *,
        credential: str = "",
    ) -> CacheKey:
        """The cache key of a call: never the signed URL, which changes every second.
        ``credential`` tells apart the API keys a process signs with (the client passes its
        key's :meth:`~cc_collect_async.core.ApiKey.fingerprint`): a reply fetched with the
        right key is not served to a caller with a wrong one, nor a wrong key's refusal to a
        caller with the right one."""
        return (account, base_url, endpoint, tuple(sorted(wire.items())), credential)

    def stats(self) -> CacheStats:
        """A snapshot of the counters and the current size."""
        return attrs.evolve(self._stats, entries=len(self._store), bytes=self._bytes)

    def invalidate(
        self,
        *,
        endpoint: str | None = None,
        liveid: str | None = None,
        account: str | None = None,
    ) -> int:
        """Drop the entries matching every given criterion (all entries when none is
        given); return how many were dropped. Fetches in flight are not affected."""
        dropped = 0
        for key in list(self._store):
            entry = self._store[key]
            if endpoint is not None and key[2] != endpoint:
                continue
            if liveid is not None and entry.subject != liveid:
                continue
            if account is not None and key[0] != account:
                continue
            self._drop(key)
            dropped += 1
        return dropped

    async def fetch(
        self,
        key: CacheKey,
        fetch: Callable[[], Awaitable[Envelope]],
        *,
        use: CacheUse = True,
        instrumentation: Instrumentation | None = None,
    ) -> Envelope:
        """The envelope for ``key``: from the store, from a fetch in flight, or from
        ``fetch()``. Each caller gets an envelope of its own. Each call is counted once (a
        cancelled one too) and told to ``instrumentation``: as joined when it starts waiting
        for another's fetch (also if it then fetches in a cancelled leader's place), else by
        how it ended."""
        outcome: CacheOutcome = "miss" if use is True else "refresh" if use else "bypass"
        counted = False
        try:
            if use is False:
                return await fetch()
            now = self._clock()
            entry = self._store.get(key)
            if use is True and entry is not None:
                age = now - entry.fetched_at
                ttl = self._ttl(key, entry)
                if age < ttl:
                    self._store.move_to_end(key)
                    outcome = "hit"
                    return _envelope(entry.value)
                if age >= ttl + max(self.stale_while_revalidate, self.stale_if_error):
                    self._drop(key)
                    entry = None
            while (flight := self._flights.get(key)) is not None:
                if (
                    use is True
                    and entry is not None
                    and now - entry.fetched_at < self._ttl(key, entry) + self.stale_while_revalidate
                ):
                    outcome = "stale"
                    return _envelope(entry.value)
                if use is True and not counted:
                    outcome, counted = "joined", True
                    self._count(outcome, key[2], instrumentation)
                await flight.event.wait()
                if flight.error is not None:
                    raise _for_waiter(flight.error)
                if flight.done:
                    assert flight.value is not None
                    return _envelope(flight.value)
                # The leader was cancelled: the first waiter to get here fetches in its place.
                now = self._clock()
            value, stale = await self._lead(key, fetch)
            if stale and not counted:
                outcome = "stale_if_error"
            return value
        finally:
            if not counted:
                self._count(outcome, key[2], instrumentation)

    # -- internals ------------------------------------------------------------------------

    def _count(
        self, outcome: CacheOutcome, endpoint: str, instrumentation: Instrumentation | None
    ) -> None:
        counter = _COUNTERS[outcome]
        setattr(self._stats, counter, getattr(self._stats, counter) + 1)
        if instrumentation is not None:
            instrumentation.on_cache(CacheEvent(endpoint=endpoint, outcome=outcome))

    async def _lead(
        self, key: CacheKey, fetch: Callable[[], Awaitable[Envelope]]
    ) -> tuple[Envelope, bool]:
        """Fetch for every caller of ``key``: the envelope, and whether it is the stored
        one, served because the fetch failed."""
        flight = self._flights[key] = _Flight()
        try:
            value = await fetch()
        except CollectError as exc:
            stale = self._stale_for_error(key, exc)
            if stale is None:
                flight.error = exc
                raise
            flight.value, flight.done = stale, True
            return _envelope(stale), True
        except Exception as exc:
            flight.error = exc
            raise
        # Anything else (cancellation above all) leaves the flight neither done nor failed,
        # and its waiters elect a new leader.
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
            flight.event.set()
        flight.value, flight.done = self._put(key, value), True
        return value, False

    def _stale_for_error(self, key: CacheKey, exc: CollectError) -> bytes | None:
        entry = self._store.get(key)
        if entry is None or not exc.retryable:
            return None
        age = self._clock() - entry.fetched_at
        return entry.value if age < self._ttl(key, entry) + self.stale_if_error else None

    def _ttl(self, key: CacheKey, entry: _Entry) -> float:
        if entry.running:
            return self.live_ttl
        settled: float | None = entry.window_end
        if entry.subject is not None:
            settled = self._ends.get((key[0], key[1], entry.subject))
        if settled is not None and entry.fetched_at >= settled + self.settle_margin:
            return self.final_ttl
        return self.live_ttl

    def _put(self, key: CacheKey, value: Envelope) -> bytes:
        """Store ``value`` (unless it alone is over ``max_bytes``); return its JSON."""
        account, base_url, endpoint, items, _ = key
        wire = dict(items)
        running = self._learn(account, base_url, endpoint, wire, value)
        data = json_codec.dumps(value)
        size = len(data)
        if size > self.max_bytes:
            return data
        if key in self._store:
            self._drop(key)
        subject = next((str(wire[p]) for p in _LIVE_PARAMS if p in wire), None)
        self._store[key] = _Entry(
            value=data,
            size=size,
            fetched_at=self._clock(),
            subject=subject,
            window_end=_window_end(endpoint, wire),
            running=running,
        )
        self._bytes += size
        while len(self._store) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._store)))
            self._stats.evictions += 1
        return data

    def _drop(self, key: CacheKey) -> None:
        entry = self._store.pop(key)
        self._bytes -= entry.size

    def _learn(
        self,
        account: str,
        base_url: str,
        endpoint: str,
        wire: Mapping[str, str | int],
        envelope: Envelope,
    ) -> bool:
        """Remember the end times a reply reveals: every live of a listing, and the live a
        ``duration`` reply is about. True when a listed live has none yet (it runs)."""
        data = envelope.get("data")
        found: list[tuple[str, object]] = []
        if endpoint == "lives" and isinstance(data, list):
            found = [
                (str(item["liveid"]), item.get("end_time"))
                for item in data
                if isinstance(item, dict) and item.get("liveid")
            ]
        elif endpoint == "duration" and isinstance(data, dict) and "liveid" in wire:
            found = [(str(wire["liveid"]), data.get("end_time"))]
        running = False
        for liveid, text in found:
            end = _end_of(text)
            if end is None:
                running = running or endpoint == "lives"
                continue
            where = (account, base_url, liveid)
            self._ends[where] = end
            self._ends.move_to_end(where)
        while len(self._ends) > 4 * self.max_entries:
            self._ends.popitem(last=False)
        return running
