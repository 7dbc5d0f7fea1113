"""``cc-collect sync``: the account's lives into a database, incrementally, exactly once.

The grammar (``add_sync_parser``), the checked options (``sync_options``) and the command
(``run_sync``); the work is :func:`cc_collect_async.database.sync`. Same credentials,
limits, progress display, Ctrl-C handling, exit codes and cron outputs (``--log-format
json``, ``--metrics-file``) as ``harvest``; a database that
cannot be used is exit 2 (the wrong thing: not a DuckDB file, a newer schema) or 4
(unreachable, rejected, in use, full), with one line and before anything is fetched.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import attrs

from ..database import (
    DEFAULT_DATABASE,
    ENV_DATABASE_URL,
    KIND_TABLES,
    DatabaseError,
    DatabaseTarget,
    DatabaseUsageError,
    SyncPlan,
    SyncReport,
    parse_target,
    sync,
)
from ..errors import AuthError
from ..harvest import DEFAULT_KINDS, Harvester
from . import console, json_logs, metrics_file, runtime
from .args import (
    Credentials,
    Display,
    UsageError,
    add_connection_options,
    add_display_options,
    add_kinds_option,
    add_pace_options,
    credentials_of,
    default_concurrency,
    metrics_path,
    parse_when,
)
from .commands import run_with_cron_outputs
from .exits import ExitCode, HarvestEnd, find_error, harvest_exit_code
from .interrupt import run_interruptibly
from .progress import (
    failed_phrase,
    failure_lines,
    follow,
    format_duration,
    progress_view,
    summary_table,
)

__all__ = ["SyncOptions", "add_sync_parser", "run_sync", "sync_options"]

_EPILOG = f"""\
The database: --db duckdb:///FILE (a file relative to the current directory; duckdb:////PATH
for an absolute one), or postgresql://USER@HOST/DBNAME (or ${ENV_DATABASE_URL}). Default
{DEFAULT_DATABASE}. Tables: one per kind (cc_chat, cc_access, ...), cc_lives, cc_units,
cc_runs, cc_watermarks, cc_meta.

Incremental: without --since, a sync starts at the earlier of where the last complete sync
ended and the oldest live that was still running (or ended less than --settle hours before
it was fetched); it skips units already final and fetches the rest whole. --until defaults
to now. Rerun after a crash or a kill: only the missing units are fetched.

