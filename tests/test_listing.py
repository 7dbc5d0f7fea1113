"""The live listing (``list_lives``), the one walk both the harvest and ``cc-collect lives``
use, and how far it runs ahead of the units: against the simulator, in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import anyio
import pytest

from cc_collect_async import AuthError, CollectClient, CollectError, RetryPolicy, VoteRecord
from cc_collect_async.harvest import KINDS, Batch, Harvester, Live, Window, list_lives
from cc_collect_async.sim import DEMO_API_KEY, DEMO_USERID, DatasetSpec, SimConfig, Simulator

pytestmark = pytest.mark.anyio

WINDOW = Window(datetime(2026, 11, 1), datetime(2026, 11, 3))
NO_WAIT = RetryPolicy(max_attempts=2, initial_backoff=0.0, max_backoff=0.0)


@asynccontextmanager
async def sim_client(sim: Simulator, api_key: str = DEMO_API_KEY) -> AsyncIterator[CollectClient]:
    async with CollectClient(
        DEMO_USERID, api_key, base_url="http://sim", transport=sim.transport(), retry=NO_WAIT
    ) as client:
        yield client


def never_fails(room: str | None, exc: CollectError) -> None:
    raise AssertionError(f"listing of room {room} failed: {exc}")


async def listed(
    client: CollectClient, window: Window, failed: Any = never_fails, **options: Any
) -> list[Live]:
    return [live async for live in list_lives(client, window, failed, **options)]


async def test_every_live_of_the_window_once_page_by_page() -> None:
    sim = Simulator(DatasetSpec(lives=23, rooms=3), SimConfig(max_page_length=5))
    truth = sim.dataset.lives(datetime(2026, 11, 1), datetime(2026, 11, 3))
    async with sim_client(sim) as client:
        lives = await listed(client, WINDOW)
    assert [live.liveid for live in lives] == [t.liveid for t in truth]
    assert all(live.raw["liveid"] == live.liveid for live in lives), "the listing's own item"
    assert sim.stats.by_path["/collect/live/record"] == 5  # 23 lives, 5 a page


async def test_a_failing_room_is_reported_and_the_other_rooms_are_still_listed() -> None:
    sim = Simulator(DatasetSpec(lives=12, rooms=3))
    room = sim.dataset.lives()[0].roomid
    failures: list[tuple[str | None, str]] = []
    window = Window(WINDOW.since, WINDOW.until, ("NOSUCHROOM", room))
    async with sim_client(sim) as client:
        lives = await listed(client, window, lambda room, exc: failures.append((room, str(exc))))
    assert [room for room, _ in failures] == ["NOSUCHROOM"]
    assert "not a room of this account" in failures[0][1]
    assert lives and {live.roomid for live in lives} == {room}


async def test_rejected_credentials_end_the_walk() -> None:
    sim = Simulator(DatasetSpec(lives=3))
    async with sim_client(sim, api_key="wrong-key") as client:
        with pytest.raises(AuthError):
            await listed(client, WINDOW)


async def test_the_listing_is_not_held_back_by_the_units() -> None:
    """Nobody reads the events, so every unit soon waits; the listing still runs to its end
    and the unit total (the ETA's denominator) is known while almost no unit is done."""
    spec = DatasetSpec(lives=150, rooms=3, votes_per_live=1, empty_every=0, huge_every=0)
    sim = Simulator(spec, SimConfig(max_page_length=10))
    async with sim_client(sim) as client:
        harvester = Harvester(client, window=WINDOW, kinds="vote,answercard", buffer=1, rate=1e4)
        async with harvester.stream():
            with anyio.fail_after(30):
                # Polls a snapshot: the harvest has no event for "listing done" to wait on.
                while not harvester.progress().planning_done:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            progress = harvester.progress()
    assert progress.lives == 150
    assert progress.units_total == 300
    assert progress.units_done < 50, "the units were held back by the unread stream"
    assert sim.stats.by_path["/collect/live/record"] == 15


async def test_summary_records_stay_in_wire_form_and_others_become_models() -> None:
    sim = Simulator(DatasetSpec(lives=2))
    live = sim.dataset.lives()[0]
    async with sim_client(sim) as client:
        harvester = Harvester(client, lives=[(live.roomid, live.liveid)], kinds="summary,vote")
        batches: dict[str, Batch] = {}
        async with harvester.stream() as events:
            async for event in events:
                if isinstance(event, Batch):
                    batches[event.kind] = event
    (summary,) = batches["summary"].models()
    assert type(summary) is dict and summary["liveid"] == live.liveid
    assert set(summary) == {"roomid", "liveid", "duration", "user_count", "max_parallel", "gather"}
    assert summary["user_count"]["livecount"] == sim.dataset.viewer_count(live.liveid)
    votes = batches["vote"].models()
    assert votes and all(isinstance(vote, VoteRecord) for vote in votes)
    assert KINDS["vote"].models(batches["vote"].records) == votes
