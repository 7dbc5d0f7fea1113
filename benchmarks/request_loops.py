"""Request loops at a fixed number in flight, bare or through the library, in a fresh process.

``python -m benchmarks.request_loops '<json job>'`` prints one JSON line. The loop asks for
the chat records of the given lives round-robin (one reply each, no pagination) with at most
``concurrency`` requests in flight, and measures wall time and CPU time around the loop only.

Modes: ``httpx`` and ``aiohttp`` are bare loops (sign with :func:`cc_collect_async.thqs.sign`,
send, ``json.loads``), what a careful hand-written client does; ``client-<engine>`` calls
:meth:`CollectClient.fetch_records`; ``harvest-<engine>`` runs the whole
:class:`~cc_collect_async.harvest.Harvester` (kind ``chat``) over the lives, again and again
until the request count is reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from cc_collect_async import CollectClient, thqs
from cc_collect_async.harvest import Harvester

from .harvest_child import CountingSink
from .peak import peak_rss_mb

_CHAT = "/collect/live/chat/record/"


async def _bounded(
    count: int,
    concurrency: int,
    one: Callable[[int], Awaitable[None]],
    time_limit: float | None = None,
) -> int:
    """``count`` calls of ``one(i)``, at most ``concurrency`` at a time; how many finished
    (fewer when ``time_limit`` seconds ran out first)."""
    gate = asyncio.Semaphore(concurrency)
    finished = 0

    async def guarded(index: int) -> None:
        nonlocal finished
        async with gate:
            await one(index)
            finished += 1

    tasks = [asyncio.ensure_future(guarded(i)) for i in range(count)]
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.gather(*tasks), time_limit)
    return finished


async def _loop(job: dict[str, Any]) -> dict[str, Any]:
    mode: str = job["mode"]
    pairs = [tuple(p) for p in job["pairs"]]
    count: int = job["requests"]
    conc: int = job["concurrency"]
    limit: float | None = job.get("time_limit")
    base, userid, key = job["base_url"], job["userid"], job["api_key"]

    def url(index: int) -> str:
        roomid, liveid = pairs[index % len(pairs)]
        query = thqs.sign({"userid": userid, "roomid": roomid, "liveid": liveid}, key)
        return f"{base}{_CHAT}?{query}"

    async def timed(body: Callable[[], Awaitable[int]]) -> dict[str, Any]:
        started, cpu = time.perf_counter(), time.process_time()
        sent = await body()
        return {
            "duration": time.perf_counter() - started,
            "cpu": time.process_time() - cpu,
            "requests": sent,
            "stopped": sent < count,
        }

    if mode == "httpx":
        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        async with httpx.AsyncClient(limits=limits, timeout=60) as http:

            async def one(index: int) -> None:
                reply = await http.get(url(index))
                json.loads(reply.content)

            await one(0)  # connect once before the clock starts, like every other mode

            async def body() -> int:
                return await _bounded(count, conc, one, limit)

            return await timed(body)
    if mode == "aiohttp":
        import aiohttp
        import yarl

        connector = aiohttp.TCPConnector(limit=conc)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(index: int) -> None:
                # encoded=True: yarl would otherwise re-quote the signed query.
                async with session.get(yarl.URL(url(index), encoded=True)) as reply:
                    json.loads(await reply.read())

            await one(0)

            async def body() -> int:
                return await _bounded(count, conc, one, limit)

            return await timed(body)
    kind, _, engine = mode.partition("-")
    async with CollectClient(
        userid,
        key,
        base_url=base,
        max_concurrency=conc,
        http_backend=engine,  # type: ignore[arg-type]
    ) as client:
        await client.fetch_records("chat", roomid=pairs[0][0], liveid=pairs[0][1])
        if kind == "client":

            async def one(index: int) -> None:
                roomid, liveid = pairs[index % len(pairs)]
                await client.fetch_records("chat", roomid=roomid, liveid=liveid)

            async def body() -> int:
                return await _bounded(count, conc, one, limit)

            return await timed(body)

        async def harvests() -> int:
            sent = 0
            while sent < count:
                harvester = Harvester(client, lives=pairs, kinds=["chat"], rate=1e6)
                await harvester.run(CountingSink())
                sent += harvester.report.requests
            return sent

        return await timed(harvests)


def main(argv: list[str]) -> int:
    job = json.loads(argv[0])
    if job.get("stdlib_json"):
        from cc_collect_async import core

        core.loads = json.loads
    with contextlib.suppress(ImportError):
        import aiohttp  # noqa: F401 - imported before any clock starts
    if job.get("loop") == "uvloop":
        import uvloop

        result = uvloop.run(_loop(job))
    else:
        result = asyncio.run(_loop(job))
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
