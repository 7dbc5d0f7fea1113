"""CollectClient(cache=...) against the simulator over loopback TCP: hits spend no request,
the key ignores the signature, a cancelled caller hands its fetch over, end times learned
from listings make entries last, and the harvest never touches the cache."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime

import anyio
import httpx
import pytest
import respx
from conftest import USERID

from cc_collect_async import AuthError, CollectClient, DecodeError, ResponseCache
from cc_collect_async.harvest import Harvester, MemorySink, Window
from cc_collect_async.sim import DEMO_API_KEY, DEMO_USERID, DatasetSpec, SimConfig, Simulator, serve

pytestmark = pytest.mark.anyio

SPEC = DatasetSpec(lives=3, chat_per_live=5, access_per_live=5)


@pytest.fixture
def sim() -> Simulator:
    return Simulator(SPEC, SimConfig(latency=0.2))


@pytest.fixture
def sim_url(sim: Simulator) -> Iterator[str]:
    with serve(sim) as url:
        yield url


def _client(url: str, cache: ResponseCache | None, **options: object) -> CollectClient:
    return CollectClient(DEMO_USERID, DEMO_API_KEY, base_url=url, cache=cache, **options)  # type: ignore[arg-type]


async def test_a_hit_sends_nothing_although_every_signature_differs(
    sim: Simulator, sim_url: str
) -> None:
    live = sim.dataset.lives(None, None, None)[0]
    seconds = itertools.count(int(datetime.now().timestamp()))
    async with _client(sim_url, ResponseCache(), clock=lambda: float(next(seconds))) as client:
        first = await client.summary(live.roomid, live.liveid)
        second = await client.summary(live.roomid, live.liveid)
        chat = await client.chat_records(live.roomid, live.liveid)
        chat_again = await client.chat_records(live.roomid, live.liveid)
        assert client.requester.stats.requests == 2
        fresh = await client.summary(live.roomid, live.liveid, cache="refresh")
        uncached = await client.summary(live.roomid, live.liveid, cache=False)
    assert first == second == fresh == uncached
    assert chat == chat_again and len(chat) == len(sim.dataset.records(live.liveid, "chat"))
    assert sim.stats.by_path == {"/collect/live/gather": 3, "/collect/live/chat/record/": 1}


async def test_changing_a_models_raw_changes_nothing_for_the_next_caller(
    sim: Simulator, sim_url: str
) -> None:
    live = sim.dataset.lives(None, None, None)[0]
    async with _client(sim_url, ResponseCache()) as client:
        summary = await client.summary(live.roomid, live.liveid)
        summary.raw["usercount"] = -1
        chat = await client.chat_records(live.roomid, live.liveid)
        chat[0].raw["content"] = "changed"
        again = await client.summary(live.roomid, live.liveid)
        chat_again = await client.chat_records(live.roomid, live.liveid)
        assert client.requester.stats.requests == 2
    assert again.usercount == summary.usercount and again.raw["usercount"] != -1
    assert chat_again[0].raw["content"] == chat_again[0].content == chat[0].content


async def test_a_wrong_key_sharing_the_cache_is_refused_not_served(
    sim: Simulator, sim_url: str
) -> None:
    live = sim.dataset.lives(None, None, None)[0]
    cache = ResponseCache()
    async with (
        _client(sim_url, cache) as right,
        CollectClient(DEMO_USERID, "not-the-key", base_url=sim_url, cache=cache) as wrong,
    ):
        await right.summary(live.roomid, live.liveid)
        with pytest.raises(AuthError):
            await wrong.summary(live.roomid, live.liveid)
        await right.summary(live.roomid, live.liveid)  # still served from the cache
    assert sim.stats.by_path == {"/collect/live/gather": 2}


async def test_a_cancelled_caller_hands_its_fetch_to_the_others(
    sim: Simulator, sim_url: str
) -> None:
    live = sim.dataset.lives(None, None, None)[0]
    answers: list[int | None] = []
    async with _client(sim_url, ResponseCache()) as client:

        async def reader() -> None:
            answers.append((await client.summary(live.roomid, live.liveid)).usercount)

        async with anyio.create_task_group() as tg:
            leader = anyio.CancelScope()

            async def first_reader() -> None:
                with leader:
                    await reader()

            tg.start_soon(first_reader)
            with anyio.fail_after(10):
                while sim.stats.requests == 0:  # noqa: ASYNC110 (the sim runs in a thread)
                    await anyio.sleep(0.01)  # until the leader's request is at the vendor
            for _ in range(5):
                tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            leader.cancel()
    assert answers == [sim.dataset.gather(live.liveid)["usercount"]] * 5
    assert sim.stats.by_path == {"/collect/live/gather": 2}


async def test_ended_lives_learned_from_a_listing_stay_cached(sim: Simulator, sim_url: str) -> None:
    now = [datetime.now().timestamp()]
    cache = ResponseCache(live_ttl=5, final_ttl=86400, clock=lambda: now[0])
    lives = sim.dataset.lives(None, None, None)
    async with _client(sim_url, cache) as client:
        await client.summary(lives[0].roomid, lives[0].liveid)
        await client.summary(lives[1].roomid, lives[1].liveid)
        now[0] += 6
        await client.summary(lives[0].roomid, lives[0].liveid)  # unknown end: fetched again
        # The listing says both ended (the simulator's lives are in the past).
        listed = [live async for live in client.lives(SPEC.window_start, datetime(2026, 11, 5))]
        assert {live.liveid for live in listed} >= {lives[0].liveid, lives[1].liveid}
        now[0] += 3600
        # Both entries were fetched after their lives ended: once that is known, they last.
        await client.summary(lives[0].roomid, lives[0].liveid)
        await client.summary(lives[1].roomid, lives[1].liveid)
    assert sim.stats.by_path["/collect/live/gather"] == 3


async def test_the_harvest_never_uses_the_cache(sim: Simulator, sim_url: str) -> None:
    cache = ResponseCache()
    async with _client(sim_url, cache) as client:
        harvester = Harvester(
            client, window=Window(SPEC.window_start, datetime(2026, 11, 5)), kinds=["chat"]
        )
        sink = MemorySink()
        await harvester.run(sink)
    assert harvester.report.records == len(sim.truth().keys["chat"]) > 0
    stats = cache.stats()
    assert (stats.entries, stats.misses, stats.hits, stats.bypassed) == (0, 0, 0, 0)


async def test_a_stored_reply_that_does_not_fit_its_model_says_where(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    # client.call() stores the reply as received; the typed call reads it from the cache
    # and must raise a DecodeError that names its endpoint like one from the wire.
    bad = {"result": "OK", "data": {"liveid": "L1", "roomid": "R1", "usercount": "lots"}}
    route = router.get("/collect/live/gather").mock(return_value=httpx.Response(200, json=bad))
    async with make_client(cache=ResponseCache()) as client:
        await client.call("summary", roomid="R1", liveid="L1")
        with pytest.raises(DecodeError) as caught:
            await client.summary("R1", "L1")
    assert route.call_count == 1  # the second came from the cache
    assert caught.value.endpoint == "summary" and caught.value.attempts == 0
    assert caught.value.params == {"roomid": "R1", "liveid": "L1", "userid": USERID}
    assert "[summary]" in str(caught.value)
