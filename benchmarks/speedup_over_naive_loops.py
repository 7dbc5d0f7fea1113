"""Scenario 5: the library against the loops it replaces, in scenario 1's setup.

Same simulator as ``rate_bound`` (100 ms latency, 100 requests/s limit). The sequential
loop of blocking requests (the vendor's demos) runs for a while and is extrapolated to the
whole job by its time per request: run to the end it would take minutes. The naive
``asyncio.gather`` runs to the end; it fetches only the first page of each unit (all this data
set needs) and does not retry, so what the server turns away is simply lost.
"""

from __future__ import annotations

import json

from .context import Context
from .rate_bound_harvest import CONCURRENCY, RATE, config, spec
from .runs import Run, api_harvest, child_json
from .servers import sim_server
from .tables import Check, ScenarioResult, Table, ratio

NAME = "naive_loops"
TITLE = "speedup over a sequential loop and a naive asyncio.gather (scenario 1's setup)"

KINDS = ("chat", "access", "vote", "answercard", "rollcall")


def run(ctx: Context) -> ScenarioResult:
    data = spec(ctx.quick)
    result = ScenarioResult(
        NAME,
        TITLE,
        f"as rate_bound: {data.lives} lives, 100 ms latency, 100 requests/s limit; the "
        f"library harvest is told the rate (concurrency {CONCURRENCY})",
    )
    with sim_server(data, config()) as server:
        job = {
            "base_url": server.url,
            "userid": server.userid,
            "api_key": server.api_key,
            "since": server.since.isoformat(),
            "until": server.until.isoformat(),
            "kinds": KINDS,
        }
        harvest: Run | None = ctx.cache.get("rate_bound_told")
        if harvest is None:
            ctx.log(f"{NAME}: library harvest, told the rate")
            harvest = api_harvest(server, "API, rate=100", rate=RATE, concurrency=CONCURRENCY)
        ctx.log(f"{NAME}: sequential blocking loop (sampled)")
        server.reset()
        limit = 2.0 if ctx.quick else 12.0
        seq = child_json(
            "benchmarks.naive_harvests", "sequential", json.dumps({**job, "time_limit": limit})
        )
        seq_stats = server.stats()
        ctx.log(f"{NAME}: naive asyncio.gather")
        server.reset()
        gather = child_json("benchmarks.naive_harvests", "gather", json.dumps(job))
        gather_stats = server.stats()

    needed = harvest.ok
    per_request = seq["duration"] / seq["requests"]
    seq_total = needed * per_request
    speedup = seq_total / harvest.duration
    table = Table(
        "The same harvest three ways",
        ("approach", "requests", "rejected", "records", "time s", "req/s", "harvest speedup"),
    )
    table.add(
        f"sequential httpx.Client (ran {seq['duration']:.0f} s, extrapolated)",
        needed,
        seq_stats["rate_limited"],
        "-",
        seq_total,
        1 / per_request,
        ratio(seq_total, harvest.duration),
    )
    table.add(
        "asyncio.gather, no limiter, no retry",
        gather["requests"],
        gather_stats["rate_limited"],
        gather["records"],
        gather["duration"],
        gather["requests"] / gather["duration"],
        ratio(gather["duration"], harvest.duration),
    )
    table.add(
        "cc_collect_async Harvester, rate=100",
        harvest.requests,
        harvest.rejected,
        harvest.records,
        harvest.duration,
        harvest.rps,
        "1.00x",
    )
    lost = gather["failed_units"]
    table.notes += [
        f"sequential: {seq['requests']} requests in {seq['duration']:.1f} s = "
        f"{per_request * 1000:.1f} ms each; x {needed} requests the harvest needed",
        f"the naive gather lost {lost} of {gather['requests'] - 1} units "
        f"({gather_stats['rate_limited']} requests turned away as too fast): "
        "its data is incomplete",
        f"bound: the limit allows at most {RATE:.0f} x {per_request:.3f} = "
        f"{RATE * per_request:.1f}x over one request at a time",
    ]
    result.tables.append(table)
    result.checks.append(
        Check(
            "harvest >= 10x faster than the sequential loop",
            f"{speedup:.1f}x",
            ctx.judge(speedup >= 10.0),
        )
    )
    result.checks.append(
        Check(
            "naive gather: rejections it triggers (reported)",
            f"{gather_stats['rate_limited']} of {gather['requests']} requests",
            None,
        )
    )
    return result
