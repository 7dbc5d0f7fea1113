"""The directory sink: files equal to the simulator's truth, atomic units, resume, refusals.

Real harvester, real simulator (in process), real files in a temporary directory.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cc_collect_async import CollectClient
from cc_collect_async.harvest import ALL_KINDS, DEFAULT_KINDS, Batch, Harvester, UnitResult, Window
from cc_collect_async.harvest.filesystem import DirectoryLock, OutputBusyError, OutputError
from cc_collect_async.harvest.jsonl import read_jsonl
from cc_collect_async.harvest.manifest import (
    DifferentHarvestError,
    NotAHarvestDirectoryError,
    Tally,
    build_manifest,
    read_manifest,
)
from cc_collect_async.harvest.outdir import DirectorySink, read_records
from cc_collect_async.harvest.parquet import read_parquet, write_parquet
from cc_collect_async.harvest.report import HarvestReport
from cc_collect_async.harvest.request import HarvestRequest
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

SPEC = DatasetSpec(lives=12)
WINDOW = Window(datetime(2026, 11, 1), datetime(2026, 11, 3))


@pytest.fixture
def anyio_backend() -> str:
    # The sink does plain file I/O; the harvester's trio run is covered by test_harvest.py.
    return "asyncio"


@pytest.fixture
def sim() -> Simulator:
    return Simulator(SPEC, SimConfig())


def client_for(sim: Simulator) -> CollectClient:
    return CollectClient(
        DEMO_USERID, DEMO_API_KEY, base_url="http://sim", transport=sim.transport()
    )


KINDS_5 = ("chat", "access", "vote", "answercard", "rollcall")


def request_for(kinds: tuple[str, ...] = ALL_KINDS, fmt: str = "jsonl") -> HarvestRequest:
    return HarvestRequest(kinds=kinds, window=WINDOW, format=fmt)  # type: ignore[arg-type]


async def harvest(
    sim: Simulator, out: Path, request: HarvestRequest, **options: Any
) -> DirectorySink:
    async with client_for(sim) as client:
        with DirectorySink(out, request) as sink:
            if sink.already_complete:
                return sink
            harvester = Harvester(
                client,
                window=request.window,
                lives=request.lives or None,
                kinds=request.kinds,
                initial_rate=500,
                skip=sink.skip,
                **options,
            )
            await harvester.run(sink)
    return sink


def truth() -> Truth:
    return Simulator(SPEC).truth(WINDOW.since, WINDOW.until)


def harvested_keys(out: Path, kind: str) -> Counter[tuple[Any, ...]]:
    return Counter(record_key(kind, row["liveid"], row) for row in read_records(out, kind))


def assert_equals_truth(out: Path, kinds: tuple[str, ...]) -> None:
    expected = truth()
    lives = Counter(row["liveid"] for row in read_records(out, "lives"))
    assert lives == Counter(live.liveid for live in expected.lives)
    for kind in kinds:
        if kind == "summary":
            assert Counter(r["liveid"] for r in read_records(out, kind)) == lives
            continue
        keys = harvested_keys(out, kind)
        assert max(keys.values(), default=1) == 1, f"{kind}: a record written twice"
        assert set(keys) == expected.keys[kind], kind


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def journal(out: Path) -> list[dict[str, Any]]:
    """The committed units' journal entries."""
    return list(read_jsonl(out / ".parts" / "units.jsonl"))


async def test_window_harvest_equals_truth_and_keeps_vendor_fields(
    sim: Simulator, tmp_path: Path
) -> None:
    sink = await harvest(sim, tmp_path, request_for())

    assert_equals_truth(tmp_path, ALL_KINDS)
    dataset = sim.dataset
    for kind in ("chat", "rollcall", "vote"):
        for row in read_jsonl(tmp_path / f"{kind}.jsonl"):
            live = dataset.live(row["liveid"])
            assert live is not None and row["roomid"] == live.roomid
            vendor = {k: v for k, v in row.items() if k not in ("liveid", "roomid")}
            originals = dataset.records(row["liveid"], kind)
            # Every vendor field exactly as sent, in the vendor's order, nothing else.
            assert any(list(vendor.items()) == list(o.items()) for o in originals)
            break
    # Where the vendor sends liveid/roomid itself (summary), its own values stay.
    summary = next(read_jsonl(tmp_path / "summary.jsonl"))
    assert list(summary)[:2] == ["roomid", "liveid"]
    manifest = read_manifest(tmp_path)
    assert manifest == sink.manifest
    assert manifest["complete"] is True
    assert manifest["units"] == {
        "expected": 12 * 8,
        "expected_is": "exact",
        "done": 12 * 8,
        "failed": 0,
    }
    assert manifest["kinds"]["chat"]["records"] == truth().count("chat")
    assert manifest["requests"] == sim.stats.requests
    assert manifest["request"]["window"]["since"] == "2026-11-01T00:00+08:00"
    assert not (tmp_path / ".parts").exists(), "parts of a complete harvest are removed"


