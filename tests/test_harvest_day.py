"""harvest_day: one Beijing-time day of one account into one resumable directory."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from cc_collect_async import CollectClient, RetryPolicy, harvest_day
from cc_collect_async.harvest import ALL_KINDS, read_records
from cc_collect_async.harvest.manifest import DifferentHarvestError
from cc_collect_async.sim import DEMO_API_KEY, DEMO_USERID, DatasetSpec, SimConfig, Simulator

pytestmark = pytest.mark.anyio

SPEC = DatasetSpec(lives=8, rooms=2, window_days=2, chat_per_live=8, access_per_live=8)
DAY = date(2026, 11, 1)


def client_of(sim: Simulator, **options: object) -> CollectClient:
    return CollectClient(
        DEMO_USERID,
        DEMO_API_KEY,
        base_url="http://sim",
        transport=sim.transport(),
        **options,  # type: ignore[arg-type]
    )


async def test_one_day_complete_then_nothing_to_do(tmp_path: Path) -> None:
    sim = Simulator(SPEC)
    out = tmp_path / DEMO_USERID / DAY.isoformat()
    async with client_of(sim) as client:
        manifest = await harvest_day(client, out, DAY, kinds=["chat", "access"])
    truth = sim.truth(datetime(2026, 11, 1), datetime(2026, 11, 2))
    assert 0 < len(truth.lives) < SPEC.lives  # the day holds some of the lives, not all
    assert manifest["complete"] is True and manifest["lives"] == len(truth.lives)
    assert manifest["request"]["window"]["since"] == "2026-11-01T00:00+08:00"
    chat = list(read_records(out, "chat"))
    assert len(chat) == len(truth.keys["chat"])

    requests = sim.stats.requests
    async with client_of(sim) as client:
        again = await harvest_day(client, out, DAY, kinds=["chat", "access"])
    assert sim.stats.requests == requests  # a finished directory costs no request
    assert again["complete"] is True and again["records"] == manifest["records"]


async def test_failed_units_are_fetched_by_the_next_call(tmp_path: Path) -> None:
    flaky = Simulator(SPEC, SimConfig(fault_rate=0.5, fault_kinds=("http503",), fault_seed=8))
    out = tmp_path / "day"
    async with client_of(flaky, retry=RetryPolicy.never()) as client:
        first = await harvest_day(client, out, DAY, kinds=["chat"])
    assert first["complete"] is False and first["units"]["failed"] > 0
    done_before = first["units"]["done"]

    healthy = Simulator(SPEC)
    async with client_of(healthy) as client:
        second = await harvest_day(client, out, DAY, kinds=["chat"])
    assert second["complete"] is True
    fetched = healthy.stats.by_path.get("/collect/live/chat/record/", 0)
    assert fetched == second["units"]["done"] - done_before  # only the missing units
    truth = healthy.truth(datetime(2026, 11, 1), datetime(2026, 11, 2))
    assert len(list(read_records(out, "chat"))) == len(truth.keys["chat"])


async def test_a_directory_holding_another_harvest_is_refused(tmp_path: Path) -> None:
    sim = Simulator(SPEC)
    async with client_of(sim) as client:
        await harvest_day(client, tmp_path, DAY, kinds=["chat"])
        with pytest.raises(DifferentHarvestError):
            await harvest_day(client, tmp_path, date(2026, 11, 2), kinds=["chat"])


async def test_kinds_as_text_and_an_aware_moment_as_the_day(tmp_path: Path) -> None:
    """``kinds="chat,access"`` was split into letters; 2026-11-01 20:00 UTC is 11-02 in
    Beijing, and was taken as 11-01."""
    sim = Simulator(SPEC)
    moment = datetime(2026, 11, 1, 20, tzinfo=timezone.utc)
    async with client_of(sim) as client:
        manifest = await harvest_day(client, tmp_path / "d", moment, kinds="chat,access")
        every = await harvest_day(client, tmp_path / "all", DAY, kinds="all")
    assert manifest["complete"] is True
    assert manifest["request"]["kinds"] == ["chat", "access"]
    assert manifest["request"]["window"]["since"] == "2026-11-02T00:00+08:00"
    assert every["request"]["kinds"] == list(ALL_KINDS)
