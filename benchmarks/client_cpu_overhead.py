"""Scenario 3: what the library costs in CPU per request, above a bare loop.

In process (no sockets): every request is answered by ``httpx.MockTransport`` with the same
page of 100 chat records from the simulator's data set (Chinese, emoji, quotes; about 20
KB), 8 requests in flight. The full stack (sign, rate limiter, send, decode, retry
bookkeeping, harvest scheduler, sink) must cost at most 1.25x the CPU of a bare
``httpx.AsyncClient`` loop doing the same requests and ``json.loads``. The layers in between
are measured one by one, and a cProfile of the full stack says where its time goes.

Over loopback TCP (the simulator in its own process, no latency, 8 in flight, the same kind
of pages): requests/s and client CPU per request of the library on each engine, next to
bare httpx and bare aiohttp loops, and orjson against json end to end.

``python -m benchmarks.client_cpu_overhead inprocess '<json>'`` is the in-process child.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import httpx

from cc_collect_async.sim import Dataset, DatasetSpec, SimConfig

from .context import Context
from .runs import Run, child_json, request_loop
from .servers import sim_server
from .tables import Check, ScenarioResult, Table, ratio

NAME = "client_overhead"
TITLE = "client CPU per request: full stack against bare loops"

CONCURRENCY = 8
USERID = "9DC1A878A164F696"
API_KEY = "bench-key"
BASE = "http://collect.invalid"


# -- in process ----------------------------------------------------------------------------


def page_of_chat(records: int = 100) -> bytes:
    """A real-looking reply: ``records`` chat records from the simulator's data set."""
    data = Dataset(DatasetSpec(lives=1, chat_per_live=2 * records, empty_every=0, huge_every=0))
    live = data.lives()[0]
    chat = data.records(live.liveid, "chat")[:records]
    envelope = {
        "result": "OK",
        "data": chat,
        "error_msg": "",
        "roomid": live.roomid,
        "liveid": live.liveid,
    }
    return json.dumps(envelope, ensure_ascii=False).encode()


def _transport(body: bytes) -> httpx.MockTransport:
    headers = [(b"content-type", b"application/json; charset=utf-8")]

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers, content=body)

    return httpx.MockTransport(answer)


