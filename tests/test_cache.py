"""ResponseCache on its own: single-flight, hand-over on cancellation, lifetimes, staleness,
bounds. A fake wall clock drives every lifetime; fetches are gated by events, so the tests
decide exactly who is in flight when."""

from __future__ import annotations

import traceback
from typing import Any

import anyio
import pytest

from cc_collect_async.cache import CacheKey, ResponseCache
from cc_collect_async.errors import AuthError, RateLimitedError, ServerError
from cc_collect_async.instrumentation import CacheEvent, Instrumentation

pytestmark = pytest.mark.anyio

# 2026-11-01 12:00 Beijing time.
NOON = 1_793_505_600.0


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Upstream:
    """A fetch that counts its calls and, while ``gate`` is set, waits for it to open."""

    def __init__(self, value: dict[str, Any] | None = None) -> None:
        self.calls = 0
        self.value = value or {"result": "OK", "data": {"n": 1}}
        self.error: Exception | None = None
        self.gate: anyio.Event | None = None
        self.entered = anyio.Event()

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return {**self.value, "call": self.calls}


def key(endpoint: str = "summary", **wire: str | int) -> CacheKey:
    params: dict[str, str | int] = (
        {"userid": "U1", **wire} if wire else {"userid": "U1", "liveid": "L1"}
    )
    return ResponseCache.key("U1", "http://sim", endpoint, params)


async def test_concurrent_identical_calls_make_one_fetch_and_share_it() -> None:
    cache = ResponseCache(clock=Clock())
    upstream = Upstream()
    upstream.gate = anyio.Event()
    results: list[dict[str, Any]] = []

    async def caller() -> None:
        results.append(await cache.fetch(key(), upstream))

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(caller)
        await upstream.entered.wait()
        await anyio.wait_all_tasks_blocked()
        upstream.gate.set()
    assert upstream.calls == 1
    assert len(results) == 100 and all(r["call"] == 1 for r in results)
    stats = cache.stats()
    assert (stats.misses, stats.joined, stats.hits) == (1, 99, 0)
    assert (await cache.fetch(key(), upstream))["call"] == 1
    assert cache.stats().hits == 1


async def test_an_error_is_shared_by_the_waiters_and_never_stored() -> None:
    cache = ResponseCache(clock=Clock())
    upstream = Upstream()
    upstream.gate = anyio.Event()
    upstream.error = ServerError("boom", endpoint="summary", status=502)
    errors: list[BaseException] = []

    async def caller() -> None:
        try:
            await cache.fetch(key(), upstream)
        except ServerError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(caller)
        await upstream.entered.wait()
        await anyio.wait_all_tasks_blocked()
        upstream.gate.set()
    assert upstream.calls == 1 and len(errors) == 5
    upstream.error, upstream.gate = None, None
    assert (await cache.fetch(key(), upstream))["call"] == 2
    assert cache.stats().entries == 1


async def test_every_caller_gets_an_envelope_of_its_own() -> None:
    """What one caller does to its reply (a model's ``raw``, ``call``'s dict) is not what
    the next caller gets: the leader, its waiters and later hits each have their own."""
    cache = ResponseCache(clock=Clock())
    upstream = Upstream({"result": "OK", "data": {"n": 1, "replies": [{"a": 1}]}})
    upstream.gate = anyio.Event()
    got: list[dict[str, Any]] = []

    async def caller() -> None:
        envelope = await cache.fetch(key(), upstream)
        got.append(envelope)
        envelope["data"]["n"] = -1
        envelope["data"]["replies"][0]["a"] = -1

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(caller)
        await upstream.entered.wait()
        await anyio.wait_all_tasks_blocked()
        upstream.gate.set()
    assert upstream.calls == 1 and cache.stats().joined == 3
    assert len({id(envelope) for envelope in got}) == 4
    assert await cache.fetch(key(), upstream) == {
        "result": "OK",
        "data": {"n": 1, "replies": [{"a": 1}]},
        "call": 1,
    }


