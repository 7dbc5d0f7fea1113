"""The request path against servers that misbehave below the envelope, over real loopback TCP,
on every HTTP engine: not HTTP at all, a broken status line or chunked body, a body that
trickles, compressed bodies, and JSON that orjson refuses or would round (issue 11 and 12).

Every test runs on httpx under asyncio and trio, and on aiohttp under asyncio (aiohttp runs
on asyncio only).
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import anyio
import pytest
from loopback import (
    RawServer,
    bad_status_line,
    broken_chunks,
    compressed,
    raw_server,
    respond,
    ssh_banner,
    trickle,
)

from cc_collect_async import (
    ENDPOINTS,
    CollectClient,
    CollectError,
    DecodeError,
    RetryPolicy,
    TransportError,
)
from cc_collect_async.endpoints import PAGE_COUNT
from cc_collect_async.harvest import Harvester, MemorySink, Window

USERID = "9DC1A878A164F696"
API_KEY = "sEcR3t-Key/+=&9f8e7d"

ENGINES = pytest.mark.parametrize(
    ("anyio_backend", "engine"),
    [("asyncio", "httpx"), ("trio", "httpx"), ("asyncio", "aiohttp")],
    ids=["httpx-asyncio", "httpx-trio", "aiohttp-asyncio"],
)


def client_of(server: RawServer, engine: str, **options: Any) -> CollectClient:
    options.setdefault("retry", RetryPolicy(max_attempts=2, initial_backoff=0.01, jitter=0.0))
    return CollectClient(USERID, API_KEY, base_url=server.url, http_backend=engine, **options)  # type: ignore[arg-type]


def signed_parts(server: RawServer) -> set[str]:
    """Every ``time`` and ``hash`` value the server was sent."""
    found: set[str] = set()
    for head in server.heads:
        found.update(re.findall(r"(?:time|hash)=([0-9A-Za-z]+)", head.decode("latin-1")))
    return found


@ENGINES
@pytest.mark.anyio
@pytest.mark.parametrize(
    "handler", [ssh_banner, bad_status_line, broken_chunks], ids=["ssh", "status", "chunks"]
)
async def test_the_signed_query_never_leaks_through_transport_errors(
    handler: Any, engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An SSH banner, a status line ``HTTP/1.1 abc OK`` or a broken chunked body: the error,
    its repr, its traceback and every log line say what went wrong without ``time=`` and
    ``hash=`` (with them a request can be replayed and the key attacked offline)."""
    caplog.set_level(logging.DEBUG, logger="cc_collect_async")
    with raw_server(handler) as server:
        async with client_of(server, engine) as client:
            with pytest.raises(CollectError) as caught:
                await client.user_count("L1")
    exc = caught.value
    assert isinstance(exc, TransportError), repr(exc)
    assert (exc.endpoint, exc.attempts) == ("user_count", 2)
    secrets = signed_parts(server)
    assert len(server.heads) == 2 and secrets
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc)), caplog.text]
    for text in texts:
        assert "hash=" not in text and "time=" not in text, text
        assert not [s for s in secrets if s in text], text
        assert API_KEY not in text


@ENGINES
@pytest.mark.anyio
async def test_a_reply_that_trickles_is_cut_off_at_the_deadline_and_retried(engine: str) -> None:
    """Headers at once, then a byte every 0.1 s: each read succeeds long before a read
    timeout, so only a deadline for the whole attempt ends it; the attempt is then a retried
    TransportError."""
    with raw_server(trickle(0.1)) as server:
        async with client_of(server, engine, timeout=0.5) as client:
            assert client.timeout == 0.5
            with anyio.fail_after(30), pytest.raises(TransportError) as caught:
                await client.user_count("L1")
    assert "within 0.5 s" in str(caught.value)
    assert caught.value.attempts == 2 and len(server.heads) == 2


ENVELOPE = json.dumps({"result": "OK", "data": {"livecount": 2132}}).encode()


@ENGINES
@pytest.mark.anyio
@pytest.mark.parametrize("coding", ["gzip", "deflate", "deflate-raw"])
async def test_compressed_replies_are_decoded(engine: str, coding: str) -> None:
    header = coding.split("-")[0]
    body = compressed(ENVELOPE, coding)
    with raw_server(respond(body, headers={"Content-Encoding": header})) as server:
        async with client_of(server, engine) as client:
            assert (await client.user_count("L1")).livecount == 2132
            assert (await client.user_count("L2")).livecount == 2132  # the connection is reused
    assert all(b"gzip" in h.lower() and b"deflate" in h.lower() for h in server.heads)


@ENGINES
@pytest.mark.anyio
async def test_a_corrupt_compressed_body_is_a_retried_decode_error(engine: str) -> None:
    body = compressed(ENVELOPE, "gzip")[:-12] + b"\x00" * 12
    with raw_server(respond(body, headers={"Content-Encoding": "gzip"})) as server:
        async with client_of(server, engine) as client:
            with pytest.raises(DecodeError) as caught:
                await client.user_count("L1")
    assert (caught.value.endpoint, caught.value.attempts) == ("user_count", 2)


LONE = "title \ud83d"  # a truncated emoji: valid JSON as an escape, refused by orjson
BIG = 123456789012345678901234567890


def _reply_for(path: str, record: dict[str, Any]) -> bytes:
    """An OK envelope holding ``record`` the way the endpoint at ``path`` returns records."""
    ep = next(e for e in ENDPOINTS.values() if e.path == path)
    envelope: dict[str, Any]
    if ep.paging is PAGE_COUNT:
        envelope = {"data": [record], "page_size": 1, "page_length": 100, "page_count": 1}
    elif ep.paging is not None:
        envelope = {"data": {"data": [record], "current": 1, "size": 500, "total": 1}}
    else:
        envelope = {"data": [record] if ep.many else record}
    # ensure_ascii writes the lone surrogate as the escape the vendor sends.
    return json.dumps({"result": "OK", **envelope}, ensure_ascii=True).encode()


