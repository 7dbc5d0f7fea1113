"""Scenario 4: memory of a big harvest written to JSON lines stays flat.

``cc-collect harvest`` (the real command, in its own process) harvests a window of large lives
from the simulator (no latency, no limit) into JSON lines: at least 1,000,000 records, then a
harvest one tenth the size. The peak RSS of the command (from the kernel's accounting of the
child) must stay under 100 MB and be the same, within 10%, for both: memory must not grow
with the size of the harvest. Without ``cc-collect`` installed, the library's Harvester with
a JSON-lines sink stands in (in its own process).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from cc_collect_async.sim import DatasetSpec, SimConfig

from .context import Context
from .runs import Run, api_harvest, cli_harvest, cli_path
from .servers import sim_server
from .tables import Check, ScenarioResult, Table

NAME = "memory"
TITLE = "peak memory of a 1,000,000-record harvest to JSON lines, against one tenth of it"

KINDS = ("chat", "access", "vote", "answercard", "rollcall")


def spec_for(records: int) -> DatasetSpec:
    """Large lives (about 1,000 records each), enough of them for ``records`` in total."""

    def make(lives: int) -> DatasetSpec:
        return DatasetSpec(
            lives=lives,
            rooms=10,
            chat_per_live=500,
            access_per_live=150,
            votes_per_live=5,
            answercards_per_live=5,
            rollcall_per_live=300,
            empty_every=0,
            huge_every=0,
        )

    from cc_collect_async.sim import Dataset

    lives = max(1, records // 950)
    while Dataset(make(lives)).total_records(kinds=KINDS) < records:
        lives = int(lives * 1.03) + 1
    return make(lives)


def run(ctx: Context) -> ScenarioResult:
    big = 50_000 if ctx.quick else 1_000_000
    result = ScenarioResult(
        NAME,
        TITLE,
        "simulator in its own process, no latency, no limit; lives of ~1,000 records "
        "(chat 500, access 150, rollcall 300, votes 5, answer cards 5 on average); default "
        "kinds; --rate 10000 (not binding), hence 64 in flight (the concurrency --rate sizes)",
    )
    use_cli = cli_path() is not None
    table = Table(
        "Harvest to JSON lines: peak memory against size",
        (
            "harvest",
            "lives",
            "records",
            "requests",
            "time s",
            "records/s",
            "client CPU s",
            "peak RSS MB",
            "output MB",
        ),
    )
    cli_runs: list[Run] = []
    api_runs: list[Run] = []
    for target in (big, big // 10):
        data = spec_for(target)
        with sim_server(data, SimConfig()) as server:
            for how in ("cli", "api") if use_cli else ("api",):
                with tempfile.TemporaryDirectory(prefix="cc-bench-") as scratch:
                    if how == "cli":
                        label = f"cc-collect harvest, {target:,}"
                        ctx.log(f"{NAME}: {label} ({data.lives} lives)")
                        r = cli_harvest(server, label, ["--rate", "10000"], keep=Path(scratch))
                        out = Path(r.extra["out"])
                        size = sum(f.stat().st_size for f in out.glob("*.jsonl"))
                        cli_runs.append(r)
                    else:
                        label = f"Harvester + JSON-lines sink, {target:,}"
                        ctx.log(f"{NAME}: {label} ({data.lives} lives)")
                        path = Path(scratch) / "records.jsonl"
                        r = api_harvest(server, label, rate=10_000.0, sink=str(path))
                        size = path.stat().st_size
                        api_runs.append(r)
                table.add(
                    label,
                    data.lives,
                    r.records,
                    r.requests,
                    r.duration,
                    r.records / r.duration,
                    r.cpu,
                    r.peak_rss_mb,
                    size / 1e6,
                )
    table.notes += [
        "cc-collect rows: the command (directory sink: a spool per kind, a journal line "
        "per unit, manifest, final assembly); peak RSS is the child's VmHWM, interpreter "
        "and imports included; time is its wall time",
        "Harvester rows: the library's harvest in a fresh process writing one JSON-lines "
        "file as records arrive; time and CPU around the harvest only",
    ]
    result.tables.append(table)

    def flat(runs: list[Run], what: str) -> None:
        large, small = runs
        growth = large.peak_rss_mb / small.peak_rss_mb
        result.checks.append(
            Check(
                f"{what}: {large.records:,} records, peak RSS <= 100 MB",
                f"{large.peak_rss_mb:.0f} MB",
                ctx.judge(large.peak_rss_mb <= 100 and large.records >= big and large.complete),
            )
        )
        result.checks.append(
            Check(
                f"{what}: peak RSS of 10x the records within 10% of the small harvest",
                f"{large.peak_rss_mb:.1f} vs {small.peak_rss_mb:.1f} MB ({growth:.2f}x)",
                ctx.judge(abs(growth - 1.0) <= 0.10),
            )
        )

    if cli_runs:
        flat(cli_runs, "cc-collect")
    flat(api_runs, "Harvester")
    return result
