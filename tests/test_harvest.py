"""The fan-out harvest against the simulator, in-process: it must equal the ground truth."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx
import pytest

from cc_collect_async import AuthError, CollectClient, RetryPolicy
from cc_collect_async.harvest import (
    ALL_KINDS,
    Batch,
    Harvester,
    Live,
    MemorySink,
    UnitResult,
    Window,
)
from cc_collect_async.sim import (
    DEMO_API_KEY,
    DEMO_USERID,
    DatasetSpec,
    SimConfig,
    Simulator,
    Truth,
    record_key,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend(virtual_anyio_backend: tuple[str, Any]) -> tuple[str, Any]:
    """Virtual time: the simulator's latency, its buckets, the harvest's pacing and the
    tests' own sleeps all run on the event loop's clock, which jumps whenever every task
    waits, so nothing here depends on how fast this machine is."""
    return virtual_anyio_backend


SPEC = DatasetSpec(seed=11, rooms=3, lives=14, chat_per_live=30, access_per_live=20)
WINDOW = Window(datetime(2026, 11, 1), datetime(2026, 11, 3))
# Retries without real waiting: the simulator caps faults per request, so they always end.
FAST_RETRY = RetryPolicy(max_attempts=10, initial_backoff=0.0, max_backoff=0.0)
RECORD_KINDS = tuple(k for k in ALL_KINDS if k != "summary")
#: A client-side rate that never binds, for tests about something else than rate limits.
FAST = 10_000.0


@asynccontextmanager
async def sim_client(
    sim: Simulator, *, api_key: str = DEMO_API_KEY, **options: Any
) -> AsyncIterator[CollectClient]:
    options.setdefault("retry", FAST_RETRY)
    async with CollectClient(
        DEMO_USERID, api_key, base_url="http://sim", transport=sim.transport(), **options
    ) as client:
        yield client


def harvested_keys(sink: MemorySink, kind: str) -> list[tuple[Any, ...]]:
    """Keys of what the sink committed, computed by the simulator's own key function."""
    return [record_key(kind, live.liveid, record) for live, record in sink.records(kind)]


def assert_equals_truth(sink: MemorySink, truth: Truth, kinds: tuple[str, ...]) -> None:
    assert sorted(live.liveid for live in sink.lives) == sorted(t.liveid for t in truth.lives)
    for kind in kinds:
        keys = harvested_keys(sink, kind)
        repeated = [k for k, n in Counter(keys).items() if n > 1]
        assert not repeated, f"{kind}: delivered twice: {repeated[:3]}"
        assert set(keys) == truth.keys[kind], f"{kind}: differs from the ground truth"


def truth_for(sim: Simulator, window: Window = WINDOW) -> Truth:
    return sim.dataset.truth(
        window.since.replace(tzinfo=None), window.until.replace(tzinfo=None), window.rooms or None
    )


async def test_window_harvest_equals_ground_truth_for_every_kind() -> None:
    sim = Simulator(SPEC)
    truth = truth_for(sim)
    assert truth.total() > 1000 and len(truth.lives) == 14
    sink = MemorySink()
    async with sim_client(sim) as client:
        report = await Harvester(client, window=WINDOW, kinds=ALL_KINDS, rate=FAST).run(sink)
    assert_equals_truth(sink, truth, RECORD_KINDS)
    summaries = sink.records("summary")
    assert sorted(r["liveid"] for _, r in summaries) == sorted(t.liveid for t in truth.lives)
    assert all(r["gather"]["liveid"] == r["liveid"] for _, r in summaries)
    assert report.complete and not report.failures and not report.issues
    assert report.lives == 14
    assert report.kinds["chat"].records == truth.count("chat")
    assert report.kinds["rollcall"].units == 14
    assert report.requests == sim.stats.requests


async def test_what_the_sink_raises_comes_out_as_itself() -> None:
    """Not in an exception group: ``except`` around Harvester.run catches the sink's error."""

    class Full(MemorySink):
        async def write(self, batch: Batch) -> None:
            raise OSError(28, "No space left on device")

    sim = Simulator(SPEC)
    sink = Full()
    async with sim_client(sim) as client:
        with pytest.raises(OSError, match="No space left"):
            await Harvester(client, window=WINDOW, kinds=("chat",), rate=FAST).run(sink)


