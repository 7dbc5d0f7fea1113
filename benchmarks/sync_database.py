"""Scenarios: ``cc-collect sync`` into DuckDB and PostgreSQL against ``harvest`` to JSON lines.

``sync``: with the simulator unlimited at 10 ms latency (in its own process), the same
window through ``cc-collect harvest`` (JSON lines) and ``cc-collect sync`` into a DuckDB file
and into a PostgreSQL server started for the run (initdb in a temporary directory, fsync
off): requests per second of each, as a user runs them (wall time, interpreter start
included). Target: a sync reaches at least 0.8 of the harvest's requests/s (loading must
never be what limits a sync). The same again with the simulator rough (jitter, stalls,
failed replies): a target is not met by one kind of server alone. Then the first DuckDB sync
again: every unit is final, so it lists the lives and fetches nothing else.

``sync_memory``: peak RSS of ``cc-collect sync`` into DuckDB for 1,000,000 records against a
tenth of them (target: at most 150 MB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from cc_collect_async.sim import DatasetSpec, SimConfig

from .context import Context
from .runs import cli_path
from .servers import SimServer, sim_server
from .tables import Check, ScenarioResult, Table

NAME = "sync"
TITLE = "cc-collect sync into DuckDB and PostgreSQL against harvest to JSON lines (10 ms)"

_ROOT = str(Path(__file__).resolve().parents[1])
_PACE = ["--rate", "10000", "--concurrency", "16"]


@attrs.define
class CommandRun:
    label: str
    wall: float
    requests: int
    records: int
    cpu: float
    peak_rss_mb: float
    complete: bool

    @property
    def rps(self) -> float:
        return self.requests / self.wall if self.wall else 0.0


def _window(server: SimServer) -> list[str]:
    return [
        "--since",
        server.since.strftime("%Y-%m-%d %H:%M"),
        "--until",
        server.until.strftime("%Y-%m-%d %H:%M"),
    ]


def run_command(server: SimServer, label: str, args: Sequence[str]) -> tuple[CommandRun, Any]:
    """``cc-collect ARGS --json -q`` as a user runs it: wall time, the child's CPU and peak
    RSS (see benchmarks.cli_child), and what it printed."""
    command = cli_path()
    if command is None:
        raise RuntimeError("cc-collect is not installed")
    server.reset()
    with tempfile.TemporaryDirectory(prefix="cc-bench-") as scratch:
        peak_file = Path(scratch) / "peak"
        env = {
            **server.cli_env(),
            "PYTHONPATH": _ROOT,
            "CC_BENCH_PEAK_FILE": str(peak_file),
        }
        before = os.times()
        started = time.perf_counter()
        process = subprocess.Popen(
            [*command, *args, "--json", "--quiet"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=_ROOT,
        )
        out, err = process.communicate()
        wall = time.perf_counter() - started
        if process.returncode != 0:
            raise RuntimeError(f"{label}: exit {process.returncode}: {err.decode()[-2000:]}")
        peak = float(peak_file.read_text())
        after = os.times()
    data = json.loads(out.decode())
    synced = "records_committed" in data
    harvest = (data.get("harvest") or {}) if synced else data
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    run = CommandRun(
        label=label,
        wall=wall,
        requests=int(harvest.get("requests") or 0),
        records=int(data["records_committed"] if synced else data["records"]),
        cpu=cpu,
        peak_rss_mb=peak,
        complete=bool(data.get("complete")),
    )
    return run, data


@contextmanager
def _postgres() -> Iterator[str | None]:
    sys.path.insert(0, str(Path(_ROOT) / "tests"))
    try:
        from postgres_server import PostgresUnavailable, running_postgres
    except ImportError:
        yield None
        return
    try:
        with running_postgres() as server:
            yield server.fresh_database()
    except PostgresUnavailable:
        yield None


#: The server as the vendor's behaves, not as ours does by default: latency that varies,
#: pauses (some of a whole live's requests), and failed replies that are retried.
ROUGH = SimConfig(
    latency=0.01,
    jitter=0.01,
    stall=0.002,
    stall_live=0.02,
    stall_min=0.02,
    stall_max=0.1,
    fault_rate=0.01,
    fault_kinds=("http500", "drop", "truncate"),
    fault_seed=7,
)


def _compare(
    ctx: Context, server: SimServer, scratch: str, postgres: str | None, name: str
) -> dict[str, CommandRun]:
    """The window through harvest, a DuckDB sync and a PostgreSQL sync (schema ``name``)."""
    window = _window(server)
    runs: dict[str, CommandRun] = {}
    ctx.log(f"{NAME} ({name}): harvest to JSON lines")
    runs["harvest"], _ = run_command(
        server, f"cc-collect harvest (JSON lines), {name}",
        ["harvest", *window, *_PACE, "--out", f"{scratch}/{name}-out"],
    )  # fmt: skip
    ctx.log(f"{NAME} ({name}): sync into DuckDB")
    runs["duckdb"], _ = run_command(
        server, f"cc-collect sync (DuckDB), {name}",
        ["sync", "--db", f"duckdb:///{scratch}/{name}.duckdb", *window, *_PACE],
    )  # fmt: skip
    if postgres is not None:
        ctx.log(f"{NAME} ({name}): sync into PostgreSQL")
        runs["postgres"], _ = run_command(
            server, f"cc-collect sync (PostgreSQL), {name}",
            ["sync", "--db", postgres, "--schema", name, *window, *_PACE],
        )  # fmt: skip
    return runs


def _ratios(ctx: Context, runs: dict[str, CommandRun], setting: str) -> list[Check]:
    base = runs["harvest"]
    checks = []
    for key in ("duckdb", "postgres"):
        if key in runs:
            ratio = runs[key].rps / base.rps
            checks.append(
                Check(
                    f"sync into {'DuckDB' if key == 'duckdb' else 'PostgreSQL'}: >= 0.8 of "
                    f"harvest's requests/s ({setting})",
                    f"{ratio:.2f} ({runs[key].rps:.0f} vs {base.rps:.0f} requests/s)",
                    ctx.judge(ratio >= 0.8 and runs[key].complete),
                )
            )
    return checks


def run(ctx: Context) -> ScenarioResult:
    # 1,600 lives: about 8,000 requests, 7 s at the pace this machine allows. A night's sync
    # runs for minutes; a 2-second one (400 lives) mostly measures the interpreter's and the
    # database's start-up, which a sync pays once (0.1-0.3 s more than harvest's).
    lives = 60 if ctx.quick else 1600
    spec = DatasetSpec(lives=lives, rooms=10, huge_every=0)
    result = ScenarioResult(
        NAME,
        TITLE,
        f"simulator in its own process; steady: 10 ms latency, no limit; rough: 10 +- 10 ms, "
        "stalls of 20-100 ms (0.2% of requests, 2% of lives), 1% of replies failed (500, "
        f"dropped, truncated) and retried; {lives} lives of the default volumes (chat 60, "
        "access 40, rollcall 30, 3 votes, 3 answer cards on average); default kinds; "
        "--rate 10000 --concurrency 16 (a bound of 1,600 requests/s)",
    )
    table = Table(
        "The same window: harvest to JSON lines, sync into DuckDB and PostgreSQL",
        (
            "command",
            "requests",
            "records",
            "wall s",
            "requests/s",
            "vs harvest",
            "CPU s",
            "peak MB",
        ),
    )
    with tempfile.TemporaryDirectory(prefix="cc-bench-") as scratch, _postgres() as postgres:
        with sim_server(spec, SimConfig(latency=0.01)) as server:
            steady = _compare(ctx, server, scratch, postgres, "steady")
            ctx.log(f"{NAME}: DuckDB sync again, nothing to do")
            rerun, _ = run_command(
                server, "cc-collect sync again (DuckDB, every unit final)",
                ["sync", "--db", f"duckdb:///{scratch}/steady.duckdb", *_window(server), *_PACE],
            )  # fmt: skip
            listing_pages = -(-len(server.lives()) // 100)
        with sim_server(spec, ROUGH) as server:
            rough = _compare(ctx, server, scratch, postgres, "rough")
    for runs in (steady, rough):
        base = runs["harvest"]
        for key, run in runs.items():
            ratio = f"{run.rps / base.rps:.2f}" if key != "harvest" else "1.00"
            row = (run.requests, run.records, run.wall, run.rps, ratio, run.cpu, run.peak_rss_mb)
            table.add(run.label, *row)
    table.add(rerun.label, rerun.requests, rerun.records, rerun.wall, rerun.rps, "-", rerun.cpu,
              rerun.peak_rss_mb)  # fmt: skip
    table.notes += [
        "wall: the command's own wall time, interpreter start, opening the database and the "
        "last commit (or the output files' assembly) included; CPU: the child's user+system",
        "the simulator shares the machine's 2 cores with the client (and with PostgreSQL's "
        "server processes); other work on the machine shows as noise",
    ]
    result.tables.append(table)
    result.checks += _ratios(ctx, steady, "steady")
    result.checks += _ratios(ctx, rough, "rough")
    result.checks.append(
        Check(
            "a rerun with nothing to do lists lives and fetches nothing else",
            f"{rerun.requests} requests ({listing_pages} listing pages), {rerun.records} records",
            ctx.judge(rerun.requests == listing_pages and rerun.records == 0),
        )
    )
    return result