async def test_text_survives_byte_for_byte(sim: Simulator, tmp_path: Path) -> None:
    await harvest(sim, tmp_path, request_for(("chat",)))
    raw = (tmp_path / "chat.jsonl").read_bytes()
    assert "老师".encode() in raw, "non-ASCII is written as UTF-8, not escaped"
    lines = raw.split(b"\n")
    assert lines[-1] == b"" and all(lines[:-1]), "one record per line, newline-terminated"
    contents = {json.loads(line)["content"] for line in lines[:-1]}
    assert any("\n" in c for c in contents), "newlines inside values stay escaped in the line"


async def test_stopped_after_n_units_then_resumed_has_each_record_once(
    sim: Simulator, tmp_path: Path
) -> None:
    """A deterministic stand-in for SIGKILL: stop consuming after 7 committed units without
    closing the sink, so temporaries and a 'running' manifest are all that is left."""
    request = request_for(DEFAULT_KINDS)
    async with client_for(sim) as client:
        sink = DirectorySink(tmp_path, request)
        sink.open()
        harvester = Harvester(client, window=WINDOW, kinds=DEFAULT_KINDS, initial_rate=500)
        committed = 0
        async with harvester.stream() as events:
            async for event in events:
                if isinstance(event, Batch):
                    await sink.write(event)
                elif isinstance(event, UnitResult):
                    await sink.unit_end(event)
                    committed += event.ok
                    if committed == 7:
                        break
                else:
                    await sink.live(event)
        # Whatever was being received is still a temporary, never under a final name.
        sink._lock.release()  # the kernel's part of a kill
    assert not (tmp_path / "chat.jsonl").exists()
    assert read_manifest(tmp_path)["complete"] is False
    assert len(journal(tmp_path)) == 7
    requests_before = sim.stats.requests

    sink = await harvest(sim, tmp_path, request)

    assert len(sink.skip) == 7
    assert_equals_truth(tmp_path, DEFAULT_KINDS)
    manifest = read_manifest(tmp_path)
    assert manifest["complete"] is True
    assert manifest["units"]["done"] == 12 * 5
    assert [r["outcome"] for r in manifest["runs"]] == ["killed", "complete"]
    assert manifest["runs"][-1]["units_skipped"] == 7
    # The resumed run fetched the rest only: 53 units + the listing, not 60 + listing.
    assert sim.stats.requests - requests_before == manifest["runs"][-1]["requests"]
    assert manifest["runs"][-1]["units_fetched"] == 12 * 5 - 7


async def test_part_shorter_than_its_journal_entry_is_fetched_again(
    sim: Simulator, tmp_path: Path
) -> None:
    """A unit whose bytes never reached the disk (a power cut: the journal line did, the
    spool's pages did not, and read back as zeros) is fetched again; the others are kept."""
    lives = [(lv.roomid, lv.liveid) for lv in sim.dataset.lives(WINDOW.since, WINDOW.until)]
    bogus = HarvestRequest(kinds=("chat",), lives=[*lives[:3], ("nosuchroom", "nosuchlive")])
    sink = await harvest(sim, tmp_path, bogus)
    assert sink.manifest is not None and sink.manifest["complete"] is False
    spool = tmp_path / ".parts" / "chat.jsonl"
    lost = next(e for e in journal(tmp_path) if e["liveid"] == lives[0][1])
    data = bytearray(spool.read_bytes())
    data[lost["offset"] : lost["offset"] + lost["length"]] = bytes(lost["length"])
    spool.write_bytes(bytes(data))

    with DirectorySink(tmp_path, bogus) as reopened:
        assert reopened.skip == {(lives[1][1], "chat"), (lives[2][1], "chat")}
    assert {e["liveid"] for e in journal(tmp_path)} == {lives[1][1], lives[2][1]}

    await harvest(sim, tmp_path, bogus)
    rows = Counter(row["liveid"] for row in read_jsonl(tmp_path / "chat.jsonl"))
    assert rows == {lv: sim.dataset.count(lv, "chat") for _, lv in lives[:3]}