async def _bounded(count: int, one: Callable[[int], Awaitable[None]]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def guarded(index: int) -> None:
        async with gate:
            await one(index)

    await asyncio.gather(*(guarded(i) for i in range(count)))


def _variants(body: bytes, count: int) -> dict[str, Callable[[], Coroutine[Any, Any, None]]]:
    """Each variant does ``count`` requests for distinct lives through one more layer."""
    from cc_collect_async import CollectClient, RateLimiter, thqs
    from cc_collect_async.harvest import Harvester

    from .harvest_child import CountingSink, JsonlSink

    pairs = [(f"ROOM{i % 7:012d}", f"LIVE{i:012d}") for i in range(count)]
    path = f"{BASE}/collect/live/chat/record/"

    def params(index: int) -> dict[str, str]:
        return {"userid": USERID, "roomid": pairs[index][0], "liveid": pairs[index][1]}

    presigned = [f"{path}?{thqs.sign(params(i), API_KEY)}" for i in range(count)]

    async def bare() -> None:
        async with httpx.AsyncClient(transport=_transport(body)) as http:

            async def one(index: int) -> None:
                json.loads((await http.get(presigned[index])).content)

            await _bounded(count, one)

    async def bare_signing() -> None:
        async with httpx.AsyncClient(transport=_transport(body)) as http:

            async def one(index: int) -> None:
                url = f"{path}?{thqs.sign(params(index), API_KEY)}"
                json.loads((await http.get(url)).content)

            await _bounded(count, one)

    def client(**options: Any) -> CollectClient:
        return CollectClient(
            USERID,
            API_KEY,
            base_url=BASE,
            transport=_transport(body),
            max_concurrency=CONCURRENCY,
            **options,
        )

    async def requester(**options: Any) -> None:
        async with client(**options) as api:

            async def one(index: int) -> None:
                await api.fetch_records("chat", roomid=pairs[index][0], liveid=pairs[index][1])

            await _bounded(count, one)

    async def harvest(sink: Any = None) -> None:
        async with client() as api:
            await Harvester(api, lives=pairs, kinds=["chat"], rate=1e6).run(sink or CountingSink())

    async def harvest_json() -> None:
        from cc_collect_async import core

        fast = core.loads
        core.loads = json.loads
        try:
            await harvest()
        finally:
            core.loads = fast

    async def harvest_file() -> None:
        with tempfile.NamedTemporaryFile(suffix=".jsonl") as file:
            await harvest(JsonlSink(file.name))

    return {
        "bare": bare,
        "bare_signing": bare_signing,
        "client": lambda: requester(),
        "client_limiter": lambda: requester(rate_limiter=RateLimiter(1e6)),
        "harvest": harvest,
        "harvest_json": harvest_json,
        "harvest_file": harvest_file,
    }


_CATEGORIES = (
    ("in-process transport (the stand-in server)", ("_transports/mock.py", "client_cpu_overhead")),
    ("JSON decode (orjson)", ("orjson.loads",)),
    ("signing (thqs, quote_plus, md5)", ("thqs.py", "urllib/parse.py", "md5", "hexdigest")),
    (
        "httpx client layer: Request/Response, URL, cookies",
        ("/httpx/", "http/cookiejar.py", "urllib/request.py", "email/"),
    ),
    (
        "request path (core, endpoints, client)",
        (
            "cc_collect_async/core.py",
            "endpoints.py",
            "cc_collect_async/client.py",
            "retry.py",
            "errors.py",
        ),
    ),
    ("rate limiter", ("ratelimit.py",)),
    ("harvest scheduler, dedupe, sink", ("/harvest/", "harvest_child")),
    ("anyio (task groups, streams, capacity)", ("/anyio/", "sniffio")),
    ("asyncio event loop and tasks", ("asyncio/", "_asyncio", "contextvars", "select")),
)


def _category(key: tuple[str, int, str]) -> str | None:
    where = f"{key[0]}:{key[2]}"
    return next((name for name, needles in _CATEGORIES if any(n in where for n in needles)), None)


def _categorise(stats: pstats.Stats) -> dict[str, float]:
    """Own time per category; a builtin nobody claims (``isinstance``, ``dict.get``) counts
    for the code that called it."""
    totals: dict[str, float] = {}
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for key, (_cc, _nc, tottime, _ct, callers) in raw.items():
        label = _category(key)
        if label is None and key[0] == "~" and callers:
            for caller, (_ccc, _cnc, caller_tt, _cct) in callers.items():
                share = _category(caller) or "other (attrs, cattrs, stdlib)"
                totals[share] = totals.get(share, 0.0) + caller_tt
            continue
        label = label or "other (attrs, cattrs, stdlib)"
        totals[label] = totals.get(label, 0.0) + tottime
    return totals


def inprocess(job: dict[str, Any]) -> dict[str, Any]:
    body = page_of_chat()
    count, rounds = job["requests"], job["rounds"]
    variants = _variants(body, count)
    for make in _variants(body, 50).values():  # warm every path up (imports, caches)
        asyncio.run(_warm(make))
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):  # interleaved, so a noisy moment hits every variant alike
        for name, make in variants.items():
            started = time.process_time()
            asyncio.run(make())
            cpu[name].append((time.process_time() - started) / count)
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(variants["harvest"]())
    profiler.disable()
    categories = _categorise(pstats.Stats(profiler))
    top = pstats.Stats(profiler)
    top.sort_stats("tottime")
    lines = []
    raw: dict[Any, Any] = top.stats  # type: ignore[attr-defined]
    for key in top.fcn_list[:12]:  # type: ignore[attr-defined]
        filename, line, function = key
        _cc, calls, tottime, _ct, _callers = raw[key]
        short = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        lines.append([f"{short}:{line}({function})", calls / count, tottime])
    return {
        "page_bytes": len(body),
        # The least disturbed of the rounds: on a shared machine noise only ever adds.
        "cpu": {name: min(values) for name, values in cpu.items()},
        "profile": categories,
        "top": lines,
    }


async def _warm(make: Callable[[], Awaitable[None]]) -> None:
    await make()


# -- the scenario --------------------------------------------------------------------------