async def test_room_filter_harvests_only_those_rooms() -> None:
    sim = Simulator(SPEC)
    rooms = tuple(sim.dataset.rooms[:2])
    window = Window(WINDOW.since, WINDOW.until, rooms)
    truth = truth_for(sim, window)
    assert 0 < len(truth.lives) < 14
    sink = MemorySink()
    async with sim_client(sim) as client:
        await Harvester(client, window=window, kinds="chat,vote", rate=FAST).run(sink)
    assert {live.roomid for live in sink.lives} <= set(rooms)
    assert_equals_truth(sink, truth, ("chat", "vote"))


async def test_faults_of_every_kind_lose_and_repeat_nothing() -> None:
    sim = Simulator(
        SPEC,
        SimConfig(
            fault_rate=0.10,
            slow_seconds=0.01,
            max_faults_per_request=2,
            fault_seed=3,
            max_page_length=2,
        ),
    )
    truth = truth_for(sim)
    sink = MemorySink()
    async with sim_client(sim) as client:
        report = await Harvester(client, window=WINDOW, kinds=RECORD_KINDS, rate=FAST).run(sink)
    assert_equals_truth(sink, truth, RECORD_KINDS)
    assert report.complete
    # Every kind of fault was really injected, and every one of them was retried.
    assert set(sim.stats.faults) == {
        "http500", "http502", "http503", "drop", "truncate", "slow", "process_fail",
    }  # fmt: skip
    assert report.retries >= sim.stats.total_faults - sim.stats.faults["slow"]


