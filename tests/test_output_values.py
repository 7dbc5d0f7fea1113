"""Values exactly as received, from a reply to the file: integers beyond 64 bits, lone UTF-16
surrogates, line separators, in JSON lines and Parquet; and items that cannot be rows.

The replies come from an ``httpx.MockTransport`` standing in for the vendor, through the
real client and harvester, into a real directory.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx
import pytest

from cc_collect_async import CollectClient
from cc_collect_async.harvest import (
    Batch,
    Harvester,
    HarvestReport,
    HarvestRequest,
    Live,
    Unit,
    UnitProblem,
    UnitResult,
    read_manifest,
    read_records,
)
from cc_collect_async.harvest.outdir import DirectorySink

pytestmark = pytest.mark.anyio

BIG = 123456789012345678901234567890
# What the vendor sends, spelled as it spells it (a reply is bytes, not Python values).
CHAT_REPLY = (
    b'{"result":"OK","error_msg":"","data":['
    b'{"id":1,"timestamp":"2026-11-01 01:12:59","username":"\\ud83d",'
    b'"content":"one\xe2\x80\xa8two\xc2\x85three\xe2\x80\xa9four","chat_userid":"u1",'
    b'"big":123456789012345678901234567890,"nested":{"big":-123456789012345678901234567890,'
    b'"nick":"x\\udc4b"}},'
    b'{"id":2,"timestamp":"2026-11-01 01:13:00","username":"plain","content":"ok",'
    b'"chat_userid":"u2","big":7,"nested":{"big":1,"nick":"y"}}'
    b"]}"
)
EXPECTED = [
    {
        "id": 1,
        "timestamp": "2026-11-01 01:12:59",
        "username": "\ud83d",
        "content": "one\u2028two\u0085three\u2029four",
        "chat_userid": "u1",
        "big": BIG,
        "nested": {"big": -BIG, "nick": "x\udc4b"},
        "liveid": "L1",
        "roomid": "R1",
    },
    {
        "id": 2,
        "timestamp": "2026-11-01 01:13:00",
        "username": "plain",
        "content": "ok",
        "chat_userid": "u2",
        "big": 7,
        "nested": {"big": 1, "nick": "y"},
        "liveid": "L1",
        "roomid": "R1",
    },
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def vendor(request: httpx.Request) -> httpx.Response:
    assert request.url.path == "/collect/live/chat/record/"
    return httpx.Response(200, content=CHAT_REPLY, headers={"content-type": "application/json"})


async def harvest_chat(out: Path, fmt: str) -> DirectorySink:
    request = HarvestRequest(kinds=("chat",), lives=[("R1", "L1")], format=fmt)  # type: ignore[arg-type]
    transport = httpx.MockTransport(vendor)
    async with CollectClient("user", "key", base_url="http://vendor", transport=transport) as c:
        with DirectorySink(out, request) as sink:
            await Harvester(c, lives=request.lives, kinds=request.kinds, rate=1000).run(sink)
    return sink


async def write_chat(out: Path, fmt: str) -> DirectorySink:
    """The sink alone, given the records as the client decodes the reply."""
    request = HarvestRequest(kinds=("chat",), lives=[("R1", "L1")], format=fmt)  # type: ignore[arg-type]
    unit = Unit(Live("R1", "L1"), "chat")
    received = [{k: v for k, v in r.items() if k not in ("liveid", "roomid")} for r in EXPECTED]
    with DirectorySink(out, request) as sink:
        await sink.live(unit.live)
        await sink.write(Batch(unit, 1, received))
        await sink.unit_end(UnitResult(unit, ok=True, pages=1, records=2))
        report = HarvestReport(started_at=datetime.now().astimezone(), kinds={})
        report.lives_listed = True
        await sink.close(report)
    return sink


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
async def test_values_are_written_so_they_read_back_equal(tmp_path: Path, fmt: str) -> None:
    sink = await write_chat(tmp_path, fmt)

    assert sink.manifest is not None and sink.manifest["complete"] is True
    assert list(read_records(tmp_path, "chat")) == EXPECTED


async def test_jsonl_lines_stay_lines_and_keep_the_spelling_of_integers(tmp_path: Path) -> None:
    await write_chat(tmp_path, "jsonl")

    raw = (tmp_path / "chat.jsonl").read_bytes()
    assert str(BIG).encode() in raw and f"-{BIG}".encode() in raw
    # A lone surrogate is not UTF-8: it is written as the escape it arrived as.
    assert b'"username":"\\ud83d"' in raw and b'"nick":"x\\udc4b"' in raw
    raw.decode("utf-8")  # the file is valid UTF-8
    # Tools that split on U+2028, U+2029 or U+0085 (str.splitlines, JavaScript) see 2 lines.
    assert len(raw.decode().splitlines()) == 2
    assert b'"content":"one\\u2028two\\u0085three\\u2029four"' in raw


async def test_parquet_stores_a_text_column_with_a_surrogate_as_json_text(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    await write_chat(tmp_path, "parquet")

    schema = pq.read_schema(tmp_path / "chat.parquet")
    assert str(schema.field("username").type) == "string"
    assert schema.field("username").metadata == {b"cc_collect.encoding": b"json"}
    # Columns without a surrogate keep their native type.
    assert schema.field("content").metadata is None
    assert str(schema.field("id").type) == "int64"


async def test_items_that_are_not_objects_fail_their_unit_not_the_run(tmp_path: Path) -> None:
    """The sink never writes an item that cannot be a row, and never raises TypeError: the
    unit is left uncommitted and listed as failed, so a rerun asks for it again."""
    bad, good = Unit(Live("R1", "L1"), "chat"), Unit(Live("R2", "L2"), "chat")
    request = HarvestRequest(kinds=("chat",), lives=[("R1", "L1"), ("R2", "L2")])
    with DirectorySink(tmp_path, request) as sink:
        for unit in (bad, good):
            await sink.live(unit.live)
        await sink.write(Batch(bad, 1, [{"id": 1}]))
        await sink.write(Batch(bad, 2, [1, "two", None]))  # type: ignore[list-item]
        await sink.write(Batch(bad, 3, [{"id": 3}]))
        await sink.write(Batch(good, 1, [{"id": 9}]))
        await sink.unit_end(UnitResult(bad, ok=True, pages=3, records=5))
        await sink.unit_end(UnitResult(good, ok=True, pages=1, records=1))
        await sink.close(HarvestReport(started_at=datetime.now().astimezone(), kinds={}))

    manifest = read_manifest(tmp_path)
    assert manifest["complete"] is False
    assert [(f["kind"], f["liveid"]) for f in manifest["failures"]] == [("chat", "L1")]
    assert "item 1 of the data array is int, not an object" in manifest["failures"][0]["reason"]
    assert manifest["kinds"]["chat"]["failed"] == 1
    assert list(read_records(tmp_path, "chat")) == [{"id": 9, "liveid": "L2", "roomid": "R2"}]
    with DirectorySink(tmp_path, request) as again:
        assert again.skip == {("L2", "chat")}


async def test_a_refused_unit_that_then_fails_is_listed_once(tmp_path: Path) -> None:
    unit = Unit(Live("R1", "L1"), "chat")
    request = HarvestRequest(kinds=("chat",), lives=[("R1", "L1")])
    with DirectorySink(tmp_path, request) as sink:
        await sink.live(unit.live)
        await sink.write(Batch(unit, 1, [None]))  # type: ignore[list-item]
        await sink.unit_end(UnitResult(unit, ok=False, pages=1, records=1, error="page 2 failed"))
        report = HarvestReport(started_at=datetime.now().astimezone(), kinds={})
        report.failures.append(UnitProblem("chat", "R1", "L1", "page 2 failed"))
        await sink.close(report)
    manifest = read_manifest(tmp_path)
    assert [f["reason"] for f in manifest["failures"]] == ["page 2 failed"]
    assert manifest["units"]["failed"] == 1


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
async def test_a_reply_reaches_the_file_value_for_value(tmp_path: Path, fmt: str) -> None:
    """End to end: the vendor's bytes, the real client and harvester, the file."""
    sink = await harvest_chat(tmp_path, fmt)

    assert sink.manifest is not None and sink.manifest["complete"] is True
    assert list(read_records(tmp_path, "chat")) == EXPECTED
    if fmt == "jsonl":
        assert str(BIG).encode() in (tmp_path / "chat.jsonl").read_bytes()
