"""The incremental rule on the simulator: a live running during night 1 is stored partly,
and night 2 completes it with no duplicate and no stale row, fetching only what was not
final; a unit whose refetch comes back empty loses its old rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sync_checks import assert_matches_truth, record_keys, rows

from cc_collect_async import CollectClient
from cc_collect_async.beijing import BEIJING
from cc_collect_async.database import SyncReport, sync
from cc_collect_async.sim import DEMO_API_KEY, DEMO_USERID, DatasetSpec, RunningDataset, Simulator

pytestmark = pytest.mark.anyio

SPEC = DatasetSpec(lives=18, huge_every=0, empty_every=0)
KINDS = ("chat", "access", "vote", "rollcall")
NIGHT_1 = datetime(2026, 11, 1, 20, 0)  # Beijing time: mid-window, some lives running
NIGHT_2 = datetime(2026, 11, 4, 2, 30)  # every live ended hours ago
FAST = {"initial_rate": 1000.0}


def _at(moment: datetime) -> datetime:
    return moment.replace(tzinfo=BEIJING)


async def _sync_at(
    sim: Simulator,
    database: str,
    moment: datetime,
    kinds: tuple[str, ...] = KINDS,
    **window: datetime,
) -> SyncReport:
    async with CollectClient(
        DEMO_USERID, DEMO_API_KEY, base_url="http://sim", transport=sim.transport()
    ) as client:
        return await sync(
            client,
            database,
            kinds=kinds,
            settle=timedelta(hours=3),
            clock=lambda: _at(moment),
            harvest_options=FAST,
            **window,
        )


async def test_a_running_live_is_completed_the_next_night(database: str) -> None:
    data = RunningDataset(SPEC, now=NIGHT_1)
    sim = Simulator(data)
    first = await _sync_at(sim, database, NIGHT_1)
    seen_1 = data.truth(None, NIGHT_1)
    assert_matches_truth(database, seen_1, KINDS)
    running = {live.liveid for live in seen_1.lives if live.end_time > NIGHT_1}
    settling = {
        live.liveid
        for live in seen_1.lives
        if NIGHT_1 - timedelta(hours=3) < live.end_time <= NIGHT_1
    }
    assert running, "the scenario needs a live running at night 1"
    open_lives = running | settling
    assert {
        liveid for (liveid,) in rows(database, "SELECT liveid FROM cc_lives WHERE end_time IS NULL")
    } == running
    not_final = {
        liveid
        for (liveid,) in rows(database, "SELECT DISTINCT liveid FROM cc_units WHERE NOT final")
    }
    assert not_final == open_lives
    # A viewer still inside at night 1 has no exit time yet: a row night 2 must replace.
    assert rows(database, "SELECT count(*) FROM cc_access WHERE exit_time IS NULL")[0][0] > 0
    assert first.complete

    data.set_now(None)  # night 2: everything has ended
    sim.reset_stats()
    second = await _sync_at(sim, database, NIGHT_2)
    plan = second.plan
    oldest = min(live.start_time for live in seen_1.lives if live.liveid in open_lives)
    assert plan.since == _at(oldest) and plan.watermark == _at(NIGHT_1)
    seen_2 = data.truth(None, NIGHT_2)
    new_lives = {live.liveid for live in seen_2.lives} - {live.liveid for live in seen_1.lives}
    fetched = len(open_lives | new_lives) * len(KINDS)
    assert second.committed_units == fetched
    assert sim.stats.requests == 1 + fetched  # one listing page; one request per unit here
    assert_matches_truth(database, seen_2, KINDS)
    assert rows(database, "SELECT count(*) FROM cc_access WHERE exit_time IS NULL") == [(0,)]
    assert rows(database, "SELECT count(*) FROM cc_units WHERE NOT final") == [(0,)]
    assert rows(database, "SELECT count(*) FROM cc_lives WHERE end_time IS NULL") == [(0,)]
    assert sorted(rows(database, "SELECT kind, watermark FROM cc_watermarks")) == [
        (kind, _at(NIGHT_2)) for kind in sorted(KINDS)
    ]

    sim.reset_stats()
    third = await _sync_at(sim, database, NIGHT_2 + timedelta(days=1))
    assert third.committed_units == 0 and sim.stats.requests == 1


async def test_a_refetch_that_comes_back_empty_clears_the_units_rows(tmp_path: Path) -> None:
    database = f"duckdb:///{tmp_path / 'cc.duckdb'}"
    night_1 = RunningDataset(SPEC, now=NIGHT_1)
    await _sync_at(Simulator(night_1), database, NIGHT_1)
    running = [live.liveid for live in night_1.lives() if live.end_time > NIGHT_1]
    chat_before = dict(rows(database, "SELECT liveid, count(*) FROM cc_chat GROUP BY liveid"))
    assert all(chat_before.get(liveid) for liveid in running)

    # The same lives, whose chat the vendor has since dropped.
    night_2 = RunningDataset(DatasetSpec(lives=18, huge_every=0, empty_every=0, chat_per_live=0))
    await _sync_at(Simulator(night_2), database, NIGHT_2)
    chat_after = dict(rows(database, "SELECT liveid, count(*) FROM cc_chat GROUP BY liveid"))
    for liveid in running:
        assert liveid not in chat_after
        assert rows(
            database, f"SELECT records FROM cc_units WHERE liveid = '{liveid}' AND kind = 'chat'"
        ) == [(0,)]
    # Final units were not fetched again: their rows stay as they were.
    kept = {k: v for k, v in chat_before.items() if k not in running and k in chat_after}
    assert kept and all(chat_after[k] == v for k, v in kept.items())


async def test_a_sync_of_other_kinds_leaves_the_first_kinds_where_they_were(
    database: str,
) -> None:
    """Chat synced to 11-01 noon; then votes alone, with no --since (a first sync of votes:
    yesterday and today); then both. One watermark per account had moved to the votes'
    end, and the third sync did nothing: the chat of 11-01 noon to 11-04 was never fetched."""
    data = RunningDataset(SPEC, now=None)
    sim = Simulator(data)
    noon = datetime(2026, 11, 1, 12)
    await _sync_at(sim, database, NIGHT_2, ("chat",), since=datetime(2026, 10, 20), until=noon)
    votes = await _sync_at(sim, database, NIGHT_2, ("vote",))
    assert votes.plan.since == _at(datetime(2026, 11, 3)) and votes.complete
    both = await _sync_at(sim, database, NIGHT_2, ("chat", "vote"))
    assert both.plan.since == both.plan.watermark == _at(noon) and both.complete
    truth = data.truth(None, NIGHT_2)
    assert set(record_keys(database, "chat")) == truth.keys["chat"]
    assert set(record_keys(database, "vote")) == data.truth(noon, NIGHT_2).keys["vote"]
    assert sorted(rows(database, "SELECT kind, watermark FROM cc_watermarks")) == [
        ("chat", _at(NIGHT_2)),
        ("vote", _at(NIGHT_2)),
    ]


class _Vanishing(RunningDataset):
    """The vendor's listing without the lives in ``gone`` (removed on its side)."""

    gone: frozenset[str] = frozenset()

    def lives(self, *args: Any, **kwargs: Any) -> list[Any]:
        return [live for live in super().lives(*args, **kwargs) if live.liveid not in self.gone]


