"""Retry policy: backoff doubles with jitter up to a cap, Retry-After is honoured up to a cap,
and a failing call stops at whichever comes first of max_attempts and max_elapsed."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from cc_collect_async import ENDPOINTS, CollectClient, RateLimitedError, RetryPolicy, ServerError
from cc_collect_async.core import ApiKey, Requester
from cc_collect_async.transport import Sender

USERCOUNT = "/collect/live/usercount/"


class FixedDraw(random.Random):
    """A random source whose every draw is ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_defaults_follow_the_design() -> None:
    policy = RetryPolicy()
    assert policy.initial_backoff == 0.5
    assert policy.max_backoff == 8.0
    assert policy.max_attempts >= 2
    assert policy.max_retry_after > 0


def test_backoff_doubles_and_caps_without_jitter_draw() -> None:
    policy = RetryPolicy()
    delays = [policy.delay(n, rand=FixedDraw(0.0)) for n in range(1, 9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]


def test_jitter_shortens_by_at_most_its_fraction() -> None:
    policy = RetryPolicy(jitter=0.25)
    delays = [policy.delay(n, rand=FixedDraw(1.0)) for n in range(1, 7)]
    assert delays == [0.375, 0.75, 1.5, 3.0, 6.0, 6.0]


def test_jitter_spreads_real_draws_within_bounds() -> None:
    policy = RetryPolicy(initial_backoff=1.0, jitter=0.5)
    rand = random.Random(1234)
    delays = [policy.delay(2, rand=rand) for _ in range(500)]
    assert all(1.0 <= d <= 2.0 for d in delays)
    assert len(set(delays)) > 100  # actually randomised
    assert min(delays) < 1.2 and max(delays) > 1.8


def test_custom_cap() -> None:
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=3.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 5)] == [1.0, 2.0, 3.0, 3.0]


def test_retry_after_overrides_backoff_and_is_capped() -> None:
    policy = RetryPolicy(max_retry_after=60.0)
    assert policy.delay(1, 3.0, rand=FixedDraw(1.0)) == 3.0
    assert policy.delay(5, 0.0) == 0.0
    assert policy.delay(1, 600.0) == 60.0
    assert policy.delay(1, -4.0) == 0.0


def test_never_makes_one_attempt_and_bad_counts_are_refused() -> None:
    assert RetryPolicy.never().max_attempts == 1
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def _requester(
    router: respx.Router, base_url: str, userid: str, api_key: str, fake: Any, policy: RetryPolicy
) -> Requester:
    return Requester(
        userid=userid,
        api_key=ApiKey(api_key),
        sender=Sender(
            max_connections=8, timeout=30, transport=httpx.MockTransport(router.async_handler)
        ),
        base_url=base_url,
        retry=policy,
        clock=fake.clock,
        sleep=fake.sleep,
        monotonic=fake.monotonic,
    )


@pytest.mark.anyio
async def test_stops_at_max_attempts(
    router: respx.Router, make_client: Callable[..., CollectClient], fake_time: Any
) -> None:
    route = router.get(USERCOUNT).respond(503)
    policy = RetryPolicy(max_attempts=4, jitter=0.0, max_elapsed=10_000.0)
    async with make_client(retry=policy) as client:
        with pytest.raises(ServerError) as info:
            await client.user_count("L1")
    assert route.call_count == 4
    assert info.value.attempts == 4
    assert fake_time.sleeps == [0.5, 1.0, 2.0]


@pytest.mark.anyio
async def test_backoff_caps_at_max_backoff_through_the_client(
    router: respx.Router, make_client: Callable[..., CollectClient], fake_time: Any
) -> None:
    router.get(USERCOUNT).respond(500)
    policy = RetryPolicy(max_attempts=7, max_backoff=4.0, jitter=0.0, max_elapsed=10_000.0)
    async with make_client(retry=policy) as client:
        with pytest.raises(ServerError):
            await client.user_count("L1")
    assert fake_time.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


@pytest.mark.anyio
async def test_max_attempts_one_means_no_retry(
    router: respx.Router, make_client: Callable[..., CollectClient], fake_time: Any
) -> None:
    route = router.get(USERCOUNT).respond(503)
    async with make_client(retry=RetryPolicy.never()) as client:
        with pytest.raises(ServerError) as info:
            await client.user_count("L1")
    assert route.call_count == 1 == info.value.attempts
    assert fake_time.sleeps == []


@pytest.mark.anyio
async def test_stops_when_the_next_wait_would_exceed_max_elapsed(
    router: respx.Router,
    new_fake_time: Any,
    base_url: str,
    userid: str,
    api_key: str,
) -> None:
    fake = new_fake_time()
    route = router.get(USERCOUNT).respond(503)
    policy = RetryPolicy(max_attempts=100, max_elapsed=10.0, initial_backoff=1.0, jitter=0.0)
    requester = _requester(router, base_url, userid, api_key, fake, policy)
    with pytest.raises(ServerError) as info:
        await requester.call(ENDPOINTS["user_count"], {"liveid": "L1"})
    # Waits 1, 2, 4 bring the elapsed time to 7 s; the next wait (8 s) would pass 10 s.
    assert fake.sleeps == [1.0, 2.0, 4.0]
    assert route.call_count == 4 == info.value.attempts


@pytest.mark.anyio
async def test_slow_replies_count_towards_max_elapsed(
    router: respx.Router,
    new_fake_time: Any,
    base_url: str,
    userid: str,
    api_key: str,
) -> None:
    fake = new_fake_time()

    def slow_failure(request: httpx.Request) -> httpx.Response:
        fake.advance(4.0)  # each attempt takes 4 s of (fake) time before it fails
        return httpx.Response(502)

    route = router.get(USERCOUNT).mock(side_effect=slow_failure)
    policy = RetryPolicy(max_attempts=100, max_elapsed=10.0, initial_backoff=1.0, jitter=0.0)
    requester = _requester(router, base_url, userid, api_key, fake, policy)
    with pytest.raises(ServerError) as info:
        await requester.call(ENDPOINTS["user_count"], {"liveid": "L1"})
    # 4 s (attempt) + 1 s (wait) + 4 s (attempt) = 9 s; a 2 s wait would pass 10 s.
    assert fake.sleeps == [1.0]
    assert route.call_count == 2 == info.value.attempts


@pytest.mark.anyio
async def test_retry_after_longer_than_max_elapsed_ends_the_call(
    router: respx.Router,
    new_fake_time: Any,
    base_url: str,
    userid: str,
    api_key: str,
) -> None:
    fake = new_fake_time()
    route = router.get(USERCOUNT).respond(429, headers={"Retry-After": "50"})
    policy = RetryPolicy(max_attempts=10, max_elapsed=30.0)
    requester = _requester(router, base_url, userid, api_key, fake, policy)
    with pytest.raises(RateLimitedError):
        await requester.call(ENDPOINTS["user_count"], {"liveid": "L1"})
    assert route.call_count == 1
    assert fake.sleeps == []
