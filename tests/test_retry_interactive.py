"""RetryPolicy.interactive(): a web request gives up within seconds where the nightly
defaults would hold it for minutes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import respx

from cc_collect_async import CollectClient, RateLimitedError, RetryPolicy, ServerError

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