def per_path(record: dict[str, Any]) -> Any:
    def handle(connection: Any, server: RawServer) -> None:
        while head := server.read_request(connection):
            path = head.split(b" ")[1].split(b"?")[0].decode()
            body = _reply_for(path, record)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )

    return handle


async def _all(items: Any) -> list[Any]:
    return [item async for item in items]


CALLS: dict[str, Callable[[CollectClient], Awaitable[Any]]] = {
    "max_parallel": lambda c: c.max_parallel("L1"),
    "user_count": lambda c: c.user_count("L1"),
    "duration": lambda c: c.duration("L1"),
    "access": lambda c: c.access_records("R1", "L1"),
    "chat": lambda c: c.chat_records("R1", "L1"),
    "lives": lambda c: _all(c.lives("2026-11-28", "2026-11-29")),
    "brainstorm": lambda c: _all(c.brainstorm_records("R1")),
    "vote": lambda c: _all(c.vote_records("R1")),
    "answercard": lambda c: _all(c.answercard_records("R1")),
    "reward": lambda c: _all(c.reward_records("R1", "L1")),
    "summary": lambda c: c.summary("R1", "L1"),
    "client_info": lambda c: c.client_info("R1"),
    "rollcall": lambda c: _all(c.rollcall_records("L1")),
}


def test_every_endpoint_has_a_call_here() -> None:
    assert set(CALLS) == set(ENDPOINTS)


@ENGINES
@pytest.mark.anyio
async def test_a_lone_surrogate_decodes_in_every_endpoint(engine: str) -> None:
    """``"title \\ud83d"`` is valid JSON that orjson refuses; every endpoint reads it, typed
    and raw, and the text comes back as sent."""
    with raw_server(per_path({"class_name": LONE, "liveid": "L1", "roomid": "R1"})) as server:
        async with client_of(server, engine) as client:
            for name, call in CALLS.items():
                result = await call(client)
                record = result[0] if isinstance(result, list) else result
                assert record.raw["class_name"] == LONE, name
            assert (await client.fetch_records("chat", roomid="R1", liveid="L1"))[0][
                "class_name"
            ] == LONE


@ENGINES
@pytest.mark.anyio
async def test_a_lone_surrogate_in_the_live_listing_fails_nothing(engine: str) -> None:
    record = {"class_name": LONE, "liveid": "L1", "roomid": "R1", "id": 1}
    with raw_server(per_path(record)) as server:
        async with client_of(server, engine) as client:
            harvester = Harvester(
                client,
                window=Window(datetime(2026, 11, 28), datetime(2026, 11, 29)),
                kinds=["chat"],
                rate=1000,
            )
            sink = MemorySink()
            report = await harvester.run(sink)
    assert report.failures == [] and report.lives == 1
    assert [live.raw["class_name"] for live in sink.lives if live.raw] == [LONE]
    (records,) = sink.committed.values()
    assert records[0]["class_name"] == LONE


@ENGINES
@pytest.mark.anyio
async def test_integers_beyond_64_bits_survive_exactly(engine: str) -> None:
    with raw_server(per_path({"id": BIG, "content": "hi"})) as server:
        async with client_of(server, engine) as client:
            (raw,) = await client.fetch_records("chat", roomid="R1", liveid="L1")
            (typed,) = await client.chat_records("R1", "L1")
    assert type(raw["id"]) is int and raw["id"] == BIG
    assert typed.id == BIG


@ENGINES
@pytest.mark.anyio
async def test_a_harvests_manifest_never_holds_the_signed_query(engine: str, tmp_path: Any) -> None:
    """The failure reason a unit leaves in manifest.json is the error's text: scrubbed too."""
    from cc_collect_async.harvest.outdir import DirectorySink, HarvestRequest

    request = HarvestRequest(kinds=("chat",), lives=[("R1", "L1")])
    with raw_server(bad_status_line) as server:
        async with client_of(server, engine) as client:
            with DirectorySink(tmp_path, request) as sink:
                harvester = Harvester(
                    client,
                    lives=request.lives,
                    kinds=request.kinds,
                    rate=1000,
                    retry=RetryPolicy(max_attempts=2, initial_backoff=0.01, jitter=0.0),
                )
                await harvester.run(sink)
    manifest = (tmp_path / "manifest.json").read_text(encoding="utf-8")
    assert "abc" in manifest, "the reason names what was wrong"
    assert "hash=" not in manifest and "time=" not in manifest
    assert not [s for s in signed_parts(server) if s in manifest]


@ENGINES
@pytest.mark.anyio
async def test_the_signed_url_reaches_the_server_byte_for_byte(engine: str) -> None:
    """``' ( ) * !`` are signed as ``%27 %28 %29 %2A %21``; an engine that re-quoted the URL
    would send them bare, and the server would check the hash against another query."""
    from conftest import check_signed_query

    with raw_server(respond(ENVELOPE)) as server:
        async with client_of(server, engine) as client:
            await client.user_count("it's (a) *live*!")
    (head,) = server.heads
    target = head.split(b" ")[1].decode("ascii")
    query = target.partition("?")[2]
    assert "liveid=it%27s+%28a%29+%2Alive%2A%21" in query
    params, _ = check_signed_query(query, API_KEY)
    assert params["liveid"] == "it's (a) *live*!"
