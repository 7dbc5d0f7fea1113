"""Scenario: peak memory of ``cc-collect sync`` into DuckDB, 1,000,000 records against a tenth.

The simulator (its own process, no latency, no limit) serves lives of about 1,000 records;
``cc-collect sync`` writes them into a fresh DuckDB file. Target: peak RSS (the command's
``VmHWM``: interpreter, imports and DuckDB included) at most 150 MB.
"""

from __future__ import annotations

import tempfile

from cc_collect_async.sim import SimConfig

from .context import Context
from .harvest_memory import spec_for
from .servers import sim_server
from .sync_database import CommandRun, _window, run_command
from .tables import Check, ScenarioResult, Table

NAME = "sync_memory"
TITLE = "peak memory of cc-collect sync into DuckDB: 1,000,000 records against a tenth"


def run(ctx: Context) -> ScenarioResult:
    big = 50_000 if ctx.quick else 1_000_000
    result = ScenarioResult(
        NAME,
        TITLE,
        "simulator in its own process, no latency, no limit; lives of ~1,000 records (as in "
        "the memory scenario); default kinds; --rate 10000 (not binding), concurrency 64",
    )
    table = Table(
        "Sync into DuckDB: peak memory against size",
        ("sync", "records", "requests", "wall s", "records/s", "CPU s", "peak RSS MB"),
    )
    runs: list[CommandRun] = []
    for target in (big // 10, big):
        spec = spec_for(target)
        with (
            sim_server(spec, SimConfig()) as server,
            tempfile.TemporaryDirectory(prefix="cc-bench-") as scratch,
        ):
            ctx.log(f"{NAME}: {target:,} records ({spec.lives} lives)")
            run, _ = run_command(
                server,
                f"cc-collect sync, {target:,}",
                [
                    "sync",
                    "--db",
                    f"duckdb:///{scratch}/cc.duckdb",
                    *_window(server),
                    "--rate",
                    "10000",
                ],
            )
        runs.append(run)
        table.add(
            run.label,
            run.records,
            run.requests,
            run.wall,
            run.records / run.wall,
            run.cpu,
            run.peak_rss_mb,
        )
    table.notes.append("peak RSS: the command's VmHWM (interpreter, imports, DuckDB included)")
    result.tables.append(table)
    small, large = runs
    result.checks.append(
        Check(
            f"cc-collect sync into DuckDB: {large.records:,} records, peak RSS <= 150 MB",
            f"{large.peak_rss_mb:.0f} MB (a tenth: {small.peak_rss_mb:.0f} MB)",
            ctx.judge(large.peak_rss_mb <= 150 and large.records >= big and large.complete),
        )
    )
    return result
