"""Scenario: the rate governor against a server that pauses like a real one.

The simulator runs in its own process with stalls on: with probability 0.002 per request,
and on the first request for one live in fifty (when a real server builds its data), its
event loop blocks for 20-100 ms before the rate check, then admits the backlog at once.
No client can prevent those bunches; what it controls is the backlog's depth and what a
refusal costs. Each row shows what the server saw: requests reaching its rate check per
100 ms, as a sparkline (refusals in the run are counted beside it).

- told the rate: 100/s bucket (burst 10), 100 ms latency, over 1,300 requests:
  >= 0.95 of the bound, <= 1% refused;
- not told, the same server: >= 0.90 of the limit, <= 3% refused;
- no limit, not told, 1,500 requests: >= 0.90 of concurrency / latency at 32 and 128 in
  flight, start included;
- a per-interface limit (20/s on chat, 100/s for the account): >= 0.90 of what the limits
  allow;
- an interface at 100 calls a minute (the vendor's sibling API's figure), the command's
  defaults: complete, nothing failed, >= 0.75 of what that limit allows, <= 30% of its
  requests refused (most while its limit is learnt, in the first 15 s of a 45 s run);
- a per-minute quota answered with a long Retry-After, scaled to run in under a minute:
  finishes, nothing failed, the wait shown in the progress lines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from cc_collect_async.sim import DatasetSpec, SimConfig

from .context import Context
from .runs import Run, api_harvest, cli_harvest, cli_path
from .servers import sim_server
from .tables import Check, ScenarioResult, Table

NAME = "governor"
TITLE = "rate governor against a stalling server (told, adaptive, no limit, per interface, quota)"

LATENCY = 0.1
RATE = 100.0
STALLS = {"stall": 0.002, "stall_live": 0.02, "stall_min": 0.02, "stall_max": 0.1}
KINDS = ("chat", "access", "vote", "answercard", "rollcall")
CHAT_PATH = "/collect/live/chat/record/"
CHAT_RATE = 20.0
SLOW_CHAT_RATE = 100 / 60
# A per-minute quota scaled by 1/6: 60 requests per 10 s, and a 429 saying "10 s".
QUOTA = 60
QUOTA_WINDOW = 10.0

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[int], width: int = 64) -> str:
    """Counts per 100 ms, squeezed to at most ``width`` bars (each the mean of its share)."""
    if not values:
        return "-"
    step = max(1, math.ceil(len(values) / width))
    means = [sum(values[i : i + step]) / step for i in range(0, len(values), step)]
    top = max(means) or 1.0
    line = "".join(_BARS[min(len(_BARS) - 1, int(m / top * (len(_BARS) - 1) + 0.5))] for m in means)
    return f"{line} (max {max(values)}/100 ms, {step * 100} ms a bar)"


def config(**extra: object) -> SimConfig:
    return SimConfig(latency=LATENCY, **STALLS, **extra)  # type: ignore[arg-type]


def share(run: Run) -> float:
    return run.rejected / max(run.requests, 1)


def run(ctx: Context) -> ScenarioResult:
    quick = ctx.quick
    lives = 40 if quick else 270
    result = ScenarioResult(
        NAME,
        TITLE,
        f"simulator in its own process (uvicorn, loopback TCP), latency {LATENCY * 1000:.0f} ms, "
        f"stalls on: probability {STALLS['stall']} per request and {STALLS['stall_live']} per "
        f"live (its first request), each blocking the server's event loop for "
        f"{STALLS['stall_min'] * 1000:.0f}-{STALLS['stall_max'] * 1000:.0f} ms before the "
        f"rate check; kinds {','.join(KINDS)} unless said",
    )
    table = Table(
        "The governor's rows",
        (
            "scenario",
            "requests",
            "refused",
            "time s",
            "bound s",
            "efficiency",
            "stalls",
            "server arrivals per 100 ms",
        ),
    )
    checks: list[Check] = []

    def add(label: str, r: Run, bound: float) -> float:
        eff = bound / r.duration if r.duration else 0.0
        table.add(
            label,
            r.requests,
            f"{r.rejected} ({share(r):.1%})",
            r.duration,
            bound,
            f"{eff:.3f}",
            r.extra.get("stalls", 0),
            sparkline(r.extra.get("arrivals", [])),
        )
        return eff

    data = DatasetSpec(lives=lives, huge_every=0)
    with sim_server(data, config(rate=RATE, burst=10)) as server:
        ctx.log(f"{NAME}: told the rate ({lives} lives)")
        told = api_harvest(server, "told", kinds=KINDS, rate=RATE, concurrency=32)
        eff = add("API, rate=100, concurrency 32", told, told.ok / RATE)
        checks.append(
            Check(
                "told the rate: >= 0.95 of the bound, <= 1% refused, >= 1,300 requests",
                f"{eff:.3f}, {share(told):.1%} refused, {told.requests:,} requests",
                ctx.judge(eff >= 0.95 and share(told) <= 0.01 and told.requests >= 1300),
            )
        )
        if cli_path() is not None and not quick:
            ctx.log(f"{NAME}: cc-collect --rate 100")
            cli = cli_harvest(server, "cli", ["--rate", "100", "--kinds", ",".join(KINDS)])
            add("cc-collect --rate 100 (wall time, start-up included)", cli, cli.ok / RATE)
        ctx.log(f"{NAME}: not told the rate")
        adaptive = api_harvest(server, "adaptive", kinds=KINDS, concurrency=32)
        eff = add("API, not told (adaptive), concurrency 32", adaptive, adaptive.ok / RATE)
        checks.append(
            Check(
                "unknown limit (adaptive): >= 0.90 of the limit, <= 3% refused",
                f"{eff:.3f}, {share(adaptive):.1%} refused",
                ctx.judge(eff >= 0.90 and share(adaptive) <= 0.03),
            )
        )

    # No limit at all: 300 small lives, five units each, one request per unit.
    free = DatasetSpec(lives=60 if quick else 300, huge_every=0, empty_every=0)
    with sim_server(free, config()) as server:
        for concurrency in (32, 128):
            ctx.log(f"{NAME}: no limit, not told, {concurrency} in flight")
            r = api_harvest(server, "free", kinds=KINDS, concurrency=concurrency, loop="uvloop")
            # The server serves nobody while it stalls: the bound allows for that time.
            bound = r.requests / (concurrency / LATENCY) + r.extra.get("stalled", 0.0)
            eff = add(f"API, no limit, not told, {concurrency} in flight (uvloop)", r, bound)
            checks.append(
                Check(
                    f"no limit, not told, {concurrency} in flight: >= 0.90 of C / latency "
                    "(net of the server's stalls), start included",
                    f"{eff:.3f} ({r.requests:,} requests, {r.requests / r.duration:.0f} req/s)",
                    ctx.judge(eff >= 0.90),
                )
            )

    # One interface slower than the account: chat at 20/s, the account at 100/s. Kinds
    # chat, access, vote: chat is a third of the requests, so its limit sets the pace.
    per = DatasetSpec(lives=40 if quick else 250, huge_every=0)
    per_config = config(rate=RATE, burst=10, path_rates={CHAT_PATH: (CHAT_RATE, 5)})
    with sim_server(per, per_config) as server:
        ctx.log(f"{NAME}: per-interface limit")
        r = api_harvest(server, "per", kinds=("chat", "access", "vote"), rate=RATE, concurrency=32)
        chats = server.stats()["by_path"].get(CHAT_PATH, 0)
        bound = max(chats / CHAT_RATE, r.ok / RATE)
        eff = add("API, rate=100, chat limited to 20/s (learnt)", r, bound)
        checks.append(
            Check(
                "per-interface limit (chat 20/s, account 100/s): >= 0.90 of what the limits allow",
                f"{eff:.3f}, {share(r):.1%} refused",
                ctx.judge(eff >= 0.90),
            )
        )

    if cli_path() is not None:
        # The vendor's sibling API allows 100 calls a minute per interface: chat at that
        # pace (burst 1), the account at 100/s, replies jittered; the command's defaults.
        slow = DatasetSpec(lives=20 if quick else 60, window_days=1, huge_every=0)
        slow_config = config(
            rate=RATE, burst=10, jitter=0.05, path_rates={CHAT_PATH: (SLOW_CHAT_RATE, 1)}
        )
        with sim_server(slow, slow_config) as server:
            ctx.log(f"{NAME}: an interface at 100 calls a minute")
            r = cli_harvest(server, "slow", ["--kinds", ",".join(KINDS)])
            chats = server.stats()["by_path"].get(CHAT_PATH, 0)
            # At most what chat's bucket let through: every refusal counted as chat's.
            bound = (chats - r.rejected) / SLOW_CHAT_RATE
            eff = add("cc-collect, chat at 100 calls a minute (1.67/s), account 100/s", r, bound)
            failed = r.extra.get("failed", 0)
            checks.append(
                Check(
                    "an interface at 100 calls a minute (the command's defaults): complete, "
                    "nothing failed, >= 0.75 of what chat's limit allows, <= 30% of chat refused",
                    f"complete {r.complete}, {failed} failed, {eff:.3f}, "
                    f"{r.rejected} of {chats} chat requests refused",
                    ctx.judge(
                        r.complete and not failed and eff >= 0.75 and r.rejected <= 0.3 * chats
                    ),
                )
            )

        quota = DatasetSpec(lives=20 if quick else 60, huge_every=0)
        quota_config = config(rate=QUOTA / QUOTA_WINDOW, burst=QUOTA, retry_after=QUOTA_WINDOW)
        with sim_server(quota, quota_config) as server:
            ctx.log(f"{NAME}: per-minute quota, scaled")
            r = cli_harvest(server, "quota", ["--kinds", ",".join(KINDS)], quiet=False)
            bound = max(0.0, (r.ok - QUOTA) / (QUOTA / QUOTA_WINDOW))
            add(
                f"cc-collect, quota {QUOTA} per {QUOTA_WINDOW:.0f} s, Retry-After "
                f"{QUOTA_WINDOW:.0f} (a per-minute quota / 6)",
                r,
                bound,
            )
            waits = re.findall(r"server rate limit[^;\n]*", r.extra.get("stderr", ""))
            failed = r.extra.get("failed", 0)
            checks.append(
                Check(
                    "per-minute quota (scaled): finishes in under a minute, nothing failed, "
                    "the wait shown in progress",
                    f"{r.duration:.0f} s, complete {r.complete}, {failed} failed, "
                    + (
                        f"{len(waits)} progress line(s) such as {waits[0]!r}"
                        if waits
                        else "no wait shown"
                    ),
                    ctx.judge(r.complete and not failed and bool(waits) and r.duration < 60),
                )
            )

    table.notes += [
        "efficiency = bound / time; bound = requests answered / the server's rate (told, "
        "adaptive), requests / (concurrency / latency) plus the seconds the server stalled "
        "(no limit: a stalled server serves nobody), the slower of chat's and the account's "
        "(per interface), and the requests beyond the first quota at the quota's rate (quota)",
        "API rows: harvest time from the harvester's own clock in a fresh process; "
        "cc-collect rows: the command's wall time",
        "stalls: how many the server drew in that run",
        "sparkline: requests reaching the server's rate check per 100 ms (refusals included), "
        "scaled to each row's own maximum",
    ]
    result.tables.append(table)
    result.checks += checks
    return result
