"""Rate limiters on virtual time: the token bucket's schedule, pauses after "too fast", a
stalled event loop, cancelled waiters, and the adaptive limiter's cuts and climbs. No real
waiting: the event loop's own clock (asyncio's, or trio's MockClock) jumps to the next timer
whenever every task waits, so the limiters run unpatched on the clock they get in use."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import respx
from conftest import jump

from cc_collect_async import (
    AdaptiveRateLimiter,
    CollectClient,
    RateLimitedError,
    RateLimiter,
    RetryPolicy,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend(virtual_anyio_backend: tuple[str, Any]) -> tuple[str, Any]:
    return virtual_anyio_backend


def approx(values: list[float]) -> Any:
    return pytest.approx(values, abs=1e-6)


async def one_by_one(limiter: RateLimiter, count: int) -> list[float]:
    """When each of ``count`` acquires, made one after the other, got through."""
    start = anyio.current_time()
    released = []
    for _ in range(count):
        await limiter.acquire()
        released.append(anyio.current_time() - start)
    return released


async def all_at_once(limiter: RateLimiter, count: int) -> list[float]:
    """When each of ``count`` callers arriving together got through, in order."""
    start = anyio.current_time()
    released: list[float] = []

    async def caller() -> None:
        await limiter.acquire()
        released.append(anyio.current_time() - start)

    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(caller)
    return sorted(released)


# -- RateLimiter -------------------------------------------------------------------------------


async def test_requests_are_spaced_by_the_rate() -> None:
    assert await one_by_one(RateLimiter(rate=2.0), 5) == approx([0.0, 0.5, 1.0, 1.5, 2.0])


async def test_concurrent_callers_reserve_consecutive_slots() -> None:
    released = await all_at_once(RateLimiter(rate=4.0), 5)
    assert released == approx([0.0, 0.25, 0.5, 0.75, 1.0])


async def test_burst_passes_at_once_then_the_rate_applies() -> None:
    released = await all_at_once(RateLimiter(rate=1.0, burst=3), 5)
    assert released == approx([0.0, 0.0, 0.0, 1.0, 2.0])


async def test_idle_time_refills_the_burst_but_no_more() -> None:
    limiter = RateLimiter(rate=1.0, burst=3)
    await all_at_once(limiter, 3)
    await anyio.sleep(1000.0)  # a long pause does not bank more than `burst` tokens
    assert await all_at_once(limiter, 4) == approx([0.0, 0.0, 0.0, 1.0])


async def test_too_fast_pauses_every_caller() -> None:
    limiter = RateLimiter(rate=100.0)
    await limiter.acquire()
    limiter.on_rate_limited(retry_after=5.0)
    assert limiter.rate_limited == 1
    assert await one_by_one(limiter, 2) == approx([5.0, 5.01])


async def test_too_fast_without_retry_after_does_not_pause() -> None:
    limiter = RateLimiter(rate=100.0)
    limiter.on_rate_limited()
    limiter.on_rate_limited(0.0)
    assert limiter.rate_limited == 2
    assert await one_by_one(limiter, 1) == approx([0.0])


async def released_after_a_stall(limiter: RateLimiter, stall: float) -> list[float]:
    """Six callers at once; then the event loop is blocked for ``stall`` seconds (the clock
    jumps with nobody running). When each caller was let through, from the start."""
    start = anyio.current_time()
    released: list[float] = []

    async def caller() -> None:
        await limiter.acquire()
        released.append(round(anyio.current_time() - start, 6))

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(caller)
        await anyio.sleep(0.001)  # everyone has reserved a slot (0.0 .. 0.5)
        jump(stall - 0.001)
    return released


async def test_a_stall_moves_the_waiting_callers_back(anyio_backend: Any) -> None:
    released = await released_after_a_stall(RateLimiter(rate=10.0), stall=1.0)
    # Slots 0.1-0.5 s all passed during the stall. Two slots of lateness are caught up at
    # once; the rest keep their spacing instead of bursting out together at 1.0 s.
    if anyio_backend[0] == "asyncio":  # wakes the sleepers in the order of their slots
        assert released == approx([0.0, 1.0, 1.0, 1.0, 1.1, 1.2])
    else:  # trio wakes a batch in random order: a later slot may count its lateness first
        assert released[0] == 0.0
        assert released[-1] >= 1.1 - 1e-6


async def test_a_little_lateness_is_caught_up() -> None:
    released = await released_after_a_stall(RateLimiter(rate=10.0), stall=0.15)
    # 50 ms late is within two slots: the schedule stands (timer slack must not wear the rate).
    assert sorted(released) == approx([0.0, 0.15, 0.2, 0.3, 0.4, 0.5])


@pytest.mark.parametrize(
    ("rate", "burst"), [(0.0, 1), (-1.0, 1), (math.inf, 1), (math.nan, 1), (1.0, 0)]
)
def test_bad_settings_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate, burst)


def test_repr() -> None:
    assert repr(RateLimiter(2.5, burst=4)) == "RateLimiter(rate=2.5, burst=4)"


# -- AdaptiveRateLimiter -----------------------------------------------------------------------


def test_adaptive_starts_at_initial_within_ceiling() -> None:
    assert AdaptiveRateLimiter(initial=10.0).rate == 10.0
    assert AdaptiveRateLimiter(initial=50.0, ceiling=20.0).rate == 20.0


async def test_rate_is_cut_on_too_fast() -> None:
    limiter = AdaptiveRateLimiter(initial=10.0, decrease=0.5)
    limiter.on_rate_limited()
    assert limiter.rate == 5.0
    assert limiter.rate_limited == 1


async def test_one_cut_per_burst_of_rejections() -> None:
    limiter = AdaptiveRateLimiter(initial=10.0, decrease=0.5)
    for _ in range(8):  # requests already in flight all bounce at once
        limiter.on_rate_limited()
    assert limiter.rate == 5.0
    assert limiter.rate_limited == 8
    await anyio.sleep(0.1)  # still within the same round trip
    limiter.on_rate_limited()
    assert limiter.rate == 5.0
    await anyio.sleep(1.0)  # a fresh rejection later is a new signal
    limiter.on_rate_limited()
    assert limiter.rate == 2.5


async def test_never_below_floor() -> None:
    limiter = AdaptiveRateLimiter(initial=10.0, floor=0.5, decrease=0.5)
    for _ in range(50):
        await anyio.sleep(10.0)
        limiter.on_rate_limited()
        assert limiter.rate >= 0.5
    assert limiter.rate == 0.5


async def busy_second(limiter: AdaptiveRateLimiter, seconds: float = 1.0) -> None:
    """Let ``seconds`` pass, then send two requests at once so the second has to wait for its
    token (the rate is what holds traffic back), then report a success."""
    await anyio.sleep(seconds)
    await all_at_once(limiter, 2)
    limiter.on_success()


async def test_climbs_on_success_while_the_rate_binds() -> None:
    limiter = AdaptiveRateLimiter(initial=10.0, ceiling=1000.0)
    limiter.on_success()  # starts the clock of the climb
    assert limiter.rate == 10.0
    rates = []
    for _ in range(5):
        await busy_second(limiter)
        rates.append(limiter.rate)
    assert rates[0] > 10.0
    assert rates == sorted(set(rates))  # strictly increasing


async def test_no_climb_while_the_rate_does_not_bind() -> None:
    limiter = AdaptiveRateLimiter(initial=10.0)
    limiter.on_success()
    for _ in range(20):
        await anyio.sleep(1.0)
        assert await one_by_one(limiter, 1) == [0.0]  # one a second at 10/s: nobody waits
        limiter.on_success()
    assert limiter.rate == 10.0


async def test_a_long_gap_climbs_no_more_than_a_second() -> None:
    after_one_second = AdaptiveRateLimiter(initial=10.0)
    after_one_second.on_success()
    await busy_second(after_one_second, 1.0)
    after_an_hour = AdaptiveRateLimiter(initial=10.0)
    after_an_hour.on_success()
    await busy_second(after_an_hour, 3600.0)
    assert after_one_second.rate > 10.0
    assert after_an_hour.rate == pytest.approx(after_one_second.rate)


async def test_successes_in_quick_succession_climb_no_faster() -> None:
    limiter = AdaptiveRateLimiter(initial=10.0)
    limiter.on_success()
    await anyio.sleep(0.01)
    await limiter.acquire()
    limiter.on_success()
    for _ in range(100):
        limiter.on_success()
    assert limiter.rate == 10.0


async def test_never_above_ceiling() -> None:
    limiter = AdaptiveRateLimiter(initial=10.0, ceiling=40.0)
    limiter.on_success()
    for _ in range(200):
        await busy_second(limiter)
        assert limiter.rate <= 40.0
    assert limiter.rate == 40.0


async def test_climb_is_quick_below_the_limit_seen_and_cautious_near_it() -> None:
    limiter = AdaptiveRateLimiter(initial=100.0, decrease=0.5)
    limiter.on_success()
    limiter.on_rate_limited()  # the server objected at 100/s
    assert limiter.rate == 50.0
    growth = []
    for _ in range(40):
        before = limiter.rate
        await busy_second(limiter)
        growth.append(limiter.rate / before)
    assert all(g > 1.0 for g in growth)  # it keeps probing upwards...
    assert growth[0] > growth[-1]  # ...quickly far below the limit, cautiously near it
    assert limiter.rate > 100.0


async def test_requester_reports_rejections_to_the_limiter(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    limiter = AdaptiveRateLimiter(initial=10.0, decrease=0.5)
    router.get("/collect/live/usercount/").respond(429, headers={"Retry-After": "3"})
    start = anyio.current_time()
    async with make_client(rate_limiter=limiter, retry=RetryPolicy(max_attempts=2)) as client:
        with pytest.raises(RateLimitedError):
            await client.user_count("L1")
    assert limiter.rate_limited == 2
    # Two rejections 3 s apart are two signals: 10 -> 5 -> 2.5.
    assert limiter.rate == 2.5
    # The second attempt waited in the limiter for the server's Retry-After (the client's
    # own retry sleep is the fake one of make_client: it takes no time).
    assert anyio.current_time() - start == pytest.approx(3.0)


async def test_requester_reports_successes_to_the_limiter(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    limiter = AdaptiveRateLimiter(initial=10.0, decrease=0.5)
    router.get("/collect/live/usercount/").respond(json={"result": "OK", "data": {"livecount": 1}})
    async with make_client(rate_limiter=limiter) as client:
        await client.user_count("L1")
        await anyio.sleep(1.0)
        await client.user_count("L1")
        start = anyio.current_time()
        await client.user_count("L1")  # back to back: waits for its token, the rate binds
        assert anyio.current_time() - start == pytest.approx(0.1)
    assert limiter.rate > 10.0
    assert limiter.rate_limited == 0


async def test_endpoint_limiters_apply_to_their_endpoint_only(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    chat_limiter = RateLimiter(rate=1.0)
    router.route().respond(json={"result": "OK", "data": {"livecount": 1}})
    start = anyio.current_time()
    async with make_client(endpoint_limiters={"chat": chat_limiter}) as client:
        for _ in range(3):
            await client.user_count("L1")
    assert anyio.current_time() - start == 0.0
    async with make_client(endpoint_limiters={"user_count": chat_limiter}) as client:
        for _ in range(3):
            await client.user_count("L1")
    assert anyio.current_time() - start == pytest.approx(2.0)


# -- cancelled waiters (on a virtual clock: the event loop's own time jumps) -------------------


@pytest.mark.parametrize(
    "make", [lambda: RateLimiter(10.0), lambda: AdaptiveRateLimiter(initial=10.0)]
)
def test_a_cancelled_waiter_gives_its_slot_back(
    virtual_anyio_backend: tuple[str, Any], make: Callable[[], RateLimiter]
) -> None:
    async def main() -> float:
        limiter = make()
        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(limiter.acquire)
            # Three got through (0.0, 0.1, 0.2); 197 still wait. (Not cancelled at exactly
            # 0.2 s: whether the 0.2 s caller passes first is then up to the event loop.)
            await anyio.sleep(0.25)
            tg.cancel_scope.cancel()
        started = anyio.current_time()
        await limiter.acquire()
        return anyio.current_time() - started

    backend, options = virtual_anyio_backend
    waited = anyio.run(main, backend=backend, backend_options=options)
    # The next slot is 0.3 s. Without giving the slots back: 19.75 s (the 197 abandoned
    # reservations).
    assert waited == pytest.approx(0.05, abs=1e-6)


def test_cancelled_waiters_in_the_middle_let_the_ones_behind_move_up(
    virtual_anyio_backend: tuple[str, Any],
) -> None:
    async def main() -> list[float]:
        limiter = RateLimiter(10.0)
        released: list[float] = []
        start = anyio.current_time()

        async def caller() -> None:
            await limiter.acquire()
            released.append(round(anyio.current_time() - start, 6))

        # The short sleeps let every task started so far run first (on virtual time the
        # clock only moves once all of them wait).
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)  # 0.0
            await anyio.sleep(0.001)
            async with anyio.create_task_group() as doomed:
                for _ in range(5):  # 0.1 .. 0.5, abandoned below
                    doomed.start_soon(caller)
                await anyio.sleep(0.001)
                for _ in range(2):  # behind them: 0.6, 0.7 until the others leave
                    tg.start_soon(caller)
                await anyio.sleep(0.05)
                doomed.cancel_scope.cancel()
        return released

    backend, options = virtual_anyio_backend
    released = anyio.run(main, backend=backend, backend_options=options)
    assert released == pytest.approx([0.0, 0.1, 0.2], abs=1e-6)
