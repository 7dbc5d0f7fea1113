"""Hooks that tell metrics systems what the request path, the cache and the harvest did.

httpx's ``event_hooks`` do not see the aiohttp engine, so the hooks sit on the request path
itself, and report what only it knows: the attempt number, the time spent waiting for the
rate limiter, the error a reply amounted to. Hooks are synchronous and called inline, so
they must be cheap (increment a counter, observe a histogram); a hook that raises is logged
once and then ignored, because a broken dashboard must never fail a vendor call.

Implement any subset of :class:`Instrumentation`'s methods (subclass it for no-op defaults)
and pass the object as ``CollectClient(instrumentation=...)``; a list is accepted too. The
adapters in :mod:`cc_collect_async.metrics` turn the events into OpenTelemetry or Prometheus
metrics. No event carries a live, room or viewer id: those would make a label per live.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Literal

import attrs

__all__ = [
    "AttemptEvent",
    "CacheEvent",
    "CacheOutcome",
    "CallEvent",
    "Instrumentation",
    "UnitEvent",
    "as_instrumentation",
]

logger = logging.getLogger("cc_collect_async.instrumentation")


@attrs.frozen(kw_only=True)
class AttemptEvent:
    """One HTTP exchange (a retry is another attempt, signed afresh)."""

    endpoint: str  #: the endpoint's name in ``ENDPOINTS`` (``"summary"``, ``"chat"``, ...)
    path: str  #: the vendor's path, a low-cardinality template (no ids in it)
    method: str
    server_address: str
    server_port: int | None
    attempt: int  #: 1-based
    #: HTTP status of the reply; None when no reply came (connection error, timeout).
    status: int | None
    #: Class name of the error the attempt amounted to (``"RateLimitedError"``), or None.
    error_type: str | None
    #: Seconds from sending the request to classifying the reply.
    duration: float
    #: Seconds spent waiting for the rate limiters and the concurrency cap before sending.
    limiter_wait: float


@attrs.frozen(kw_only=True)
class CallEvent:
    """One call of an endpoint: every attempt it took, and how it ended."""

    endpoint: str
    attempts: int
    #: ``"ok"`` or the class name of the error the call raised.
    outcome: str
    #: Seconds from the first attempt's start to the result, backoff included.
    duration: float


CacheOutcome = Literal["hit", "miss", "stale", "stale_if_error", "joined", "refresh", "bypass"]


@attrs.frozen(kw_only=True)
class CacheEvent:
    """One lookup in a :class:`~cc_collect_async.cache.ResponseCache`.

    ``hit``: fresh entry; ``miss``: this caller fetched; ``joined``: it waited for another
    caller's fetch; ``stale``: a stale entry served while another caller refreshes it;
    ``stale_if_error``: a stale entry served because the refresh failed; ``refresh``: the
    caller asked to skip the entry; ``bypass``: the caller asked not to use the cache.
    """

    endpoint: str
    outcome: CacheOutcome


@attrs.frozen(kw_only=True)
class UnitEvent:
    """One (live, kind) unit of a harvest, when it ends."""

    kind: str
    #: ``"ok"`` or ``"failed"``.
    outcome: str
    #: Records and pages delivered (0 for a failed unit: its batches are void).
    records: int
    pages: int


class Instrumentation:
    """The hooks, each a no-op here: override the ones you need.

    Called synchronously on the event loop, from the task that made the request; keep them
    fast and non-blocking.
    """

    def on_attempt(self, event: AttemptEvent) -> None:
        """After each HTTP attempt."""

    def on_call(self, event: CallEvent) -> None:
        """After each endpoint call, successful or not."""

    def on_cache(self, event: CacheEvent) -> None:
        """After each cache lookup."""

    def on_unit(self, event: UnitEvent) -> None:
        """After each harvest unit ends."""


class _Fanout(Instrumentation):
    """Several instruments behind one, each hook guarded: the first exception a hook raises
    is logged with its traceback, later ones of the same hook are dropped silently."""

    def __init__(self, instruments: Sequence[object]) -> None:
        self.instruments = tuple(instruments)
        self._broken: set[tuple[int, str]] = set()

    def _emit(self, hook: str, event: object) -> None:
        for index, instrument in enumerate(self.instruments):
            method = getattr(instrument, hook, None)
            if method is None:
                continue
            try:
                method(event)
            except Exception:
                if (index, hook) not in self._broken:
                    self._broken.add((index, hook))
                    logger.exception(
                        "instrumentation hook %s.%s raised (its later errors are not logged)",
                        type(instrument).__name__,
                        hook,
                    )

    def on_attempt(self, event: AttemptEvent) -> None:
        self._emit("on_attempt", event)

    def on_call(self, event: CallEvent) -> None:
        self._emit("on_call", event)

    def on_cache(self, event: CacheEvent) -> None:
        self._emit("on_cache", event)

    def on_unit(self, event: UnitEvent) -> None:
        self._emit("on_unit", event)


def as_instrumentation(value: object | Iterable[object] | None) -> Instrumentation | None:
    """One guarded :class:`Instrumentation` from an instrument, a list of them, or None."""
    if value is None:
        return None
    if isinstance(value, _Fanout):
        return value
    if isinstance(value, list | tuple):
        return _Fanout(value) if value else None
    return _Fanout([value])