async def test_each_waiter_raises_its_own_copy_of_the_error() -> None:
    """One error object raised in every waiter grew by each waiter's frames: 50 waiters
    made a traceback of 254 frames. Each now has its own, with the leader's details."""
    cache = ResponseCache(clock=Clock())
    upstream = Upstream()
    upstream.gate = anyio.Event()
    upstream.error = AuthError("AUTH_FAIL", endpoint="summary", status=200)
    errors: list[AuthError] = []

    async def caller() -> None:
        try:
            await cache.fetch(key(), upstream)
        except AuthError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(caller)
        await upstream.entered.wait()
        await anyio.wait_all_tasks_blocked()
        upstream.gate.set()
    assert upstream.calls == 1 and len(errors) == 50
    assert len({id(exc) for exc in errors}) == 50
    assert {(str(exc), exc.endpoint, exc.status) for exc in errors} == {
        ("AUTH_FAIL [summary] (HTTP 200)", "summary", 200)
    }
    assert max(len(traceback.extract_tb(exc.__traceback__)) for exc in errors) <= 4


async def test_replies_fetched_with_different_api_keys_are_kept_apart() -> None:
    """Same account, two keys: a right key's reply is not served to a wrong key, nor does
    a right key's call join a wrong key's flight (and share its refusal)."""
    cache = ResponseCache(clock=Clock())
    right, wrong = Upstream(), Upstream()
    wrong.error = AuthError("AUTH_FAIL", endpoint="summary")
    wrong.gate = anyio.Event()
    as_right = ResponseCache.key("U1", "http://sim", "summary", {"liveid": "L1"}, credential="a")
    as_wrong = ResponseCache.key("U1", "http://sim", "summary", {"liveid": "L1"}, credential="b")
    outcomes: list[str] = []

    async def call(which: CacheKey, upstream: Upstream) -> None:
        try:
            await cache.fetch(which, upstream)
            outcomes.append("ok")
        except AuthError:
            outcomes.append("refused")

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, as_wrong, wrong)
        await wrong.entered.wait()
        tg.start_soon(call, as_right, right)
        await anyio.wait_all_tasks_blocked()
        wrong.gate.set()
    assert sorted(outcomes) == ["ok", "refused"] and right.calls == 1
    wrong.gate = None
    with pytest.raises(AuthError):  # the right key's stored reply is not the wrong key's
        await cache.fetch(as_wrong, wrong)
    assert (right.calls, wrong.calls) == (1, 2)


async def test_a_cancelled_leader_hands_over_to_a_waiter() -> None:
    cache = ResponseCache(clock=Clock())
    upstream = Upstream()
    upstream.gate = anyio.Event()
    results: list[int] = []

    async def waiter() -> None:
        results.append((await cache.fetch(key(), upstream))["call"])

    leader_scope = anyio.CancelScope()

    async def leader() -> None:
        with leader_scope:
            await cache.fetch(key(), upstream)
            results.append(-1)  # never: the leader is cancelled

    async with anyio.create_task_group() as tg:
        tg.start_soon(leader)
        await upstream.entered.wait()
        for _ in range(3):
            tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert cache.stats().joined == 3
        upstream.entered = anyio.Event()
        leader_scope.cancel()
        # One waiter takes over and fetches; the other two wait for it.
        await upstream.entered.wait()
        await anyio.wait_all_tasks_blocked()
        upstream.gate.set()
    assert upstream.calls == 2
    assert results == [2, 2, 2]
    # Each lookup counted once: the cancelled leader's miss, three joined (the one that took
    # over among them, not counted again as a miss, nor the others as joining twice).
    stats = cache.stats()
    assert (stats.misses, stats.joined) == (1, 3)


