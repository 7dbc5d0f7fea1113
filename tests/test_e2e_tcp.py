"""Every endpoint, through the real client, over real loopback TCP, on each HTTP engine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import cast

import pytest

from cc_collect_async import (
    AuthError,
    ChatRecord,
    CollectClient,
    LiveSummary,
    Platform,
    RetryPolicy,
    TransportError,
)
from cc_collect_async.sim import (
    DEMO_API_KEY,
    DEMO_USERID,
    DatasetSpec,
    SimConfig,
    Simulator,
    record_key,
    serve,
)
from cc_collect_async.transport import HttpBackend

SPEC = DatasetSpec(seed=3, rooms=2, lives=6, empty_every=0, huge_every=0)
# Values a naive encoder gets wrong; the server checks the hash over the query as sent.
AWKWARD = "a b&c=d+e%f 中文 ~!*'()/?😀"


@pytest.fixture(scope="module")
def simulator() -> Simulator:
    return Simulator(SPEC, SimConfig(max_page_length=7))


@pytest.fixture(scope="module")
def base_url(simulator: Simulator) -> Iterator[str]:
    with serve(simulator) as url:
        yield url


Engine = tuple[str, HttpBackend]


@pytest.fixture(params=["asyncio-httpx", "asyncio-aiohttp", "trio-auto"])
def engine(request: pytest.FixtureRequest) -> Engine:
    backend, http = str(request.param).split("-")
    return backend, cast(HttpBackend, http)


@pytest.fixture
def anyio_backend(engine: Engine) -> str:
    return engine[0]


@pytest.mark.anyio
async def test_every_endpoint_over_loopback(
    simulator: Simulator, base_url: str, engine: Engine
) -> None:
    dataset = simulator.dataset
    live = dataset.lives()[0]
    room, liveid = live.roomid, live.liveid
    async with CollectClient(
        DEMO_USERID,
        DEMO_API_KEY,
        base_url=base_url,
        http_backend=engine[1],
    ) as client:
        peak = await client.max_parallel(liveid)
        assert peak.max_parallel == dataset.peak(liveid)[0]
        days = await client.max_parallel(start_date="2026-11-01", end_date="2026-11-02")
        assert days.max_parallel is not None and days.max_parallel >= peak.max_parallel
        assert (await client.user_count(liveid)).livecount == dataset.viewer_count(liveid)
        duration = await client.duration(liveid)
        assert duration.start_time is not None and duration.start_time.utcoffset() is not None

        access = await client.access_records(room, liveid)
        assert {record_key("access", liveid, a.raw) for a in access} == {
            record_key("access", liveid, r) for r in dataset.records(liveid, "access")
        }
        assert await client.access_records(room, liveid, viewerid=AWKWARD) == []
        chat = await client.chat_records(room, liveid)
        assert [c.id for c in chat] == [r["id"] for r in dataset.records(liveid, "chat")]
        assert all(isinstance(c, ChatRecord) and c.raw for c in chat)

        window = (datetime(2026, 11, 1), datetime(2026, 11, 3))
        listed = [item.liveid async for item in client.lives(*window, page_length=4)]
        assert listed == [info.liveid for info in dataset.lives(*window)]

        for kind, paginated in (
            ("brainstorm", client.brainstorm_records(room, liveid=liveid, page_length=2)),
            ("vote", client.vote_records(room, liveid=liveid, page_length=2)),
            ("answercard", client.answercard_records(room, liveid=liveid, page_length=2)),
            ("reward", client.reward_records(room, liveid, page_length=2)),
        ):
            items = [item async for item in paginated]
            assert [record_key(kind, liveid, i.raw) for i in items] == [
                record_key(kind, liveid, r) for r in dataset.records(liveid, kind)
            ], kind

        summary = await client.summary(room, liveid)
        assert isinstance(summary, LiveSummary) and summary.liveid == liveid
        assert set(summary.by_platform()) <= set(Platform)
        reports = await client.client_info(room)
        assert reports and all(r.roomid == room for r in reports)

        for method in ("POST", "GET"):  # the seed says POST; a later vendor page, GET
            calls = [r async for r in client.rollcall_records(liveid, page_num=3, method=method)]
            assert [record_key("rollcall", liveid, r.raw) for r in calls] == [
                record_key("rollcall", liveid, r) for r in dataset.records(liveid, "rollcall")
            ]


@pytest.mark.anyio
async def test_a_wrong_key_is_an_auth_error_over_loopback(base_url: str, engine: Engine) -> None:
    async with CollectClient(
        DEMO_USERID,
        "not-the-key",
        base_url=base_url,
        http_backend=engine[1],
    ) as client:
        with pytest.raises(AuthError) as caught:
            await client.user_count("ANY")
    assert caught.value.attempts == 1
    assert "not-the-key" not in repr(caught.value) + str(caught.value)


@pytest.mark.anyio
async def test_dropped_truncated_and_failed_replies_are_retried_to_success(
    engine: Engine,
) -> None:
    sim = Simulator(
        SPEC,
        SimConfig(
            fault_rate=0.6,
            fault_kinds=("drop", "truncate", "http503"),
            max_faults_per_request=2,
            fault_seed=1,
        ),
    )
    retry = RetryPolicy(max_attempts=3, initial_backoff=0.0, max_backoff=0.0)
    with serve(sim) as url:
        async with CollectClient(
            DEMO_USERID,
            DEMO_API_KEY,
            base_url=url,
            http_backend=engine[1],
            retry=retry,
        ) as client:
            for live in sim.dataset.lives():
                chat = await client.chat_records(live.roomid, live.liveid)
                assert len(chat) == len(sim.dataset.records(live.liveid, "chat"))
                access = await client.access_records(live.roomid, live.liveid)
                assert len(access) == len(sim.dataset.records(live.liveid, "access"))
            retries = client.stats.retries
    assert set(sim.stats.faults) == {"drop", "truncate", "http503"}
    assert retries == sim.stats.total_faults


@pytest.mark.anyio
async def test_a_dead_server_is_a_transport_error(engine: Engine) -> None:
    with serve(Simulator(SPEC)) as url:
        pass  # the port is free again: nobody listens there any more
    retry = RetryPolicy(max_attempts=2, initial_backoff=0.0, max_backoff=0.0)
    async with CollectClient(
        DEMO_USERID,
        DEMO_API_KEY,
        base_url=url,
        http_backend=engine[1],
        retry=retry,
    ) as client:
        with pytest.raises(TransportError) as caught:
            await client.user_count("ANY")
    assert caught.value.attempts == 2 and caught.value.retryable


@pytest.mark.anyio
async def test_a_stalled_reply_is_cut_at_the_policys_time_in_all(engine: Engine) -> None:
    """The transport's 30 s is for one reply of a nightly harvest; a policy of 0.6 s in all
    (a page view's) ends the call at 0.6 s, not at the first reply's 30."""
    live = Simulator(SPEC).dataset.lives()[0]
    sim = Simulator(SPEC, SimConfig(fault_rate=1.0, fault_kinds=("slow",), slow_seconds=30.0))
    retry = RetryPolicy(max_attempts=3, max_elapsed=0.6, initial_backoff=0.1, jitter=0.0)
    with serve(sim) as url:
        async with CollectClient(
            DEMO_USERID,
            DEMO_API_KEY,
            base_url=url,
            http_backend=engine[1],
            retry=retry,
            timeout=30.0,
        ) as client:
            with pytest.raises(TransportError) as caught:
                await client.summary(live.roomid, live.liveid)
    # The first attempt had the policy's whole 0.6 s; after its 0.1 s backoff nothing was
    # left for a second (a second cut short would have said so in its text).
    assert caught.value.attempts == 1
    assert "no complete reply within 0.6 s" in str(caught.value)