Locks: one sync at a time per DuckDB file (and no reader meanwhile); PostgreSQL: one per
account and schema.
"""


@attrs.frozen(kw_only=True)
class SyncOptions:
    credentials: Credentials
    target: DatabaseTarget
    kinds: tuple[str, ...] = DEFAULT_KINDS
    since: datetime | None = None
    until: datetime | None = None
    settle: timedelta = timedelta(hours=3)
    refresh_days: int = 0
    group_seconds: float = 1.0
    timeout: float | None = None
    concurrency: int | None = None
    rate: float | None = None
    display: Display = attrs.field(factory=Display)
    #: "json": every stderr line is a JSON object (:mod:`.json_logs`).
    log_format: str = "text"
    #: Prometheus text file written at the end (:mod:`.metrics_file`).
    metrics_file: Path | None = None
    #: Starting rate of the adaptive limiter (the demo's simulator has no limit).
    initial_rate: float | None = None


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {text!r}")
    return value


def _days(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {text!r}")
    return int(text)


def add_sync_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "sync",
        help="fetch new and unfinished lives into a database (DuckDB or PostgreSQL)",
        description="Sync the account's lives into a database: every record of the chosen "
        "kinds, incrementally, each unit exactly once.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_argument_group("database")
    where.add_argument(
        "--db",
        metavar="URL",
        help=f"duckdb:///FILE or postgresql://... (default ${ENV_DATABASE_URL}, "
        f"else {DEFAULT_DATABASE})",
    )
    where.add_argument(
        "--schema", metavar="NAME", help="schema of the tables (default: main / public)"
    )
    what = parser.add_argument_group("what (Beijing time)")
    what.add_argument(
        "--since", type=parse_when, metavar="WHEN", help="start here instead of incrementally"
    )
    what.add_argument(
        "--until",
        type=parse_when,
        metavar="WHEN",
        help="lives that started before WHEN (exclusive; default now)",
    )
    add_kinds_option(what)
    when = parser.add_argument_group("incremental")
    when.add_argument(
        "--settle",
        type=_non_negative,
        default=3.0,
        metavar="HOURS",
        help="a unit is final once fetched this long after its live ended (default 3)",
    )
    when.add_argument(
        "--refresh-days",
        type=_days,
        default=0,
        metavar="N",
        help="fetch the last N days again, final units included (default 0)",
    )
    when.add_argument(
        "--group-seconds",
        type=_non_negative,
        default=1.0,
        metavar="S",
        help="commit finished units together about every S seconds (default 1; 0 commits "
        "each unit in its own transaction)",
    )
    add_pace_options(parser)
    add_connection_options(parser)
    add_display_options(parser, json_flag=True)
    for action in parser._actions:  # the shared group speaks of harvest's manifest
        if "--json" in action.option_strings:
            action.help = "print the sync's report (window, watermark, counts) as JSON at the end"
    json_logs.add_option(parser)
    metrics_file.add_option(parser)


def sync_options(ns: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> SyncOptions:
    if ns.since is not None and ns.until is not None and ns.since >= ns.until:
        raise UsageError("--since must be before --until; until is exclusive")
    url = ns.db or environ.get(ENV_DATABASE_URL) or DEFAULT_DATABASE
    try:
        target = parse_target(url, ns.schema)
    except DatabaseUsageError as exc:
        message = str(exc)
        if not ns.db and message.startswith("--db"):  # the URL came from the environment
            message = f"{ENV_DATABASE_URL}{message[len('--db') :]}"
        raise UsageError(message) from None
    return SyncOptions(
        credentials=credentials_of(ns, environ),
        target=target,
        kinds=ns.kinds,
        since=ns.since,
        until=ns.until,
        settle=timedelta(hours=ns.settle),
        refresh_days=ns.refresh_days,
        group_seconds=ns.group_seconds,
        timeout=ns.timeout,
        concurrency=ns.concurrency or default_concurrency(ns.rate),
        rate=ns.rate,
        display=Display(quiet=ns.quiet, verbose=ns.verbose, json=ns.json),
        log_format=ns.log_format,
        metrics_file=metrics_path(ns.metrics_file),
    )


def run_sync(
    options: SyncOptions, *, stderr: TextIO | None = None, stdout: TextIO | None = None
) -> ExitCode:
    """``cc-collect sync``: the whole run, from opening the database to the exit code (and
    the metrics file and the closing JSON event, when asked for)."""
    import sys

    stderr, stdout = stderr or sys.stderr, stdout or sys.stdout
    ran: list[SyncReport] = []

    @functools.cache  # asked by the metrics file and by the closing event
    def report() -> dict[str, Any] | None:
        return _json(ran[0]) if ran else None

    return run_with_cron_outputs(
        lambda stderr: runtime.run_async(_sync, options, stderr, stdout, ran),
        stderr,
        log_format=options.log_format,
        verbose=options.display.verbose,
        metrics=options.metrics_file,
        render=lambda code, duration, path: _metrics_text(path, report(), code, duration),
        figures=lambda duration: _figures(report(), duration),
    )


def _figures(report: dict[str, Any] | None, duration: float) -> dict[str, Any]:
    """The closing event's fields: the report's own figures, the harvest's pace."""
    figures = {key: value for key, value in (report or {}).items() if key != "harvest"}
    harvest = (report or {}).get("harvest") or {}
    for key in ("lives", "requests", "retries", "rate_limited"):
        figures[key] = int(harvest.get(key) or 0)
    figures["failures"] = len(harvest.get("failures") or [])
    figures["duration_seconds"] = round(duration, 3)
    return figures


def _metrics_text(
    path: Path, report: dict[str, Any] | None, code: ExitCode, duration: float
) -> str:
    return metrics_file.render_sync(
        report,
        exit_code=int(code),
        duration=duration,
        now=time.time(),
        last_success=metrics_file.previous_success(path, "sync"),
    )


def _when(moment: datetime | None) -> str:
    return "none" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def _unfinished(plan: SyncPlan) -> str:
    start = plan.unfinished_from
    return "" if start is None else f", a sync that did not complete started at {_when(start)}"


def _skipping(plan: SyncPlan) -> str:
    """What the header says of final units: skipped, or (``--refresh-days``) fetched again
    from some time on."""
    if plan.skip_until >= plan.until:
        return "units already final are skipped as their lives are listed"
    if plan.skip_until <= plan.since:
        return "every unit is fetched again (--refresh-days), final or not"
    return (
        f"units already final are skipped for lives started before {_when(plan.skip_until)}, "
        "fetched again after (--refresh-days)"
    )