async def test_a_live_the_vendor_stops_listing_does_not_hold_every_later_sync_back(
    database: str,
) -> None:
    # Listed while it ran, then removed: its units were never final, and every later sync
    # started at its start, listing more lives each night. If a listing holds it again, its
    # units (still not final) are fetched then.
    data = _Vanishing(SPEC, now=NIGHT_1)
    sim = Simulator(data)
    await _sync_at(sim, database, NIGHT_1)
    running = {live.liveid for live in data.truth(None, NIGHT_1).lives if live.end_time > NIGHT_1}
    assert running, "the scenario needs a live running at night 1"
    data.gone = frozenset(running)
    data.set_now(None)
    second = await _sync_at(sim, database, NIGHT_2)
    third = await _sync_at(sim, database, NIGHT_2 + timedelta(days=1))
    assert second.complete and third.complete
    assert third.plan.since == _at(NIGHT_2)  # the watermark: nothing holds it back
    gone = ", ".join(f"'{liveid}'" for liveid in sorted(running))
    assert rows(
        database, f"SELECT count(*), bool_or(final) FROM cc_units WHERE liveid IN ({gone})"
    )[0] == (len(running) * len(KINDS), False)  # kept as they were
    data.gone = frozenset()  # back in the listing: a re-sweep completes them
    swept = await _sync_at(sim, database, NIGHT_2 + timedelta(days=1), since=datetime(2026, 11, 1))
    assert swept.complete
    assert_matches_truth(database, data.truth(None, NIGHT_2), KINDS)