async def test_running_lives_expire_soon_and_ended_ones_are_kept_long() -> None:
    clock = Clock()
    cache = ResponseCache(clock=clock, live_ttl=10, final_ttl=3600, settle_margin=600)
    upstream = Upstream()
    assert (await cache.fetch(key(), upstream))["call"] == 1
    clock.now += 9
    assert (await cache.fetch(key(), upstream))["call"] == 1
    clock.now += 2
    assert (await cache.fetch(key(), upstream))["call"] == 2  # not known to have ended

    # A duration reply says L1 ended two hours ago (Beijing time): the entry fetched after
    # its end plus the settle margin is final, and kept for final_ttl.
    duration = Upstream({"result": "OK", "data": {"end_time": "2026-11-01 10:00:00 "}})
    await cache.fetch(key("duration"), duration)
    clock.now += 3000
    assert (await cache.fetch(key(), upstream))["call"] == 2
    clock.now += 700
    assert (await cache.fetch(key(), upstream))["call"] == 3


async def test_a_live_that_ended_within_the_settle_margin_is_not_final_yet() -> None:
    clock = Clock()
    cache = ResponseCache(clock=clock, live_ttl=10, final_ttl=3600, settle_margin=600)
    listing = Upstream(
        {"result": "OK", "data": [{"liveid": "L1", "end_time": "2026-11-01 11:55:00"}]}
    )
    await cache.fetch(
        key("lives", start_time="2026-11-01 00:00", end_time="2026-11-02 00:00"), listing
    )
    upstream = Upstream()
    await cache.fetch(key(), upstream)
    clock.now += 11
    assert (await cache.fetch(key(), upstream))["call"] == 2  # 12:00 < 11:55 + 10 min
    clock.now += 600
    assert (await cache.fetch(key(), upstream))["call"] == 3
    clock.now += 1000
    assert (await cache.fetch(key(), upstream))["call"] == 3


async def test_past_windows_are_final_and_the_current_one_is_not() -> None:
    clock = Clock()
    cache = ResponseCache(clock=clock, live_ttl=10, final_ttl=3600)
    past = key("lives", start_time="2026-10-30 00:00", end_time="2026-10-31 00:00")
    today = key("lives", start_time="2026-11-01 00:00", end_time="2026-11-02 00:00")
    peak = key("max_parallel", start_time="2026-10-30", end_time="2026-10-31")
    upstream = Upstream({"result": "OK", "data": []})
    for k in (past, today, peak):
        await cache.fetch(k, upstream)
    clock.now += 60
    for k in (past, today, peak):
        await cache.fetch(k, upstream)
    assert upstream.calls == 4  # only today's listing was fetched again


async def test_a_past_windows_listing_with_a_running_live_is_not_final() -> None:
    """A window closed at 11:00 lists a live that runs on past it, its end time blank: the
    listing is fetched again after live_ttl (not kept a day), until the live has ended."""
    clock = Clock()  # 12:00
    cache = ResponseCache(clock=clock, live_ttl=10, final_ttl=24 * 3600)
    window = key("lives", start_time="2026-11-01 10:00", end_time="2026-11-01 11:00")
    running = {"liveid": "L1", "start_time": "2026-11-01 10:30:00", "end_time": ""}
    upstream = Upstream({"result": "OK", "data": [running]})
    await cache.fetch(window, upstream)
    clock.now += 6 * 3600
    listing = await cache.fetch(window, upstream)
    assert upstream.calls == 2 and listing["call"] == 2
    upstream.value = {"result": "OK", "data": [{**running, "end_time": "2026-11-01 13:00:00"}]}
    clock.now += 60
    await cache.fetch(window, upstream)
    clock.now += 3600
    assert (await cache.fetch(window, upstream))["call"] == 3  # ended: kept now


async def test_stale_while_revalidate_serves_others_while_one_refreshes() -> None:
    clock = Clock()
    cache = ResponseCache(clock=clock, live_ttl=10, stale_while_revalidate=30)
    upstream = Upstream()
    await cache.fetch(key(), upstream)
    clock.now += 15
    upstream.gate = anyio.Event()
    upstream.entered = anyio.Event()
    served: list[int] = []

    async def caller() -> None:
        served.append((await cache.fetch(key(), upstream))["call"])

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await upstream.entered.wait()
        for _ in range(3):
            await caller()  # answered at once from the stale entry
        assert served == [1, 1, 1]
        upstream.gate.set()
    assert served == [1, 1, 1, 2]
    assert cache.stats().stale == 3


