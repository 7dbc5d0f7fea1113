"""How the simulator misbehaves on purpose: latency, rate limits, faults, and the counters.

All of it is off by default and configured per :class:`~cc_collect_async.sim.Simulator`
instance through :class:`SimConfig`, so one test can hammer a rate-limited simulator while
another runs against a clean one. Random draws come from RNGs seeded by ``fault_seed``: a
client that sends the same requests in the same order meets the same faults.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import attrs

__all__ = [
    "DEMO_API_KEY",
    "DEMO_USERID",
    "FAULT_KINDS",
    "AccountBuckets",
    "FaultInjector",
    "SimConfig",
    "SimStats",
    "Staller",
    "TokenBucket",
    "normalise_path",
    "retry_after_seconds",
]

DEMO_USERID: Final = "9DC1A878A164F696"
DEMO_API_KEY: Final = "sim-demo-key-0123456789"

FAULT_KINDS: Final = ("http500", "http502", "http503", "drop", "truncate", "slow", "process_fail")
"""Every fault the simulator can inject; ``SimConfig.fault_kinds`` picks among them."""


def normalise_path(path: str) -> str:
    """Collapse repeated slashes and drop a trailing one.

    The vendor's own document spells one path with a double slash and others with or without
    a trailing slash; a route table keyed on the normalised form accepts every spelling.
    """
    parts = [part for part in path.split("/") if part]
    return "/" + "/".join(parts)


def _default_accounts() -> dict[str, str]:
    return {DEMO_USERID: DEMO_API_KEY}


def _accounts_repr(accounts: Mapping[str, str]) -> str:
    # API keys never appear in a repr: show who, not the secret.
    return f"<{len(accounts)} account(s): {', '.join(sorted(accounts))}>"


def _fraction(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be within [0, 1], got {value}")


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


def _check_kinds(instance: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    unknown = sorted(set(value) - set(FAULT_KINDS))
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; expected some of {FAULT_KINDS}")


def _check_rate(instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"rate must be > 0 requests/s (or None for no limit), got {value}")


def _check_retry_after(
    instance: object, attribute: attrs.Attribute[Any], value: float | None
) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"retry_after must be > 0 s (or None: the bucket's wait), not {value}")


def _as_kinds(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _normalise_path_rates(value: Mapping[str, tuple[float, int]]) -> dict[str, tuple[float, int]]:
    rates: dict[str, tuple[float, int]] = {}
    for path, (rate, burst) in value.items():
        if rate <= 0 or burst < 1:
            raise ValueError(f"path rate for {path} must be > 0 with a burst >= 1")
        rates[normalise_path(path)] = (float(rate), int(burst))
    return rates


@attrs.frozen(kw_only=True)
class SimConfig:
    """Accounts, server limits and the misbehaviour knobs of one simulator instance.

    ``rate``/``burst`` form a token bucket per account; ``path_rates`` adds one per account
    and path (keys in any spelling of the vendor path). A rejection spends no token and is
    answered with HTTP 429 + ``Retry-After``, or, for a ``rate_limit_fail_fraction`` share,
    with an HTTP 200 FAIL ``TOO_MANY_REQUEST`` envelope. ``fault_rate`` is the probability
    that a request meets one of ``fault_kinds``; a distinct request (path + parameters other
    than time/hash) meets at most ``max_faults_per_request`` faults, so a retrying client
    always gets through. ``clock`` is the wall clock the signature's ``time`` is checked
    against (replaceable so a test can move it).

    ``retry_after`` is the number of seconds a 429 advertises (60 for a per-minute quota);
    left as None it is the wait until the bucket holds a token, in whole seconds, which is 1
    at any rate of 1 request/s or more.

    Stalls make the server pause like a real one on a cold cache or a garbage collection:
    with probability ``stall`` per request, and with probability ``stall_live`` on the first
    request for a live (when a real server builds its data), the server's event loop blocks
    for a time drawn evenly from ``stall_min``..``stall_max`` seconds, before the rate check.
    Requests that arrived meanwhile then meet the bucket together, as they would a real
    server's. ``block`` is how a stall blocks (``time.sleep``; replaceable in a test).
    """

    accounts: Mapping[str, str] = attrs.field(factory=_default_accounts, repr=_accounts_repr)
    skew_seconds: float = attrs.field(default=300.0, validator=_non_negative)
    max_page_length: int = attrs.field(default=100, validator=_non_negative)
    max_rollcall_page_num: int = attrs.field(default=500, validator=_non_negative)
    latency: float = attrs.field(default=0.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.0, validator=_non_negative)
    rate: float | None = attrs.field(default=None, validator=_check_rate)
    burst: int = attrs.field(default=10, validator=_non_negative)
    path_rates: Mapping[str, tuple[float, int]] = attrs.field(
        factory=dict, converter=_normalise_path_rates
    )
    rate_limit_fail_fraction: float = attrs.field(default=0.0, validator=_fraction)
    fault_rate: float = attrs.field(default=0.0, validator=_fraction)
    fault_kinds: tuple[str, ...] = attrs.field(
        default=FAULT_KINDS, converter=_as_kinds, validator=_check_kinds
    )
    max_faults_per_request: int = attrs.field(default=2, validator=_non_negative)
    slow_seconds: float = attrs.field(default=3.0, validator=_non_negative)
    retry_after: float | None = attrs.field(default=None, validator=_check_retry_after)
    stall: float = attrs.field(default=0.0, validator=_fraction)
    stall_live: float = attrs.field(default=0.0, validator=_fraction)
    stall_min: float = attrs.field(default=0.02, validator=_non_negative)
    stall_max: float = attrs.field(default=0.15, validator=_non_negative)
    fault_seed: int = 0
    clock: Callable[[], float] = attrs.field(default=time.time, eq=False, repr=False)
    block: Callable[[float], None] = attrs.field(default=time.sleep, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.max_page_length < 1 or self.max_rollcall_page_num < 1:
            raise ValueError("max_page_length and max_rollcall_page_num must be >= 1")
        if self.rate is not None and self.burst < 1:
            raise ValueError("burst must be >= 1 when a rate is set")
        if self.fault_rate > 0 and not self.fault_kinds:
            raise ValueError("fault_rate > 0 needs at least one fault kind")
        if self.stall_max < self.stall_min:
            raise ValueError("stall_max must not be below stall_min")


class TokenBucket:
    """``capacity`` tokens refilled at ``rate`` per second on a monotonic clock."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self.rate = rate
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self.stamp = now

    def wait(self, now: float) -> float:
        """Seconds until a token is available (0.0 when one is there now); takes nothing."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1.0


class AccountBuckets:
    """The server's rate limit: the per-account bucket and the optional per-path buckets.

    A request passes only when every bucket that applies has a token, and only then are
    tokens taken, so a rejected request costs the client nothing but time.
    """

    def __init__(
        self,
        rate: float | None,
        burst: int,
        path_rates: Mapping[str, tuple[float, int]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._path_rates = dict(path_rates)
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    @property
    def active(self) -> bool:
        return self._rate is not None or bool(self._path_rates)

    def _bucket(self, key: tuple[str, str], rate: float, burst: int, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate, burst, now)
        return bucket

    def acquire(self, account: str, path: str) -> float:
        """Admit the request (return 0.0) or say how many seconds until it would be admitted.

        ``path`` must be normalised (:func:`normalise_path`), like the ``path_rates`` keys.
        """
        if not self.active:
            return 0.0
        now = self._clock()
        buckets: list[TokenBucket] = []
        if self._rate is not None:
            buckets.append(self._bucket((account, ""), self._rate, self._burst, now))
        limit = self._path_rates.get(path)
        if limit is not None:
            buckets.append(self._bucket((account, path), limit[0], limit[1], now))
        # No bucket when only other paths are limited (a --path-rate without --rate).
        wait = max((bucket.wait(now) for bucket in buckets), default=0.0)
        if wait > 0.0:
            return wait
        for bucket in buckets:
            bucket.take()
        return 0.0

    def reset(self) -> None:
        self._buckets.clear()


class FaultInjector:
    """Draws faults by probability, never more than ``cap`` for one distinct request."""

    def __init__(self, rate: float, kinds: tuple[str, ...], cap: int, seed: int) -> None:
        self._rate = rate
        self._kinds = kinds
        self._cap = cap
        self._rng = random.Random(f"{seed}/faults")
        # Only requests that met a fault are remembered, so a clean run stores nothing.
        self._seen: dict[object, int] = {}

    def draw(self, request_key: object) -> str | None:
        """The fault this request meets, or None to serve it normally."""
        if self._rate <= 0.0 or self._cap <= 0:
            return None
        if self._seen.get(request_key, 0) >= self._cap:
            return None
        if self._rng.random() >= self._rate:
            return None
        self._seen[request_key] = self._seen.get(request_key, 0) + 1
        return self._rng.choice(self._kinds)

    def reset(self) -> None:
        self._seen.clear()


class Staller:
    """Draws the server's stalls: per request, and once per live on its first request."""

    def __init__(self, config: SimConfig) -> None:
        self._per_request = config.stall
        self._per_live = config.stall_live
        self._low = config.stall_min
        self._high = config.stall_max
        self._seed = config.fault_seed
        self._rng = random.Random(f"{self._seed}/stall")
        self._lives: set[str] = set()

    @property
    def active(self) -> bool:
        return self._per_request > 0.0 or self._per_live > 0.0

    def draw(self, liveid: str | None) -> float:
        """Seconds this request blocks the server for (0.0: none)."""
        stall = False
        if self._per_live > 0.0 and liveid is not None and liveid not in self._lives:
            self._lives.add(liveid)
            stall = self._rng.random() < self._per_live
        if not stall and self._per_request > 0.0:
            stall = self._rng.random() < self._per_request
        return self._rng.uniform(self._low, self._high) if stall else 0.0

    def reset(self) -> None:
        """Forget which lives were built and restart the draws, so a rerun meets the same
        stalls."""
        self._lives.clear()
        self._rng = random.Random(f"{self._seed}/stall")


