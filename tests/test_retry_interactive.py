"""RetryPolicy.interactive(): a web request gives up within seconds where the nightly
defaults would hold it for minutes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
import respx

from cc_collect_async import (
    AdaptiveRateLimiter,
    CollectClient,
    Governor,
    RateLimitedError,
    RateLimiter,
    RetryPolicy,
    ServerError,
)
from cc_collect_async.sim import DEMO_API_KEY, DEMO_USERID, DatasetSpec, SimConfig, Simulator

pytestmark = pytest.mark.anyio

GATHER = "/collect/live/gather"


async def test_a_long_retry_after_is_not_waited_out(
    router: respx.Router, make_client: Callable[..., CollectClient], fake_time: object
) -> None:
    router.get(GATHER).mock(return_value=httpx.Response(429, headers={"Retry-After": "30"}))
    async with make_client(retry=RetryPolicy.interactive()) as client:
        with pytest.raises(RateLimitedError) as caught:
            await client.summary("R1", "L1")
    assert caught.value.attempts == 3
    assert fake_time.sleeps == [1.0, 1.0]  # type: ignore[attr-defined]


async def test_backoff_stays_within_a_few_seconds(
    router: respx.Router, make_client: Callable[..., CollectClient], fake_time: object
) -> None:
    router.get(GATHER).mock(return_value=httpx.Response(503))
    async with make_client(retry=RetryPolicy.interactive()) as client:
        with pytest.raises(ServerError):
            await client.summary("R1", "L1")
    sleeps = fake_time.sleeps  # type: ignore[attr-defined]
    assert len(sleeps) == 2 and sum(sleeps) <= RetryPolicy.interactive().max_elapsed
    assert 0.15 <= sleeps[0] <= 0.2 and 0.3 <= sleeps[1] <= 0.4  # 0.2 s doubling, jittered


def test_the_nightly_defaults_are_much_longer() -> None:
    nightly, interactive = RetryPolicy(), RetryPolicy.interactive()
    assert interactive.max_attempts < nightly.max_attempts
    assert interactive.max_elapsed * 10 < nightly.max_elapsed
    assert interactive.max_retry_after * 10 < nightly.max_retry_after


# -- a page view and the account's pace ---------------------------------------------------------
#
# On virtual time: a call that waited out a minute would take a minute of it, not of the test's.


@pytest.fixture
def anyio_backend(virtual_anyio_backend: tuple[str, Any]) -> tuple[str, Any]:
    return virtual_anyio_backend


def _limiters() -> dict[str, Callable[[], RateLimiter | Governor]]:
    return {
        "RateLimiter": lambda: RateLimiter(5.0),
        "AdaptiveRateLimiter": lambda: AdaptiveRateLimiter(initial=5.0),
        "Governor": lambda: Governor(5.0),
    }


@pytest.mark.parametrize("limiter", sorted(_limiters()))
async def test_a_page_view_behind_a_limiter_gives_up_within_its_seconds(limiter: str) -> None:
    # The vendor allows one call and then says "come back in a minute" to everything. The
    # limiter hears it for the account, but the page view honours 1 s of it, 4 s in all.
    sim = Simulator(DatasetSpec(lives=3), SimConfig(rate=1 / 120, burst=1, retry_after=60))
    policy = RetryPolicy.interactive()
    async with CollectClient(
        DEMO_USERID,
        DEMO_API_KEY,
        base_url="http://sim",
        transport=sim.transport(),
        retry=policy,
        rate_limiter=_limiters()[limiter](),
    ) as client:
        live = sim.dataset.lives()[0]
        await client.summary(live.roomid, live.liveid)  # the one the quota allows
        for _ in range(3):  # page views, one after the other
            started = anyio.current_time()
            with pytest.raises(RateLimitedError):
                await client.summary(live.roomid, live.liveid)
            # Not the minute: the limiter's pace (its cut rate) is not counted in the 4 s.
            assert anyio.current_time() - started <= 2 * policy.max_elapsed


@pytest.mark.parametrize("limiter", sorted(_limiters()))
async def test_page_views_at_once_beside_a_nightly_job_give_up_within_their_seconds(
    limiter: str,
) -> None:
    # A nightly job shares the limiter: its refusal pauses it for the vendor's minute, which
    # the job waits out; twenty visitors at once queue behind that pause and each other.
    # Each gives up within its 4 s in all (nothing sent past it), not after the minute.
    sim = Simulator(DatasetSpec(lives=20), SimConfig(rate=1 / 120, burst=1, retry_after=60))
    shared = _limiters()[limiter]()
    lives = sim.dataset.lives()
    policy = RetryPolicy.interactive()
    took: list[float] = []

    def client(retry: RetryPolicy) -> CollectClient:
        return CollectClient(
            DEMO_USERID,
            DEMO_API_KEY,
            base_url="http://sim",
            transport=sim.transport(),
            retry=retry,
            rate_limiter=shared,
        )

    async def page_view(web: CollectClient, index: int) -> None:
        started = anyio.current_time()
        with pytest.raises(RateLimitedError):
            await web.summary(lives[index].roomid, lives[index].liveid)
        took.append(anyio.current_time() - started)

    async with client(RetryPolicy()) as nightly, client(policy) as web:
        await nightly.summary(lives[0].roomid, lives[0].liveid)  # the one the quota allows
        async with anyio.create_task_group() as tg:
            tg.start_soon(nightly.summary, lives[1].roomid, lives[1].liveid)  # refused: waits
            await anyio.sleep(0.5)
            for index in range(20):
                tg.start_soon(page_view, web, index)
            await anyio.sleep(10)
            tg.cancel_scope.cancel()  # the nightly job's wait is not this test's
    assert len(took) == 20 and max(took) <= policy.max_elapsed + 0.1