async def test_stale_if_error_serves_the_last_value_when_the_vendor_fails() -> None:
    clock = Clock()
    cache = ResponseCache(clock=clock, live_ttl=10, stale_if_error=100)
    upstream = Upstream()
    await cache.fetch(key(), upstream)
    clock.now += 50
    upstream.error = RateLimitedError("too fast", endpoint="summary", status=429)
    assert (await cache.fetch(key(), upstream))["call"] == 1
    upstream.error = ServerError("down", endpoint="summary", status=503)
    assert (await cache.fetch(key(), upstream))["call"] == 1
    assert cache.stats().stale_if_error == 2
    upstream.error = AuthError("bad key", endpoint="summary", status=403)
    with pytest.raises(AuthError):
        await cache.fetch(key(), upstream)  # not transient: the caller must hear about it
    clock.now += 100
    upstream.error = ServerError("down", endpoint="summary", status=503)
    with pytest.raises(ServerError):
        await cache.fetch(key(), upstream)  # too old to stand in
    # One count per lookup: a stale stand-in is not also a miss.
    stats = cache.stats()
    assert (stats.misses, stats.stale_if_error) == (3, 2)


async def test_bounded_by_entries_and_bytes_least_recently_used_out() -> None:
    cache = ResponseCache(clock=Clock(), max_entries=2)
    upstream = Upstream()
    await cache.fetch(key(liveid="A"), upstream)
    await cache.fetch(key(liveid="B"), upstream)
    await cache.fetch(key(liveid="A"), upstream)  # A is now the most recent
    await cache.fetch(key(liveid="C"), upstream)
    assert cache.stats().entries == 2 and cache.stats().evictions == 1
    await cache.fetch(key(liveid="A"), upstream)
    assert upstream.calls == 3  # A stayed, B went

    big = Upstream({"result": "OK", "data": "x" * 1000})
    small = ResponseCache(clock=Clock(), max_bytes=2500)
    for live in "ABC":
        await small.fetch(key(liveid=live), big)
    assert small.stats().entries == 2 and 2000 < small.stats().bytes <= 2500
    tiny = ResponseCache(clock=Clock(), max_bytes=100)
    await tiny.fetch(key(), big)
    assert tiny.stats().entries == 0  # larger than the whole cache: never stored


async def test_per_call_refresh_and_bypass_and_invalidate() -> None:
    cache = ResponseCache(clock=Clock())
    upstream = Upstream()
    await cache.fetch(key(), upstream)
    assert (await cache.fetch(key(), upstream, use="refresh"))["call"] == 2
    assert (await cache.fetch(key(), upstream))["call"] == 2
    assert (await cache.fetch(key(), upstream, use=False))["call"] == 3
    assert (await cache.fetch(key(), upstream))["call"] == 2  # bypass stored nothing
    await cache.fetch(key("chat", liveid="L1", roomid="R1"), upstream)
    await cache.fetch(key(liveid="L2"), upstream)
    assert cache.invalidate(liveid="L1", endpoint="summary") == 1
    assert cache.invalidate(liveid="L1") == 1
    assert cache.invalidate() == 1
    assert cache.stats().entries == 0 and cache.stats().bytes == 0


async def test_lookups_are_reported_to_the_instrumentation() -> None:
    seen: list[str] = []

    class Recorder(Instrumentation):
        def on_cache(self, event: CacheEvent) -> None:
            seen.append(f"{event.endpoint}:{event.outcome}")

    cache = ResponseCache(clock=Clock())
    upstream = Upstream()
    for use in (True, True, "refresh", False):
        await cache.fetch(key(), upstream, use=use, instrumentation=Recorder())  # type: ignore[arg-type]
    assert seen == ["summary:miss", "summary:hit", "summary:refresh", "summary:bypass"]