async def test_failed_unit_is_not_committed_and_is_retried_by_a_rerun(
    sim: Simulator, tmp_path: Path
) -> None:
    live = sim.dataset.lives(WINDOW.since, WINDOW.until)[0]
    request = HarvestRequest(
        kinds=("chat", "access"), lives=[(live.roomid, live.liveid), (live.roomid, "NOSUCHLIVE")]
    )
    sink = await harvest(sim, tmp_path, request)
    manifest = sink.manifest
    assert manifest is not None
    assert manifest["complete"] is False
    assert {(f["kind"], f["liveid"]) for f in manifest["failures"]} == {
        ("chat", "NOSUCHLIVE"),
        ("access", "NOSUCHLIVE"),
    }
    assert manifest["kinds"]["chat"] == {
        "units": 1,
        "failed": 1,
        "pages": 1,
        "records": sim.dataset.count(live.liveid, "chat"),
        "duplicates": 0,
        "file": "chat.jsonl",
    }
    assert "NOSUCHLIVE" not in {e["liveid"] for e in journal(tmp_path)}
    # The files hold the complete units already.
    assert len(list(read_jsonl(tmp_path / "chat.jsonl"))) == sim.dataset.count(live.liveid, "chat")

    before = sim.stats.requests
    again = await harvest(sim, tmp_path, request)
    assert again.skip == {(live.liveid, "chat"), (live.liveid, "access")}
    assert sim.stats.requests - before == 2, "only the two failed units are asked again"
    assert again.manifest is not None and len(again.manifest["runs"]) == 2


