"""CollectClient's own surface: the read-only properties the harvest and the benchmarks read,
the engine chosen once, and derived clients built by the constructor."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
import sniffio
from conftest import API_KEY, USERID

from cc_collect_async import CollectClient, RateLimiter, RetryPolicy, TransportError
from cc_collect_async.sim import DEMO_API_KEY, DEMO_USERID, DatasetSpec, SimConfig, Simulator, serve

USER_COUNT = {"result": "OK", "data": {"livecount": 7}}


def _mock() -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, json=USER_COUNT))


@pytest.mark.anyio
async def test_the_engine_is_chosen_once_by_the_running_loop() -> None:
    async with CollectClient("U", "K", max_concurrency=3) as client:
        # Built inside a loop: "auto" already knows (aiohttp runs on asyncio only).
        expected = "aiohttp" if sniffio.current_async_library() == "asyncio" else "httpx"
        assert client.engine == expected
    async with CollectClient("U", "K", http_backend="httpx") as client:
        assert client.engine == "httpx"
    async with CollectClient("U", "K", transport=_mock()) as client:
        assert client.engine == "httpx"
        assert (await client.user_count("L1")).livecount == 7


def test_auto_built_outside_a_loop_waits_for_its_first_request() -> None:
    assert CollectClient("U", "K").engine is None


def test_a_bad_backend_or_timeout_is_refused_when_the_client_is_built() -> None:
    with pytest.raises(ValueError, match="http_backend"):
        CollectClient("U", "K", http_backend="curl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        CollectClient("U", "K", timeout=0)
    with pytest.raises(ValueError, match="max_concurrency"):
        CollectClient("U", "K", max_concurrency=0)


@pytest.mark.anyio
async def test_read_only_properties() -> None:
    async with CollectClient(
        "U", "K", base_url="http://example.test/", transport=_mock(), max_concurrency=5, timeout=9
    ) as client:
        await client.user_count("L1")
        assert (client.max_concurrency, client.timeout) == (5, 9.0)
        assert client.base_url == "http://example.test"
        assert (client.stats.calls, client.stats.requests) == (1, 1)
        for name in ("max_concurrency", "timeout", "base_url", "stats", "engine"):
            with pytest.raises(AttributeError):
                setattr(client, name, None)


class _Counting(CollectClient):
    """A subclass whose constructor does more: a derived client must run it too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.built_here = True


@pytest.mark.anyio
async def test_with_options_builds_a_whole_client_sharing_the_pool() -> None:
    limiter = RateLimiter(1000)
    async with _Counting("U", "K", transport=_mock(), timeout=5) as client:
        derived = client.with_options(
            rate_limiter=limiter, max_concurrency=2, retry=RetryPolicy.never()
        )
        assert type(derived) is _Counting and derived.built_here
        assert (derived.max_concurrency, derived.timeout, derived.userid) == (2, 5.0, "U")
        assert derived.requester.rate_limiter is limiter
        assert (await derived.user_count("L1")).livecount == 7
        assert (derived.stats.requests, client.stats.requests) == (1, 0), "counters of its own"
        await derived.aclose()  # does not close the shared pool
        assert (await client.user_count("L1")).livecount == 7


@pytest.mark.anyio
async def test_the_aiohttp_engine_is_refused_under_trio_when_the_client_is_entered(
    anyio_backend: str,
) -> None:
    client = CollectClient(USERID, API_KEY, http_backend="aiohttp")
    if anyio_backend == "trio":
        with pytest.raises(RuntimeError, match="asyncio only; under trio use"):
            async with client:
                pass  # pragma: no cover - refused on entry
    else:
        async with client:
            assert client.engine == "aiohttp"


async def _closed_under_a_call(backend: str) -> None:
    sim = Simulator(DatasetSpec(lives=1), SimConfig(latency=0.5))
    live = sim.dataset.lives()[0]
    errors: list[BaseException] = []
    with serve(sim) as url:
        client = CollectClient(DEMO_USERID, DEMO_API_KEY, base_url=url, http_backend=backend)  # type: ignore[arg-type]

        async def page_view() -> None:
            try:
                await client.summary(live.roomid, live.liveid)
            except Exception as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(page_view)
            await anyio.sleep(0.1)  # on the wire when the client closes
            await client.aclose()
        with pytest.raises(TransportError, match="client is closed") as caught:
            await client.summary(live.roomid, live.liveid)
    assert not caught.value.retryable and caught.value.attempts == 1, backend
    assert sim.stats.requests == 1, backend  # the call after closing sent nothing
    # The call in flight got its reply or the same error, without a retry.
    assert all("client is closed" in str(e) for e in errors), (backend, errors)


async def test_a_call_on_a_closed_client_is_one_error_not_retried(anyio_backend: str) -> None:
    # At a web app's shutdown, calls still in flight and calls after it get a CollectError
    # that says what happened, at once: not a retried transport failure, then a RuntimeError.
    for backend in ["httpx", "aiohttp"] if anyio_backend == "asyncio" else ["httpx"]:
        await _closed_under_a_call(backend)
