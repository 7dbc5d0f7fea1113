"""Scenario 6: harvest time grows linearly with the work; memory does not grow at all.

The same harvest over windows of 100, 1,000 and 10,000 lives, through the library API (a
JSON-lines sink, in its own process) and through ``cc-collect harvest`` (its directory
sink): records and requests scale with the lives. The simulator answers
after 10 ms and has no limit; concurrency is fixed at 32. Time per request must stay the
same from 1,000 to 10,000 lives (within 20%) and peak memory must stay flat (within 10%).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from cc_collect_async.sim import DatasetSpec, SimConfig

from .context import Context
from .runs import Run, api_harvest, cli_harvest, cli_path
from .servers import sim_server
from .tables import Check, ScenarioResult, Table

NAME = "scaling"
TITLE = "scaling: 100, 1,000 and 10,000 lives (10 ms latency, concurrency 32)"

LATENCY = 0.01
CONCURRENCY = 32


def spec(lives: int) -> DatasetSpec:
    return DatasetSpec(
        lives=lives,
        rooms=20,
        chat_per_live=20,
        access_per_live=10,
        votes_per_live=1,
        answercards_per_live=1,
        rollcall_per_live=10,
    )


def run(ctx: Context) -> ScenarioResult:
    sizes = (100, 500) if ctx.quick else (100, 1_000, 10_000)
    result = ScenarioResult(
        NAME,
        TITLE,
        f"simulator in its own process: latency {LATENCY * 1000:.0f} ms, no limit; lives of "
        f"~45 records (default empty and huge lives); default kinds; concurrency "
        f"{CONCURRENCY}, rate 10,000/s (not binding); records written as JSON lines",
    )
    table = Table(
        "Harvest size against time, CPU and memory",
        (
            "lives",
            "harvest",
            "requests",
            "records",
            "time s",
            "req/s",
            "ms per 1k req",
            "client CPU s",
            "CPU us/req",
            "server CPU us/req",
            "peak RSS MB",
        ),
    )
    runs: dict[int, Run] = {}
    cli_runs: dict[int, Run] = {}
    use_cli = cli_path() is not None and not ctx.quick  # memory runs the command in quick
    for lives in sizes:
        with sim_server(spec(lives), SimConfig(latency=LATENCY)) as server:
            ctx.log(f"{NAME}: {lives:,} lives, Harvester")
            with tempfile.TemporaryDirectory(prefix="cc-bench-") as scratch:
                runs[lives] = api_harvest(
                    server,
                    "Harvester + JSON-lines sink",
                    rate=10_000.0,
                    concurrency=CONCURRENCY,
                    sink=str(Path(scratch) / "records.jsonl"),
                )
            if use_cli:
                ctx.log(f"{NAME}: {lives:,} lives, cc-collect harvest")
                cli_runs[lives] = cli_harvest(
                    server,
                    "cc-collect harvest",
                    ["--rate", "10000", "--concurrency", str(CONCURRENCY)],
                )
    for lives in sizes:
        for r in (runs[lives], cli_runs.get(lives)):
            if r is None:
                continue
            table.add(
                lives,
                r.label,
                r.requests,
                r.records,
                r.duration,
                r.rps,
                r.duration / r.requests * 1e6,
                r.cpu,
                r.cpu_per_request_us,
                r.server_cpu_per_request_us,
                r.peak_rss_mb,
            )
    table.notes += [
        "Harvester rows: the library's harvest in a fresh process, records appended to one "
        "JSON-lines file; time from the harvester's clock (listing included), CPU around the "
        "harvest, peak RSS of the whole process",
        "cc-collect rows: the command with its directory sink (a spool per kind, a journal "
        "line per unit, the manifest, the final assembly); wall time, CPU and peak RSS of "
        "the child process",
        f"bound at {CONCURRENCY} in flight: {CONCURRENCY / LATENCY:,.0f} req/s, so the "
        "2 shared cores (client and server) set the pace",
    ]
    result.tables.append(table)
    small, large = sizes[-2], sizes[-1]

    def checks(found: dict[int, Run], what: str) -> None:
        per_request = {n: found[n].duration / found[n].requests for n in sizes}
        growth = per_request[large] / per_request[small]
        result.checks.append(
            Check(
                f"{what}: time grows linearly (time per request, {large:,} / {small:,} lives)",
                f"{growth:.2f}x",
                ctx.judge(growth <= 1.2),
            )
        )
        rss = [found[n].peak_rss_mb for n in sizes]
        result.checks.append(
            Check(
                f"{what}: memory flat (largest / smallest peak RSS)",
                f"{max(rss):.0f} / {min(rss):.0f} MB = {max(rss) / min(rss):.2f}x",
                ctx.judge(max(rss) / min(rss) <= 1.10),
            )
        )

    checks(runs, "Harvester")
    if cli_runs:
        checks(cli_runs, "cc-collect")
    return result