async def _sync(
    options: SyncOptions, stderr: TextIO, stdout: TextIO, result: list[SyncReport]
) -> ExitCode:
    display = options.display
    quiet = display.quiet
    if not quiet:
        console.say(stderr, f"cc-collect: syncing into {options.target.display}")
    seen: list[Harvester] = []

    async def watch(plan: SyncPlan, harvester: Harvester) -> None:
        seen.append(harvester)
        if not quiet:
            console.say(
                stderr,
                f"cc-collect: lives from {_when(plan.since)} to {_when(plan.until)} "
                f"(Beijing time; watermark {_when(plan.watermark)}, oldest unfinished live "
                f"{_when(plan.oldest_open)}{_unfinished(plan)}); kinds "
                f"{','.join(harvester.kinds)}; " + _skipping(plan),
            )
        view = progress_view(stderr, quiet=quiet, verbose=display.verbose, kinds=harvester.kinds)
        views.append(view)
        await follow(harvester, view)

    views: list[Any] = []
    extra: dict[str, Any] = {}
    if options.initial_rate is not None:
        extra["initial_rate"] = options.initial_rate

    error: Exception | None = None
    interrupted = False
    async with runtime.client(options.credentials, options.timeout, options.concurrency) as client:

        async def work() -> None:
            await sync(
                client,
                options.target,
                since=options.since,
                until=options.until,
                kinds=options.kinds,
                settle=options.settle,
                refresh_days=options.refresh_days,
                group_seconds=options.group_seconds,
                rate=options.rate,
                concurrency=options.concurrency,
                harvest_options=extra,
                watch=watch,
                on_report=result.append,  # also when a signal cuts the sync short
            )

        try:
            interrupted = await run_interruptibly(work, stderr)
        except Exception as exc:  # anyio wraps errors in exception groups
            error = exc
    if seen and views:
        views[0].finish(seen[0].progress())
    if error is not None:
        return _failed(options, error, seen, stderr)
    if not result:  # interrupted before the harvest began
        console.say(stderr, "cc-collect: interrupted before anything was fetched")
        return ExitCode.INTERRUPTED
    return _tell_end(options, result[0], interrupted, stderr, stdout)


def _failed(
    options: SyncOptions, error: Exception, seen: list[Harvester], stderr: TextIO
) -> ExitCode:
    usage = find_error(error, DatabaseUsageError)
    if usage is not None:
        console.error(stderr, usage)
        return ExitCode.USAGE
    auth = find_error(error, AuthError)
    database = find_error(error, DatabaseError)
    if auth is None and database is None:
        raise error  # a bug, not a condition: keep the traceback
    if auth is not None:
        console.error(stderr, console.auth_message(options.credentials, auth))
    else:
        console.error(stderr, database)
        if seen:
            console.say(
                stderr, "cc-collect: units committed before the error are kept; rerun to finish"
            )
    return harvest_exit_code(
        HarvestEnd(auth_rejected=auth is not None, output_failed=database is not None)
    )


def _manifest(report: SyncReport) -> dict[str, Any]:
    """The report in the shape the harvest's summary and failure lines read."""
    harvest = report.harvest
    assert harvest is not None
    data = harvest.to_dict()
    for kind, counts in data["kinds"].items():
        counts["file"] = KIND_TABLES[kind].name
    data["runs"] = [
        {
            "requests": harvest.requests,
            "retries": harvest.retries,
            "rate_limited": harvest.rate_limited,
            "units_skipped": report.units_skipped,
        }
    ]
    return data


def _json(report: SyncReport) -> dict[str, Any]:
    plan = report.plan
    return {
        "database": report.database,
        "run_id": report.run_id,
        "complete": report.complete,
        "since": plan.since.isoformat(),
        "until": plan.until.isoformat(),
        "watermark_before": plan.watermark.isoformat() if plan.watermark else None,
        "watermark_after": (
            plan.watermark_after.isoformat() if plan.watermark_after and report.complete else None
        ),
        "units_skipped": report.units_skipped,
        "units_skipped_by_kind": report.units_skipped_by_kind,
        "units_committed": report.committed_units,
        "records_committed": report.committed_records,
        "transactions": report.transactions,
        "reconnects": report.reconnects,
        "harvest": report.harvest.to_dict() if report.harvest else None,
    }


def _tell_end(
    options: SyncOptions,
    report: SyncReport,
    interrupted: bool,
    stderr: TextIO,
    stdout: TextIO,
) -> ExitCode:
    quiet = options.display.quiet
    harvest = report.harvest
    if options.display.json:
        console.print_json(stdout, _json(report))
    if harvest is None:
        if not quiet:
            console.say(
                stderr,
                f"cc-collect: nothing to do: the last complete sync ended at "
                f"{_when(report.plan.watermark)} and no live is unfinished",
            )
        return ExitCode.OK
    manifest = _manifest(report)
    if not quiet:
        console.say(stderr, summary_table(manifest))
    for line in failure_lines(manifest, see="cc_runs.report, or --json"):
        console.say(stderr, line)
    end = HarvestEnd(
        interrupted=interrupted or harvest.cancelled, failed_units=len(harvest.failures)
    )
    if end.interrupted:
        console.say(
            stderr,
            f"cc-collect: interrupted: {report.committed_units:,} units committed; "
            "run the same command again to finish",
        )
    elif end.failed_units:
        console.say(
            stderr,
            f"cc-collect: incomplete: {failed_phrase(manifest['failures'])}; the watermark "
            "stays; run the same command again to retry them",
        )
    elif not quiet:
        moved = report.plan.watermark_after if report.plan.advance_kinds else None
        console.say(
            stderr,
            f"cc-collect: complete: {report.committed_records:,} records of "
            f"{report.committed_units:,} units committed in {report.transactions:,} "
            f"transactions ({format_duration(harvest.duration)}); "
            + (
                f"watermark now {_when(moved)}"
                if moved
                else "watermark unchanged (a gap before --since)"
            ),
        )
    return harvest_exit_code(end)