def run(ctx: Context) -> ScenarioResult:
    count = 200 if ctx.quick else 1000
    rounds = 1 if ctx.quick else 3
    result = ScenarioResult(
        NAME,
        TITLE,
        f"in process: httpx.MockTransport answering one page of 100 chat records, "
        f"{CONCURRENCY} in flight, {count} requests per variant, best of {rounds} "
        f"interleaved rounds; loopback: the simulator in its own process, no latency, "
        f"{CONCURRENCY} in flight",
    )
    ctx.log(f"{NAME}: in-process variants")
    measured = child_json(
        "benchmarks.client_cpu_overhead",
        "inprocess",
        json.dumps({"requests": count, "rounds": rounds}),
    )
    cpu = {name: value * 1e6 for name, value in measured["cpu"].items()}
    base = cpu["bare"]
    layers = Table(
        f"In process: CPU per request, page of {measured['page_bytes']:,} bytes",
        ("variant", "CPU us/req", "vs bare", "added by this layer us"),
    )
    steps = (
        ("bare", "bare httpx.AsyncClient loop + json.loads (pre-signed URLs)"),
        ("bare_signing", "  + signing each request (thqs.sign)"),
        ("client", "CollectClient.fetch_records (sign, send, classify, orjson, retries)"),
        ("client_limiter", "  + rate limiter"),
        ("harvest", "Harvester, counting sink = the full stack"),
        ("harvest_json", "Harvester with json instead of orjson"),
        ("harvest_file", "Harvester writing JSON lines to a file"),
    )
    previous = None
    for key, label in steps:
        added = None
        if key in ("bare_signing", "client", "client_limiter", "harvest") and previous:
            added = cpu[key] - cpu[previous]
        layers.add(label, cpu[key], ratio(cpu[key], base), added)
        if key in ("bare", "bare_signing", "client", "client_limiter", "harvest"):
            previous = key
    layers.notes.append(
        "the library decodes with orjson when installed; 'with json' shows the same stack "
        "with the standard library decoder"
    )
    result.tables.append(layers)

    full = cpu["harvest"]
    profile = measured["profile"]
    total = sum(profile.values())
    breakdown = Table(
        "Where the full stack's CPU goes (cProfile, own time; scaled to the unprofiled total)",
        ("part", "share", "us/req"),
    )
    for label, seconds in sorted(profile.items(), key=lambda kv: -kv[1]):
        breakdown.add(label, f"{seconds / total:.0%}", seconds / total * full)
    breakdown.notes.append(
        "cProfile charges a cost to every Python call, so call-heavy code (httpx's URL "
        "parsing, anyio) looks bigger and C code (orjson, md5) smaller than it is; the layer "
        "table above is the unbiased measurement"
    )
    result.tables.append(breakdown)
    top = Table("Top functions by own time (profiled run)", ("function", "calls/req", "own s"))
    for name, calls, seconds in measured["top"]:
        top.add(name, calls, seconds)
    result.tables.append(top)
    share = full / base
    result.checks.append(
        Check(
            "in process: full stack CPU/req <= 1.25x bare httpx + json",
            f"{share:.2f}x ({full:.0f} vs {base:.0f} us)",
            ctx.judge(share <= 1.25),
        )
    )
    result.checks.append(
        Check(
            "orjson pays end to end (full stack, json / orjson CPU)",
            f"{cpu['harvest_json'] / full:.2f}x",
            ctx.judge(cpu["harvest_json"] > full),
        )
    )

    # -- loopback TCP --------------------------------------------------------------------
    lives = 90  # the simulator keeps the records of 96 (live, kind) pairs generated
    data = DatasetSpec(lives=lives, rooms=3, chat_per_live=100, empty_every=0, huge_every=0)
    requests = 300 if ctx.quick else 2000
    loopback = Table(
        f"Loopback TCP, {CONCURRENCY} in flight, chat pages of ~100 records",
        ("client", "req/s", "vs bare", "client CPU us/req", "vs bare", "server CPU us/req"),
    )
    with sim_server(data, SimConfig()) as server:
        pairs = server.lives()
        page = sum(
            len(json.dumps(server.dataset.records(live, "chat"), ensure_ascii=False).encode())
            for _room, live in pairs
        ) / len(pairs)
        runs: dict[str, Run] = {}
        modes = (
            ("httpx", "bare httpx.AsyncClient loop"),
            ("aiohttp", "bare aiohttp loop"),
            ("client-httpx", "CollectClient, engine httpx"),
            ("client-aiohttp", "CollectClient, engine aiohttp"),
            ("harvest-httpx", "Harvester, engine httpx"),
            ("harvest-aiohttp", "Harvester, engine aiohttp (auto)"),
        )
        # Warm the server's record cache so every mode meets the same server.
        request_loop(server, "warm-up", "aiohttp", pairs, requests=lives, concurrency=8)
        for mode, label in modes:
            ctx.log(f"{NAME}: loopback, {label}")
            runs[mode] = request_loop(
                server, label, mode, pairs, requests=requests, concurrency=CONCURRENCY
            )
        if not ctx.quick:
            ctx.log(f"{NAME}: loopback, Harvester on aiohttp decoding with json")
            runs["harvest-aiohttp-json"] = request_loop(
                server,
                "Harvester, engine aiohttp, json instead of orjson",
                "harvest-aiohttp",
                pairs,
                requests=requests,
                concurrency=CONCURRENCY,
                stdlib_json=True,
            )
    for mode, r in runs.items():
        bare = runs["aiohttp" if "aiohttp" in mode else "httpx"]
        loopback.add(
            r.label,
            r.rps,
            ratio(r.rps, bare.rps),
            r.cpu_per_request_us,
            ratio(r.cpu_per_request_us, bare.cpu_per_request_us),
            r.server_cpu_per_request_us,
        )
    loopback.notes.append(
        f"average page {page / 1024:.1f} KB of records; 'vs bare' compares with the bare "
        "loop on the same engine; the server shares the 2 cores"
    )
    result.tables.append(loopback)
    if "harvest-aiohttp-json" in runs:
        slow, fast = runs["harvest-aiohttp-json"], runs["harvest-aiohttp"]
        result.notes.append(
            "loopback, Harvester on aiohttp: json costs "
            f"{slow.cpu_per_request_us / fast.cpu_per_request_us:.2f}x the CPU per request "
            f"of orjson, and reaches {slow.rps / fast.rps:.2f}x its requests/s"
        )
    return result


def main(argv: list[str]) -> int:
    if argv[0] != "inprocess":
        raise SystemExit(f"unknown mode {argv[0]}")
    print(json.dumps(inprocess(json.loads(argv[1]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