async def test_listing_and_pages_ask_for_nothing_twice_and_nothing_past_the_end() -> None:
    sim = Simulator(SPEC, SimConfig(max_page_length=4))
    truth = truth_for(sim)
    sink = MemorySink()
    async with sim_client(sim) as client:
        report = await Harvester(client, window=WINDOW, kinds="vote,rollcall", rate=FAST).run(sink)
    assert_equals_truth(sink, truth, ("vote", "rollcall"))
    # Style A pages are as long as the server allows (4); rollcall pages are 500 long.
    per_live_votes = Counter(key[0] for key in truth.keys["vote"])
    vote_pages = sum(max(1, -(-per_live_votes[t.liveid] // 4)) for t in truth.lives)
    listing_pages = -(-len(truth.lives) // 4)
    assert sim.stats.by_path["/collect/vote/record"] == vote_pages
    assert sim.stats.by_path["/openapi/collect/rollcall/get"] == len(truth.lives)
    assert sim.stats.by_path["/collect/live/record"] == listing_pages
    assert report.kinds["vote"].pages == vote_pages


async def test_empty_lives_complete_with_no_records() -> None:
    sim = Simulator(SPEC)
    truth = truth_for(sim)
    empty = [t for t in truth.lives if not any(k[0] == t.liveid for k in truth.keys["chat"])]
    assert empty, "the data set should hold empty lives"
    sink = MemorySink()
    async with sim_client(sim) as client:
        report = await Harvester(
            client, lives=[(t.roomid, t.liveid) for t in empty], kinds=RECORD_KINDS, rate=FAST
        ).run(sink)
    assert report.complete and not report.issues
    assert len(sink.committed) == len(empty) * len(RECORD_KINDS)
    assert all(records == [] for records in sink.committed.values())


async def test_told_the_servers_rate_it_is_almost_never_rejected() -> None:
    sim = Simulator(SPEC, SimConfig(rate=150, burst=5))
    truth = truth_for(sim)
    sink = MemorySink()
    async with sim_client(sim, max_concurrency=16) as client:
        report = await Harvester(client, window=WINDOW, kinds="chat,vote,rollcall", rate=150).run(
            sink
        )
    assert_equals_truth(sink, truth, ("chat", "vote", "rollcall"))
    assert sim.stats.rate_limited <= 0.02 * sim.stats.requests
    assert report.rate_limited == sim.stats.rate_limited


async def test_not_told_the_rate_it_adapts_and_loses_nothing() -> None:
    # Rejections come back as FAIL envelopes without Retry-After, so the backoff and the
    # adaptive limiter alone must bring the rate down to what the server allows.
    spec = DatasetSpec(seed=5, rooms=2, lives=40, empty_every=0, huge_every=0)
    sim = Simulator(spec, SimConfig(rate=60, burst=4, rate_limit_fail_fraction=1.0))
    truth = truth_for(sim)
    sink = MemorySink()
    retry = RetryPolicy(max_attempts=30, initial_backoff=0.02, max_backoff=0.2)
    async with sim_client(sim, max_concurrency=16, retry=retry) as client:
        harvester = Harvester(
            client, window=WINDOW, kinds="chat,access,vote", initial_rate=400, max_rate=1000
        )
        report = await harvester.run(sink)
    assert_equals_truth(sink, truth, ("chat", "access", "vote"))
    assert report.complete
    assert sim.stats.rate_limited > 0, "the server limit should have been hit"
    assert report.rate_limited == sim.stats.rate_limited
    # It came down from 400 to about the server's 60 requests per second.
    assert harvester.rate_limiter.rate < 120


@pytest.mark.parametrize("explicit", [False, True])
async def test_auth_failure_stops_everything_at_once(explicit: bool) -> None:
    sim = Simulator(SPEC)
    truth = truth_for(sim)
    sink = MemorySink()
    lives = [(t.roomid, t.liveid) for t in truth.lives] if explicit else None
    async with sim_client(sim, api_key="wrong-key", max_concurrency=8) as client:
        harvester = (
            Harvester(client, lives=lives, kinds=RECORD_KINDS, rate=FAST)
            if lives
            else Harvester(client, window=WINDOW, kinds=RECORD_KINDS, rate=FAST)
        )
        with pytest.raises(AuthError):
            await harvester.run(sink)
    # A handful of requests (those already in flight), not a retry storm over 98 units.
    assert sim.stats.requests <= 8
    assert sim.stats.auth_failed == sim.stats.requests
    assert sink.report is not None and sink.report.fatal and not sink.report.complete
    assert not sink.committed


async def test_cancelling_midway_stops_promptly_and_keeps_completed_units() -> None:
    sim = Simulator(SPEC, SimConfig(latency=0.02))
    truth = truth_for(sim)
    sink = MemorySink()
    async with sim_client(sim, max_concurrency=4) as client:
        harvester = Harvester(client, window=WINDOW, kinds=RECORD_KINDS, rate=FAST)
        with anyio.fail_after(10):  # a guard against a hang, not a timing assertion
            with anyio.move_on_after(0.3) as scope:
                await harvester.run(sink)
    assert scope.cancel_called
    report = sink.report
    assert report is not None and report.cancelled and not report.complete
    assert 0 < len(sink.committed) < len(truth.lives) * len(RECORD_KINDS)
    # Every unit announced complete holds exactly its live's records.
    for unit, records in sink.committed.items():
        keys = {record_key(unit.kind, unit.live.liveid, r) for r in records}
        expected = {k for k in truth.keys[unit.kind] if k[0] == unit.live.liveid}
        assert keys == expected
    # Nothing is left running: the simulator sees no request after the cancellation.
    seen = sim.stats.requests
    await anyio.sleep(0.1)
    assert sim.stats.requests == seen


async def test_stream_yields_lives_then_batches_in_page_order_and_models_on_request() -> None:
    sim = Simulator(SPEC, SimConfig(max_page_length=2))
    truth = truth_for(sim)
    pages: dict[tuple[str, str], list[int]] = {}
    ended: list[UnitResult] = []
    known: set[str] = set()
    async with sim_client(sim) as client:
        harvester = Harvester(client, window=WINDOW, kinds="vote,rollcall", rate=FAST)
        async with harvester.stream() as events:
            async for event in events:
                if isinstance(event, Live):
                    known.add(event.liveid)
                elif isinstance(event, Batch):
                    assert event.live.liveid in known, "a batch before its live"
                    pages.setdefault((event.live.liveid, event.kind), []).append(event.page)
                    if event.kind == "vote":
                        models = event.models()
                        assert [m.publish_data.vote_id for m in models] == [
                            r["publish_data"]["vote_id"] for r in event.records
                        ]
                else:
                    ended.append(event)
    assert all(numbers == sorted(numbers) for numbers in pages.values())
    assert any(len(numbers) > 1 for numbers in pages.values())
    assert len(ended) == 2 * len(truth.lives) and all(r.ok for r in ended)


async def test_a_slow_consumer_slows_fetching_instead_of_buffering() -> None:
    sim = Simulator(SPEC)
    async with sim_client(sim, max_concurrency=4) as client:
        harvester = Harvester(client, window=WINDOW, kinds=RECORD_KINDS, buffer=2, rate=FAST)
        async with harvester.stream() as events:
            first = await events.receive()
            assert isinstance(first, Live)
            await anyio.sleep(0.3)  # the consumer stalls; the harvest must stall too
            stalled_at = sim.stats.requests
            await anyio.sleep(0.2)
            assert sim.stats.requests == stalled_at
            # Bounded: buffer + units in progress, each holding at most a lookahead of pages.
            assert stalled_at < 1 + harvester.max_units * (1 + harvester.lookahead) + 2
        assert harvester.report.cancelled


def page_count_growing_transport() -> httpx.MockTransport:
    """A vote endpoint whose later pages announce more pages than the first did."""

    def handler(request: httpx.Request) -> httpx.Response:
        query = dict(parse_qsl(request.url.query.decode()))
        number = int(query["page_size"])
        announced = {1: 2, 2: 3, 3: 3}[number]
        items = [{"publish_data": {"vote_id": f"v{number}-{i}"}, "reply_data": []} for i in (0, 1)]
        return httpx.Response(
            200,
            json={
                "result": "OK",
                "data": items,
                "page_size": number,
                "page_length": 2,
                "page_count": announced,
                "error_msg": "",
            },
        )

    return httpx.MockTransport(handler)


async def test_a_page_count_that_grows_is_followed_to_the_end() -> None:
    sink = MemorySink()
    async with CollectClient(
        "U", "K", base_url="http://x", transport=page_count_growing_transport()
    ) as client:
        report = await Harvester(client, lives=[("R", "L")], kinds="vote", rate=FAST).run(sink)
    ids = [r["publish_data"]["vote_id"] for _, r in sink.records("vote")]
    assert ids == ["v1-0", "v1-1", "v2-0", "v2-1", "v3-0", "v3-1"]
    assert report.kinds["vote"].pages == 3 and report.complete and not report.issues


def repeating_transport() -> httpx.MockTransport:
    """Rollcall pages where page 2 repeats a record of page 1 and the total overstates."""

    def handler(request: httpx.Request) -> httpx.Response:
        query = dict(parse_qsl(request.url.query.decode()))
        number = int(query["page_index"])
        users = {1: ["a", "b"], 2: ["b", "c"]}.get(number, [])
        items = [{"roll_call_id": "1", "user_id": u, "live_id": "L"} for u in users]
        data = {"total": 5, "size": 2, "current": number, "data": items}
        return httpx.Response(200, json={"result": "OK", "error": None, "data": data})

    return httpx.MockTransport(handler)


async def test_repeats_are_delivered_once_and_shortfalls_reported() -> None:
    sink = MemorySink()
    async with CollectClient("U", "K", base_url="http://x", transport=repeating_transport()) as c:
        report = await Harvester(c, lives=[("R", "L")], kinds="rollcall", rate=FAST).run(sink)
    users = [r["user_id"] for _, r in sink.records("rollcall")]
    assert users == ["a", "b", "c"]
    reasons = [p.reason for p in report.issues]
    assert any("repeated" in r for r in reasons)
    # Three pages of 2 announced (total 5) but page 3 was an empty reply from this server:
    # the harvest asked for it once and reports the shortfall.
    assert any("shortfall" in r for r in reasons), reasons
    assert report.kinds["rollcall"].duplicates == 1


def two_devices_transport() -> httpx.MockTransport:
    """An access reply with one viewer entering at the same second from two devices, and
    one record sent twice."""
    visit = {"viewerid": "v1", "username": "ann", "role": "student"}
    phone = {**visit, "ip": "10.0.0.1", "platform": "mobile", "enter_time": "2026-11-01 10:00:00"}
    laptop = {**phone, "ip": "10.0.0.2", "platform": "web"}
    items = [phone, laptop, dict(laptop)]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"result": "OK", "data": items, "error_msg": ""})

    return httpx.MockTransport(handler)


async def test_two_stays_of_one_viewer_entering_at_one_second_are_both_kept() -> None:
    # The access key was (viewerid, enter_time): the second device's stay was dropped as a
    # repeat. A stay is now the viewer, both times, the IP and the platform.
    sink = MemorySink()
    async with CollectClient("U", "K", base_url="http://x", transport=two_devices_transport()) as c:
        report = await Harvester(c, lives=[("R", "L")], kinds="access", rate=FAST).run(sink)
    assert sorted(r["platform"] for _, r in sink.records("access")) == ["mobile", "web"]
    assert report.kinds["access"].duplicates == 1 and report.complete


async def test_a_failing_unit_is_reported_and_the_rest_carry_on() -> None:
    sim = Simulator(SPEC)
    truth = truth_for(sim)
    good = truth.lives[:3]
    lives = [(t.roomid, t.liveid) for t in good] + [("NO-SUCH-ROOM", "NO-SUCH-LIVE")]
    sink = MemorySink()
    async with sim_client(sim) as client:
        report = await Harvester(client, lives=lives, kinds="chat,vote", rate=FAST).run(sink)
    assert not report.complete
    failed = {(p.liveid, p.kind) for p in report.failures}
    assert failed == {("NO-SUCH-LIVE", "chat"), ("NO-SUCH-LIVE", "vote")}
    assert all("PARAM_ERROR" in p.reason for p in report.failures)
    assert len(sink.committed) == 6
    assert report.kinds["chat"].failed == 1 and report.kinds["chat"].units == 4


async def test_progress_counts_units_and_records() -> None:
    sim = Simulator(SPEC)
    truth = truth_for(sim)
    async with sim_client(sim) as client:
        harvester = Harvester(client, window=WINDOW, kinds="chat", rate=FAST)
        await harvester.run(MemorySink())
        progress = harvester.progress()
    assert progress.planning_done
    assert progress.units_total == progress.units_done == len(truth.lives)
    assert progress.records == progress.records_by_kind["chat"] == truth.count("chat")
    assert progress.requests == sim.stats.requests
    assert progress.eta is None


async def test_skipped_units_are_not_fetched() -> None:
    sim = Simulator(SPEC)
    truth = truth_for(sim)
    done = {(t.liveid, "chat") for t in truth.lives[:5]}
    sink = MemorySink()
    async with sim_client(sim) as client:
        harvester = Harvester(client, window=WINDOW, kinds="chat", skip=done, rate=FAST)
        await harvester.run(sink)
    assert harvester.units_skipped == 5
    assert {u.live.liveid for u in sink.committed} == {t.liveid for t in truth.lives[5:]}
    assert sim.stats.by_path["/collect/live/chat/record/"] == len(truth.lives) - 5


async def test_a_skip_lookup_is_asked_a_listing_page_at_a_time() -> None:
    # A database's final units are looked up per page of lives: a re-sweep of months never
    # holds every final unit of its span at once.
    sim = Simulator(SPEC)
    truth = truth_for(sim)
    done = {(t.liveid, "chat") for t in truth.lives[:5]} | {("not listed", "chat")}
    asked: list[list[str]] = []

    async def lookup(lives: Sequence[Live]) -> set[tuple[str, str]]:
        asked.append([live.liveid for live in lives])
        return done

    sink = MemorySink()
    async with sim_client(sim) as client:
        harvester = Harvester(
            client, window=WINDOW, kinds="chat", skip=lookup, rate=FAST, page_length=4
        )
        await harvester.run(sink)
    assert [len(page) for page in asked] == [4, 4, 4, 2]
    assert [liveid for page in asked for liveid in page] == [t.liveid for t in truth.lives]
    assert harvester.units_skipped == 5
    assert harvester.progress().units_skipped_by_kind == {"chat": 5}
    assert {u.live.liveid for u in sink.committed} == {t.liveid for t in truth.lives[5:]}
    assert sim.stats.by_path["/collect/live/chat/record/"] == len(truth.lives) - 5


async def test_explicit_lives_are_asked_of_a_skip_lookup_in_pages_each_once() -> None:
    asked: list[list[str]] = []

    async def lookup(lives: Sequence[Live]) -> set[tuple[str, str]]:
        asked.append([live.liveid for live in lives])
        return {(live.liveid, "chat") for live in lives}

    named = [("R1", f"L{i}") for i in range(5)] + [("R1", "L0")]
    async with sim_client(Simulator(SPEC)) as client:
        harvester = Harvester(client, lives=named, kinds="chat", skip=lookup, page_length=2)
        report = await harvester.run(MemorySink())
    assert asked == [["L0", "L1"], ["L2", "L3"], ["L4"]]
    assert report.lives == 5 and harvester.units_skipped == 5 and report.requests == 0
