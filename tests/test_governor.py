"""The rate governor on virtual time (asyncio's loop and trio's MockClock jump to the next
timer whenever every task waits): a bunch against a spent quota, per-interface limits, slow
start, the in-flight cap following the round trip, cancelled waiters. The simulator runs in
the same loop, so its token buckets, its latency and its stalls are on the same clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import anyio
import attrs
import httpx
import pytest
import respx
from conftest import jump

from cc_collect_async import CollectClient, Governor, RateLimitedError, RateLimiter, RetryPolicy
from cc_collect_async.cli.progress import LogProgress, server_wait_phrase
from cc_collect_async.harvest import Harvester, HarvestReport, MemorySink, Progress, Window
from cc_collect_async.sim import DEMO_API_KEY, DEMO_USERID, DatasetSpec, SimConfig, Simulator

pytestmark = pytest.mark.anyio

CHAT = "/collect/live/chat/record/"


@pytest.fixture
def anyio_backend(virtual_anyio_backend: tuple[str, Any]) -> tuple[str, Any]:
    return virtual_anyio_backend


def rejected(retry_after: float | None = 1.0) -> RateLimitedError:
    return RateLimitedError("too fast", status=429, retry_after=retry_after)


async def request(governor: Governor, endpoint: str, rtt: float, error: Any = None) -> bool:
    """One attempt through the governor that takes ``rtt`` and ends with ``error``."""
    permit = await governor.admit(endpoint)
    await anyio.sleep(rtt)
    return permit.settle(error)


# -- a bunch costs the rejected request; a spent quota makes the scope wait ----------------------


async def test_one_rejection_at_the_told_rate_trims_it_briefly_and_pauses_nobody() -> None:
    governor = Governor(100.0)
    for _ in range(50):
        await request(governor, "chat", 0.0)
    waited = await request(governor, "chat", 0.1, rejected(1.0))
    assert not waited  # an ordinary failed attempt: the request path retries it
    assert governor.waits() == []
    assert 70 <= governor.rate < 100  # trimmed
    start = anyio.current_time()
    await governor.admit("vote")  # the others go on at once, not after the Retry-After
    assert anyio.current_time() - start < 0.05
    for _ in range(200):
        await request(governor, "vote", 0.0)
    assert governor.rate == 100.0  # and back at the told rate


async def test_a_long_retry_after_is_a_spent_quota_everyone_waits_and_nothing_fails() -> None:
    governor = Governor(100.0)
    for _ in range(10):
        await request(governor, "chat", 0.0)
    waited = await request(governor, "chat", 0.1, rejected(60.0))
    assert waited  # costs no attempt: the unit merely waits
    (wait,) = governor.waits()
    assert wait.endpoint is None  # the whole account (no other endpoint was being served)
    assert wait.until - anyio.current_time() == pytest.approx(60.0)
    start = anyio.current_time()
    await governor.admit("vote")
    assert anyio.current_time() - start == pytest.approx(60.0, abs=0.02)
    assert governor.waits() == []


async def test_rejections_that_persist_after_a_cut_are_exhaustion() -> None:
    governor = Governor(50.0)
    for _ in range(10):
        await request(governor, "chat", 0.0)
    # A window quota spent: every request is refused, with a Retry-After of 1 s.
    outcomes = [await request(governor, "chat", 0.05, rejected(1.0)) for _ in range(4)]
    assert outcomes[:2] == [False, False]  # a cut first: might have been a bunch
    assert outcomes[-1] is True  # still refused at the lower rate: the quota is spent
    assert governor.waits()


async def test_echoes_of_a_bunch_cut_once() -> None:
    governor = Governor(100.0)
    for _ in range(20):
        await request(governor, "chat", 0.0)
    permits = [await governor.admit("chat") for _ in range(6)]  # all sent before the news
    await anyio.sleep(0.1)
    permits[0].settle(rejected(1.0))
    cut = governor.rate
    assert cut < 100.0
    for permit in permits[1:]:
        assert not permit.settle(rejected(1.0))
    assert governor.rate == cut  # one cut, not six
    assert governor.waits() == []


# -- per-interface limits -----------------------------------------------------------------------


async def test_rejections_on_one_endpoint_slow_only_that_endpoint() -> None:
    governor = Governor(100.0, max_in_flight=32)

    async def served(endpoint: str, count: int) -> None:
        for _ in range(count):
            await request(governor, endpoint, 0.1)

    async def chat(count: int) -> None:  # about 40 asked a second, every other one refused
        for number in range(count):
            await anyio.sleep(0.05)
            await request(governor, "chat", 0.1, rejected(1.0) if number % 2 else None)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(served, "access", 30)
        for _ in range(2):
            tg.start_soon(chat, 10)
    pace = governor.endpoint_rate("chat")
    assert pace is not None and pace < 40.0  # chat has a pace of its own now
    assert governor.rate >= 60.0  # the account (and access): trimmed by the first two at most
    assert governor.endpoint_rate("access") == 10_000.0  # max_rate: no pace of its own


async def sim_harvest(
    sim: Simulator, *, concurrency: int = 32, **options: Any
) -> tuple[HarvestReport, float, Harvester]:
    spec = sim.dataset.spec
    window = Window(spec.window_start, datetime(2026, 11, 1 + spec.window_days))
    async with CollectClient(
        DEMO_USERID,
        DEMO_API_KEY,
        base_url="http://sim",
        transport=sim.transport(),
        max_concurrency=concurrency,
        retry=RetryPolicy(max_attempts=10),
    ) as client:
        harvester = Harvester(client, window=window, concurrency=concurrency, **options)
        started = anyio.current_time()
        report = await harvester.run(MemorySink())
        return report, anyio.current_time() - started, harvester


def spec(lives: int) -> DatasetSpec:
    return DatasetSpec(lives=lives, huge_every=0, window_start=datetime(2026, 11, 1))


async def test_a_per_interface_limit_is_learnt_and_the_rest_keep_their_pace() -> None:
    # 10/s on chat only, 100/s for the account: chat sets the pace of the harvest, and the
    # other kinds must not be held to it (they finish long before the chat units).
    config = SimConfig(latency=0.1, rate=100, burst=10, path_rates={CHAT: (10, 5)})
    sim = Simulator(spec(80), config)
    report, duration, harvester = await sim_harvest(sim, rate=100)
    assert report.complete and not report.failures
    bound = sim.stats.by_path[CHAT] / 10.0  # what the limits allow
    assert duration <= bound / 0.9
    assert sim.stats.rate_limited <= 0.05 * sim.stats.requests
    chat = harvester.rate_limiter.endpoint_rate("chat")
    assert chat is not None and chat < 15
    assert harvester.rate_limiter.endpoint_rate("vote") == 10_000.0  # max_rate: no pace of its own


async def day_harvest(
    config: SimConfig,
    *,
    lives: int = 150,
    watch: Callable[[Harvester], Awaitable[None]] | None = None,
) -> tuple[HarvestReport, float, Harvester, Simulator]:
    """One day of ``lives`` lives harvested with the command's defaults (retry policy,
    concurrency, no rate told) against a simulator of ``config``; ``watch`` runs beside."""
    data = DatasetSpec(lives=lives, window_days=1, huge_every=0, window_start=datetime(2026, 11, 1))
    sim = Simulator(data, config)
    async with CollectClient(
        DEMO_USERID, DEMO_API_KEY, base_url="http://sim", transport=sim.transport()
    ) as client:
        harvester = Harvester(client, window=Window(datetime(2026, 11, 1), datetime(2026, 11, 2)))
        started = anyio.current_time()
        async with anyio.create_task_group() as tg:
            if watch is not None:
                tg.start_soon(watch, harvester)
            report = await harvester.run(MemorySink())
            tg.cancel_scope.cancel()
        return report, anyio.current_time() - started, harvester, sim


@pytest.mark.parametrize("limit", [1.0, 0.5])
async def test_an_endpoint_at_a_request_a_second_fails_no_unit_and_spares_the_account(
    limit: float,
) -> None:
    # The vendor's sibling API allows 100 calls a minute per interface: chat here at one a
    # second, or one in two (burst 1), the account at 100/s, nothing told, the default retry
    # policy (the command's). Before: refusals blamed on the account cut everyone to 2/s,
    # chat's pace tripled with every success, and units failed after six refusals in a
    # row; at 0.5/s the governor's floor (then 0.5/s) held chat at its limit, every other
    # request refused, 18 units failed.
    path_rates = {CHAT: (limit, 1)}
    config = SimConfig(latency=0.05, jitter=0.1, rate=100, burst=10, path_rates=path_rates)
    report, duration, harvester, sim = await day_harvest(config)
    assert report.complete and not report.failures
    chats = sim.stats.by_path[CHAT]
    # About 30 while chat's limit is learnt, then several in a hundred (33-51 of 183-201 in
    # runs on both backends; before: 217 of 360 at 1/s, 143 of 275 at 0.5/s).
    assert sim.stats.rate_limited <= 30 + 0.15 * chats
    served = chats - sim.stats.rate_limited  # at most what chat's bucket let through
    assert duration <= served / limit / 0.65  # 0.70-0.87 of it in runs on both backends
    governor = harvester.rate_limiter
    assert governor.rate >= 10  # not dragged down with chat (before: 2-5/s)
    chat = governor.endpoint_rate("chat")
    assert chat is not None and 0.6 * limit <= chat <= 1.2 * limit


async def test_a_server_answering_every_refusal_with_a_minute_is_refused_twice_at_most() -> None:
    # A 50/s bucket whose 429s all say "Retry-After: 60". Each refusal is a minute of the
    # whole account's time. Before: every wait ended at the pace that had been refused (the
    # limit seen fell a tenth per refusal), and the pause's burst was refused again at
    # once: 434 s for 15 s of work.
    config = SimConfig(latency=0.02, rate=50, burst=10, retry_after=60)
    report, duration, harvester, sim = await day_harvest(config)
    assert report.complete and not report.failures
    work = sim.stats.ok / 50.0
    assert duration <= 2 * 60 + 2 * work  # slow start's refusal, and one more at most
    assert harvester.rate_limiter.rate < 50


async def test_one_interface_s_quota_with_a_long_retry_after_pauses_that_interface_only() -> None:
    # Chat allows 20 calls, then 2 a second, and each 429 says "Retry-After: 60"; nothing
    # else is limited. Its first refusals (too few to blame chat on the usual evidence)
    # paused the whole account for a minute: every other kind sat idle.
    config = SimConfig(latency=0.05, path_rates={CHAT: (2, 20)}, retry_after=60)
    scopes: set[str] = set()

    async def watch(harvester: Harvester) -> None:
        while True:
            await anyio.sleep(0.5)
            scopes.update(harvester.progress().server_waits)

    report, *_ = await day_harvest(config, watch=watch)
    assert report.complete and not report.failures
    assert scopes == {"chat"}  # never "" (the whole account)


async def test_the_eta_follows_the_kind_an_interface_limit_holds_back() -> None:
    # Chat at 2/s, the rest at the account's 100/s: the other kinds' units finish early,
    # and the common pace of all units said a run of minutes would end in seconds.
    config = SimConfig(latency=0.05, rate=100, burst=10, path_rates={CHAT: (2, 1)})
    seen: list[Progress] = []

    async def watch(harvester: Harvester) -> None:
        while True:
            await anyio.sleep(1.0)
            seen.append(harvester.progress())

    report, *_ = await day_harvest(config, lives=100, watch=watch)
    assert report.complete
    total = seen[-1].elapsed
    assert total > 40  # chat's pages at 2/s
    # Five seconds in, the common pace said 23 s for the 54 s left. Chat's own pace, while
    # its limit is still being learnt, says more than is left (80-120 s): pessimistic, but
    # no longer a promise of a quarter of the time.
    early = next(p for p in seen if p.eta is not None and p.elapsed >= 5)
    left = total - early.elapsed
    assert early.eta is not None and 0.6 * left <= early.eta <= 3.0 * left


def test_the_eta_is_the_later_of_the_common_pace_and_the_slowest_kind() -> None:
    busy = attrs.evolve(
        progress(),
        units_total=120,
        units_done=66,
        elapsed=10.0,
        units_done_by_kind={"chat": 6, "vote": 60},
        units_total_by_kind={"chat": 60, "vote": 60},
    )
    assert busy.eta == pytest.approx(10.0 / 6 * 54)  # chat's, not 10 / 66 * 54
    waiting = attrs.evolve(busy, server_waits={"": 120.0})
    assert waiting.eta == pytest.approx(120.0)  # no sooner than the server lets anything in


async def test_once_an_endpoint_has_a_limit_of_its_own_one_refusal_there_is_its_own() -> None:
    governor = Governor(100.0, max_in_flight=32)

    async def served(endpoint: str, count: int, rtt: float) -> None:
        for _ in range(count):
            await request(governor, endpoint, rtt)

    async def chat(count: int) -> None:  # about 40 asked a second, every other one refused
        for number in range(count):
            await anyio.sleep(0.05)
            await request(governor, "chat", 0.1, rejected(1.0) if number % 2 else None)

    async with anyio.create_task_group() as tg:  # chat's limit is learnt
        for _ in range(4):
            tg.start_soon(served, "access", 30, 0.1)
        for _ in range(2):
            tg.start_soon(chat, 10)
    learnt = governor.endpoint_rate("chat")
    assert learnt is not None and learnt < 40.0
    await anyio.sleep(10.0)
    account = governor.rate
    async with anyio.create_task_group() as tg:  # later: one refusal at chat among successes
        for _ in range(4):
            tg.start_soon(served, "access", 30, 0.1)
        await served("chat", 3, 0.5)
        await request(governor, "chat", 0.5, rejected(1.0))
    assert governor.rate >= account  # not the account's: it was served throughout
    after = governor.endpoint_rate("chat")
    assert after is not None and after < learnt


# -- slow start and an unknown limit -------------------------------------------------------------


async def test_slow_start_opens_with_a_quarter_of_the_concurrency_per_round_trip() -> None:
    capped = Governor(max_in_flight=40)
    await request(capped, "chat", 0.1)
    assert capped.rate == pytest.approx(100.0)  # 10 requests per 100 ms round trip
    uncapped = Governor()
    await request(uncapped, "chat", 0.1)
    assert uncapped.rate == pytest.approx(10.0)  # one per round trip: initial_rate


async def test_not_told_a_rate_it_doubles_per_round_trip_to_the_latency_bound() -> None:
    sim = Simulator(spec(60), SimConfig(latency=0.1))
    report, _, _ = await sim_harvest(sim, kinds="chat,access,vote,answercard,rollcall")
    assert report.complete
    arrivals = sim.stats.per_100ms(sim.stats.arrivals)
    # 32 in flight at 100 ms round trips: the first round trip lists the lives, the second
    # sends a quarter of 32, and doubling reaches 32 per 100 ms within half a second.
    assert arrivals[1] >= 8
    assert arrivals[1:4] == sorted(arrivals[1:4])
    assert max(arrivals[:5]) == 32


async def test_an_unknown_limit_is_found_with_few_rejections() -> None:
    sim = Simulator(spec(60), SimConfig(latency=0.1, rate=30, burst=10))
    report, duration, harvester = await sim_harvest(sim, concurrency=8)
    assert report.complete
    assert sim.stats.rate_limited <= 0.05 * sim.stats.requests
    assert (sim.stats.ok / 30.0) / duration >= 0.8
    assert 20 <= harvester.rate_limiter.rate <= 40


async def test_a_refusal_at_the_told_rate_costs_the_refused_request_only() -> None:
    # Replies that take 100-150 ms reach the bucket unevenly: now and then a few at once,
    # and one is turned away however evenly the client sends.
    config = SimConfig(latency=0.1, jitter=0.05, rate=100, burst=5)
    sim = Simulator(spec(120), config)
    report, duration, harvester = await sim_harvest(sim, rate=100)
    assert report.complete and not report.failures
    assert 1 <= sim.stats.rate_limited <= 0.01 * sim.stats.requests
    # The refused request waits its Retry-After (1 s: the harvest may end waiting for
    # it); nobody else does. Pausing everyone for each refusal cost a second apiece.
    ideal = sim.stats.ok / 100.0
    assert duration <= ideal + 1.0 + 0.05 * ideal
    assert harvester.rate_limiter.rate == 100.0  # back at the told rate


async def test_stalls_of_the_server_are_counted_and_lost_only_once() -> None:
    config = SimConfig(latency=0.1, rate=100, burst=10, stall=0.005, stall_live=0.05, block=jump)
    sim = Simulator(spec(60), config)
    report, duration, _ = await sim_harvest(sim, rate=100)
    assert report.complete and not report.failures
    assert sim.stats.stalls >= 2
    # On one virtual clock a stall freezes the client too: it costs its own length.
    ideal = sim.stats.ok / 100.0 + sim.stats.stalled
    assert duration <= ideal + 1.0 + 0.05 * ideal


async def test_a_per_minute_quota_waits_and_shows_it_and_nothing_fails() -> None:
    # 30 requests, then 3 a second, and a 429 that says "come back in 20 s".
    sim = Simulator(spec(20), SimConfig(latency=0.1, rate=3, burst=30, retry_after=20))
    seen: list[Progress] = []

    async def watch(harvester: Harvester) -> None:
        while True:
            await anyio.sleep(1.0)
            seen.append(harvester.progress())

    spec_ = sim.dataset.spec
    window = Window(spec_.window_start, datetime(2026, 11, 1 + spec_.window_days))
    async with CollectClient(
        DEMO_USERID,
        DEMO_API_KEY,
        base_url="http://sim",
        transport=sim.transport(),
        max_concurrency=8,
    ) as client:
        harvester = Harvester(client, window=window, concurrency=8)
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch, harvester)
            report = await harvester.run(MemorySink())
            tg.cancel_scope.cancel()
    assert report.complete and not report.failures
    waits = [p.server_waits for p in seen if p.server_waits]
    assert waits and all(0 < seconds <= 20 for w in waits for seconds in w.values())
    phrase = server_wait_phrase(next(p for p in seen if p.server_waits))
    assert phrase is not None and phrase.startswith("server rate limit: resuming in ")
    # Waiting, not hammering: a few refusals per quota window, not one per request.
    assert sim.stats.rate_limited <= 0.25 * sim.stats.ok


# -- the in-flight cap follows the round trip ----------------------------------------------------


async def test_the_in_flight_cap_follows_rate_times_round_trip() -> None:
    governor = Governor(100.0, max_in_flight=64)
    assert governor.in_flight_cap == 64  # no round trip seen yet
    for _ in range(30):
        await request(governor, "chat", 0.1)
    assert governor.round_trip == pytest.approx(0.1)
    assert governor.in_flight_cap == 16  # 100/s x 0.1 s x 1.5 headroom, + 1
    for _ in range(60):
        await request(governor, "chat", 0.3)
    assert governor.round_trip == pytest.approx(0.3, rel=0.01)
    assert governor.in_flight_cap == 46
    for _ in range(60):
        await request(governor, "chat", 2.0)
    assert governor.in_flight_cap == 64  # never above the concurrency setting


async def test_requests_beyond_the_cap_wait_for_a_reply() -> None:
    governor = Governor(100.0, max_in_flight=64)
    for _ in range(30):
        await request(governor, "chat", 0.1)
    cap = governor.in_flight_cap
    permits = []
    with anyio.move_on_after(5.0):
        while True:
            permits.append(await governor.admit("chat"))
    assert len(permits) == cap  # the pace would have let 500 through in 5 s
    for permit in permits:
        permit.release()


# -- cancelled waiters ---------------------------------------------------------------------------


async def test_a_cancelled_waiter_of_the_governor_gives_its_slot_back() -> None:
    governor = Governor(10.0)
    admitted: list[Any] = []

    async def waiter() -> None:
        admitted.append(await governor.admit("chat"))

    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(waiter)
        await anyio.sleep(0.25)
        tg.cancel_scope.cancel()
    assert len(admitted) == 3
    start = anyio.current_time()
    await governor.admit("chat")
    assert anyio.current_time() - start == pytest.approx(0.05, abs=1e-6)


# -- the request path --------------------------------------------------------------------------


@asynccontextmanager
async def mocked(router: respx.Router, **options: Any) -> AsyncIterator[CollectClient]:
    async with CollectClient(
        DEMO_USERID,
        DEMO_API_KEY,
        base_url="https://ccapi.csslcloud.net",
        transport=httpx.MockTransport(router.async_handler),
        **options,
    ) as client:
        yield client


def quota_then_ok(router: respx.Router, refusals: int) -> respx.Route:
    ok = httpx.Response(200, json={"result": "OK", "data": {"livecount": 1}, "error_msg": ""})
    spent = httpx.Response(429, headers={"Retry-After": "30"}, json={"result": "FAIL"})
    route = router.get("/collect/live/usercount/")
    route.side_effect = [spent] * refusals + [ok]
    return route


@pytest.mark.parametrize(
    ("make", "succeeds"),
    [(lambda: Governor(10.0), True), (lambda: RateLimiter(10.0), False)],
)
async def test_an_attempt_refused_by_a_spent_quota_costs_no_attempt(
    make: Callable[[], Any], succeeds: bool
) -> None:
    router = respx.Router(base_url="https://ccapi.csslcloud.net", assert_all_called=False)
    route = quota_then_ok(router, 5)
    async with mocked(router, rate_limiter=make(), retry=RetryPolicy(max_attempts=3)) as client:
        if succeeds:
            assert (await client.user_count("L1")).livecount == 1
            assert route.call_count == 6
        else:  # a plain token bucket knows no quota: three refusals fail the call
            with pytest.raises(RateLimitedError):
                await client.user_count("L1")
            assert route.call_count == 3


# -- the progress display ------------------------------------------------------------------------


def progress(**waits: float) -> Progress:
    return Progress(
        lives=1,
        units_total=5,
        units_done=1,
        units_failed=0,
        records=10,
        requests=12,
        retries=1,
        rate_limited=1,
        request_rate=2.0,
        elapsed=3.0,
        planning_done=True,
        server_waits={"" if name == "account" else name: s for name, s in waits.items()},
    )


def test_the_wait_is_said_in_words() -> None:
    assert server_wait_phrase(progress()) is None
    assert server_wait_phrase(progress(account=41.2)) == "server rate limit: resuming in 42 s"
    assert server_wait_phrase(progress(chat=3.0)) == "server rate limit on chat: resuming in 3 s"


def test_a_log_line_comes_as_soon_as_a_wait_begins() -> None:
    import io

    out = io.StringIO()
    view = LogProgress(out, every=3600.0)
    view.update(progress())
    assert out.getvalue() == ""
    view.update(progress(account=60.0))
    assert out.getvalue().rstrip().endswith("server rate limit: resuming in 60 s")
    view.update(progress(account=59.0))  # the same wait: no new line
    assert out.getvalue().count("\n") == 1