async def test_a_complete_harvest_archived_read_only_has_nothing_to_do(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock cannot be taken in a directory nobody may write to; a complete harvest there
    is still 'nothing to do', and a partial one still an output error. (As root, the tests
    see every directory writable: the refusal is stood in for.)"""
    await harvest(sim, tmp_path / "done", request_for())
    with DirectorySink(tmp_path / "partial", request_for()):
        pass  # a first manifest only
    refused = OutputError("cannot write to the output directory (Permission denied)")

    def acquire(self: object) -> None:
        raise refused

    monkeypatch.setattr(DirectoryLock, "acquire", acquire)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with DirectorySink(tmp_path / "done", request_for()) as sink:
        assert sink.already_complete and sink.manifest is not None
        assert sink.manifest["complete"] is True
    with pytest.raises(OutputError) as caught:
        DirectorySink(tmp_path / "partial", request_for()).open()
    assert caught.value is refused


async def test_rerun_of_a_complete_harvest_reads_only_the_manifest(
    sim: Simulator, tmp_path: Path
) -> None:
    await harvest(sim, tmp_path, request_for(DEFAULT_KINDS))
    before = (tmp_path / "manifest.json").read_bytes()
    requests = sim.stats.requests

    sink = await harvest(sim, tmp_path, request_for(DEFAULT_KINDS))

    assert sink.already_complete
    assert sim.stats.requests == requests
    assert (tmp_path / "manifest.json").read_bytes() == before


async def test_a_different_request_or_a_foreign_directory_is_refused(
    sim: Simulator, tmp_path: Path
) -> None:
    await harvest(sim, tmp_path / "h", request_for(("chat",)))
    with pytest.raises(DifferentHarvestError, match="different harvest"):
        DirectorySink(tmp_path / "h", request_for(("chat", "access"))).open()
    with pytest.raises(DifferentHarvestError):
        DirectorySink(tmp_path / "h", request_for(("chat",), "parquet")).open()
    # Same request in another order is the same harvest.
    same = HarvestRequest(kinds=("chat",), window=Window(WINDOW.since, WINDOW.until, ()))
    with DirectorySink(tmp_path / "h", same) as sink:
        assert sink.already_complete

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(NotAHarvestDirectoryError, match=r"notes\.txt"):
        DirectorySink(tmp_path / "mine", request_for()).open()
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"


def test_a_directory_of_another_account_or_server_is_refused(tmp_path: Path) -> None:
    """A partial directory resumed with another account's credentials (or another server)
    merged both accounts' records and called the result complete: it is refused now. A
    caller that names no source (a library use) is not checked."""
    ours = {"userid": "ACCOUNT1", "base_url": "https://api.example"}
    with DirectorySink(tmp_path / "h", request_for(), source=ours) as sink:
        assert not sink.already_complete  # opened: a first, partial manifest is written
    for other in (
        {**ours, "userid": "ACCOUNT2"},
        {**ours, "base_url": "http://127.0.0.1:8000"},
    ):
        with pytest.raises(DifferentHarvestError, match=r"ACCOUNT1 from https://api\.example"):
            DirectorySink(tmp_path / "h", request_for(), source=other).open()
    with DirectorySink(
        tmp_path / "h", request_for(), source={**ours, "base_url": "https://api.example/"}
    ):
        pass
    with DirectorySink(tmp_path / "h", request_for()):
        pass


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    with (
        DirectorySink(tmp_path, request_for()),
        pytest.raises(OutputBusyError, match="in use by another cc-collect run"),
    ):
        DirectorySink(tmp_path, request_for()).open()
    with DirectorySink(tmp_path, request_for()):
        pass  # released


def test_a_file_in_the_way_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="it is a file"):
        DirectorySink(blocker, request_for()).open()
    with pytest.raises(OutputError, match="cannot create the output directory"):
        DirectorySink(blocker / "sub", request_for()).open()


async def test_disk_full_is_an_output_error_and_commits_nothing_half_written(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cc_collect_async.harvest.journal import Journal

    # Every kind's spool is /dev/full: the first committed unit meets ENOSPC.
    monkeypatch.setattr(Journal, "spool", lambda self, kind: Path("/dev/full"))
    with pytest.raises(BaseException) as caught:
        await harvest(sim, tmp_path, request_for(("chat",)))
    from cc_collect_async.cli.exits import find_error

    error = find_error(caught.value, OutputError)
    assert error is not None and "No space left on device" in str(error)
    assert journal(tmp_path) == []
    manifest = read_manifest(tmp_path)
    assert manifest["runs"][-1]["outcome"] == "output-error"
    assert "No space left on device" in manifest["runs"][-1]["error"]
    # The lives seen before the failure are counted.
    seen = len(list(read_jsonl(tmp_path / ".parts" / "lives.jsonl")))
    assert seen > 0 and manifest["lives"] == seen


async def test_parquet_holds_the_same_rows_as_jsonl(sim: Simulator, tmp_path: Path) -> None:
    kinds = ("chat", "vote", "rollcall", "summary")
    await harvest(sim, tmp_path / "j", request_for(kinds))
    await harvest(sim, tmp_path / "p", request_for(kinds, "parquet"))
    assert not list((tmp_path / "p").glob("chat.jsonl"))
    for kind in kinds:
        rows = list(read_jsonl(tmp_path / "j" / f"{kind}.jsonl"))
        columns = read_parquet(tmp_path / "p" / f"{kind}.parquet")
        assert len(columns) == len(rows)
        for row, back in zip(rows, columns, strict=True):
            assert {k: v for k, v in back.items() if v is not None or k in row} == row
    assert_equals_truth(tmp_path / "p", kinds)


def test_parquet_columns_survive_mixed_and_nested_types(tmp_path: Path) -> None:
    part = tmp_path / "part.jsonl"
    rows = [
        {"n": 1, "x": 1, "s": "a", "nested": {"a": [1, 2]}, "b": True, "big": 2**70},
        {"n": 2.5, "x": "1", "s": None, "nested": [1], "b": False, "big": 1},
        {"only_here": "z", "liveid": "L", "roomid": "R"},
    ]
    part.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")

    def records() -> Iterator[dict[str, Any]]:
        yield from read_jsonl(part)
        yield from read_jsonl(empty)

    assert write_parquet(tmp_path / "out.parquet", records) == 3
    back = read_parquet(tmp_path / "out.parquet")
    for row, got in zip(rows, back, strict=True):
        assert {k: v for k, v in got.items() if k in row} == row
    import pyarrow.parquet as pq

    schema = pq.read_schema(tmp_path / "out.parquet")
    assert str(schema.field("n").type) == "double"
    assert str(schema.field("b").type) == "bool"
    assert str(schema.field("x").type) == "string"  # JSON text: 1 and "1" stay apart
    assert write_parquet(tmp_path / "none.parquet", lambda: read_jsonl(empty)) == 0
    assert pq.read_schema(tmp_path / "none.parquet").names == ["liveid", "roomid"]


def test_request_validation() -> None:
    with pytest.raises(ValueError, match="either a window or a list of lives"):
        HarvestRequest(kinds=("chat",))
    with pytest.raises(ValueError, match="unknown kind"):
        HarvestRequest(kinds=("chats",), window=WINDOW)
    with pytest.raises(ValueError, match="unknown format"):
        HarvestRequest(kinds=("chat",), window=WINDOW, format="csv")  # type: ignore[arg-type]


async def test_awkward_live_ids_stay_inside_the_directory(sim: Simulator, tmp_path: Path) -> None:
    request = HarvestRequest(kinds=("chat",), lives=[("room", "../../escape"), ("r", "a/b")])
    sink = await harvest(sim, tmp_path / "out", request)
    assert sink.manifest is not None and len(sink.manifest["failures"]) == 2
    # Ids are data, never file names: nothing is written outside the directory.
    assert files_under(tmp_path) == [
        "out/.lock",
        "out/.parts/chat.jsonl",
        "out/.parts/lives.jsonl",
        "out/.parts/units.jsonl",
        "out/manifest.json",
    ]
    assert [lv["liveid"] for lv in read_jsonl(tmp_path / "out" / ".parts" / "lives.jsonl")] == [
        "../../escape",
        "a/b",
    ]


async def test_completed_lives_are_listed_once_in_start_order(
    sim: Simulator, tmp_path: Path
) -> None:
    await harvest(sim, tmp_path, request_for(("access",)))
    lives = list(read_jsonl(tmp_path / "lives.jsonl"))
    assert [lv["start_time"] for lv in lives] == sorted(lv["start_time"] for lv in lives)
    assert len({lv["liveid"] for lv in lives}) == len(lives) == 12


async def test_ids_are_added_only_where_the_vendor_sent_none(tmp_path: Path) -> None:
    from cc_collect_async.harvest import HarvestReport, Live, Unit

    unit = Unit(Live("R1", "L1"), "chat")
    request = HarvestRequest(kinds=("chat",), lives=[("R1", "L1")])
    sent = [{"id": 1, "liveid": "vendor-L"}, {"id": 2, "roomid": "vendor-R"}, {"id": 3}]
    with DirectorySink(tmp_path, request) as sink:
        await sink.live(unit.live)
        await sink.write(Batch(unit, 1, sent))
        await sink.unit_end(UnitResult(unit, ok=True, pages=1, records=3))
        report = HarvestReport(started_at=datetime.now().astimezone(), kinds={})
        await sink.close(report)
    assert list(read_jsonl(tmp_path / "chat.jsonl")) == [
        {"id": 1, "liveid": "vendor-L", "roomid": "R1"},
        {"id": 2, "roomid": "vendor-R", "liveid": "L1"},
        {"id": 3, "liveid": "L1", "roomid": "R1"},
    ]
    assert sent[2] == {"id": 3}, "the harvest's own record dicts are not modified"


async def test_a_rerun_removes_parts_left_by_a_kill_after_the_complete_manifest(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after ``complete: true`` was written, before ``.parts`` was removed: a second
    copy of the data stays behind until a rerun, which finishes the clean-up (no request)."""
    from cc_collect_async.harvest.journal import Journal

    with monkeypatch.context() as patched:
        patched.setattr(Journal, "remove", lambda self: None)  # the kill
        await harvest(sim, tmp_path, request_for(("chat", "vote")))
    assert read_manifest(tmp_path)["complete"] is True
    assert (tmp_path / ".parts" / "chat.jsonl").stat().st_size > 0
    chat = (tmp_path / "chat.jsonl").read_bytes()
    requests = sim.stats.requests

    sink = await harvest(sim, tmp_path, request_for(("chat", "vote")))

    assert sink.already_complete and sim.stats.requests == requests
    assert not (tmp_path / ".parts").exists()
    assert (tmp_path / "chat.jsonl").read_bytes() == chat
    assert_equals_truth(tmp_path, ("chat", "vote"))


async def test_disk_full_while_assembling_leaves_no_temporary_and_says_so_in_the_manifest(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from cc_collect_async.cli.exits import find_error
    from cc_collect_async.harvest.journal import Journal

    def full_disk(self: Journal, kind: str, ranges: Any, out: Any) -> None:
        out.write(b'{"half": "a record')  # some bytes made it, then the disk was full
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(Journal, "copy_kind", full_disk)
        with pytest.raises(BaseException) as caught:
            await harvest(sim, tmp_path, request_for(("chat",)))
    error = find_error(caught.value, OutputError)
    assert error is not None and "chat.jsonl: No space left on device" in str(error)
    assert not [name for name in files_under(tmp_path) if name.endswith(".tmp")]
    assert not (tmp_path / "chat.jsonl").exists()
    manifest = read_manifest(tmp_path)
    assert manifest["complete"] is False
    assert manifest["runs"][-1]["outcome"] == "output-error"
    assert "No space left on device" in manifest["runs"][-1]["error"]
    # Every unit was committed before the disk filled: the rerun only assembles.
    requests = sim.stats.requests
    sink = await harvest(sim, tmp_path, request_for(("chat",)))
    assert sink.manifest is not None and sink.manifest["complete"] is True
    assert sim.stats.requests - requests == 1, "only the listing is asked again"
    assert_equals_truth(tmp_path, ("chat",))


def test_expected_units_count_every_live_listed_not_only_those_handed_on() -> None:
    """Interrupted after the listing's end, a run had handed on 38 lives of 192: the manifest
    said 38 x 5 units expected, exactly (stderr said 192+ lives)."""
    request = HarvestRequest(kinds=KINDS_5, window=WINDOW)
    tally = Tally(request.kinds)
    tally.lives = 38
    report = HarvestReport(datetime(2026, 11, 3), {}, lives=192, lives_listed=True, cancelled=True)
    manifest = build_manifest(
        request,
        tally,
        report,
        previous=None,
        source={},
        version="test",
        started_at=datetime(2026, 11, 3),
        skipped=0,
    )
    assert manifest["units"]["expected"] == 192 * 5
    assert manifest["units"]["expected_is"] == "exact"


async def test_expected_units_are_partial_when_the_listing_did_not_finish(
    sim: Simulator, tmp_path: Path
) -> None:
    """The listing fails on its second page: the lives of the first are harvested, and the
    manifest does not pass their units off as all there is."""
    inner = sim.transport()

    async def listing_fails_on_page_2(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/collect/live/record" and request.url.params["page_size"] == "2":
            return httpx.Response(400, json={"result": "FAIL", "error_msg": "PARAM_ERROR"})
        return await inner.handle_async_request(request)

    transport = httpx.MockTransport(listing_fails_on_page_2)
    request = request_for(("chat",))
    async with CollectClient(
        DEMO_USERID, DEMO_API_KEY, base_url="http://sim", transport=transport
    ) as client:
        with DirectorySink(tmp_path, request) as sink:
            harvester = Harvester(client, window=WINDOW, kinds=("chat",), page_length=5)
            await harvester.run(sink)

    manifest = read_manifest(tmp_path)
    assert manifest["complete"] is False
    assert manifest["units"] == {"expected": 5, "expected_is": "partial", "done": 5, "failed": 0}
    assert [f["kind"] for f in manifest["failures"]] == ["lives"]
    assert manifest["runs"][-1]["outcome"] == "failed-units"


def test_no_kind_is_named_like_a_file_of_the_directory() -> None:
    from cc_collect_async.harvest.journal import LIVES, PARTS, UNITS
    from cc_collect_async.harvest.manifest import MANIFEST

    assert not {LIVES, UNITS, PARTS, ".lock", MANIFEST} & set(ALL_KINDS)


async def test_a_big_unit_is_received_in_a_temporary_file_and_committed_whole(
    tmp_path: Path,
) -> None:
    from cc_collect_async.harvest import HarvestReport, Live, Unit

    big, failed = Unit(Live("R1", "L1"), "chat"), Unit(Live("R2", "L2"), "chat")
    request = HarvestRequest(kinds=("chat",), lives=[("R1", "L1"), ("R2", "L2")])
    pages = [[{"id": p * 1000 + i, "content": "x" * 200} for i in range(400)] for p in range(3)]
    with DirectorySink(tmp_path, request) as sink:
        for unit in (big, failed):
            await sink.live(unit.live)
            for number, page in enumerate(pages, 1):
                await sink.write(Batch(unit, number, page))
        spilled = [n for n in files_under(tmp_path) if n.endswith(".tmp")]
        assert len(spilled) == 2, "past 128 KB a unit waits in a temporary file"
        await sink.unit_end(UnitResult(failed, ok=False, pages=3, records=1200, error="x"))
        await sink.unit_end(UnitResult(big, ok=True, pages=3, records=1200))
        assert not [n for n in files_under(tmp_path) if n.endswith(".tmp")]
        await sink.close(HarvestReport(started_at=datetime.now().astimezone(), kinds={}))

    rows = list(read_records(tmp_path, "chat"))
    assert rows == [{**r, "liveid": "L1", "roomid": "R1"} for page in pages for r in page]