def retry_after_seconds(wait: float) -> int:
    """The ``Retry-After`` value: whole seconds, rounded up, never 0 (0 would invite a storm)."""
    return max(1, math.ceil(wait))


@attrs.define(kw_only=True)
class SimStats:
    """What the simulator has seen since it started (or since ``reset_stats``)."""

    requests: int = 0
    ok: int = 0
    rate_limited: int = 0
    auth_failed: int = 0
    param_failed: int = 0
    not_found: int = 0
    #: How many stalls blocked the server, and for how many seconds in all.
    stalls: int = 0
    stalled: float = 0.0
    faults: dict[str, int] = attrs.field(factory=dict)
    by_path: dict[str, int] = attrs.field(factory=dict)
    #: Requests that reached the rate check, per 100 ms since the first one: what the
    #: server's bucket saw (bunches after a stall show as spikes).
    arrivals: dict[int, int] = attrs.field(factory=dict)
    #: Of those, the ones turned away as too fast, per 100 ms.
    refusals: dict[int, int] = attrs.field(factory=dict)
    _first: float | None = None

    def count_arrival(self, now: float, *, refused: bool) -> None:
        if self._first is None:
            self._first = now
        slot = int((now - self._first) * 10)
        self.arrivals[slot] = self.arrivals.get(slot, 0) + 1
        if refused:
            self.refusals[slot] = self.refusals.get(slot, 0) + 1

    def per_100ms(self, counts: Mapping[int, int]) -> list[int]:
        last = max(self.arrivals, default=-1)
        return [counts.get(slot, 0) for slot in range(last + 1)]

    def count_fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def count_path(self, path: str) -> None:
        self.by_path[path] = self.by_path.get(path, 0) + 1

    @property
    def total_faults(self) -> int:
        return sum(self.faults.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot (copies, so it does not change under the caller)."""
        return {
            "requests": self.requests,
            "ok": self.ok,
            "rate_limited": self.rate_limited,
            "auth_failed": self.auth_failed,
            "param_failed": self.param_failed,
            "not_found": self.not_found,
            "stalls": self.stalls,
            "stalled": self.stalled,
            "faults": dict(self.faults),
            "by_path": dict(self.by_path),
            "arrivals_per_100ms": self.per_100ms(self.arrivals),
            "refusals_per_100ms": self.per_100ms(self.refusals),
        }
