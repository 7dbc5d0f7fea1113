"""The commands: each turns checked options into library calls and an exit code.

Nothing here decides what to fetch or how to store it; that is the harvest package's job
(:class:`~cc_collect_async.harvest.Harvester`,
:class:`~cc_collect_async.harvest.outdir.DirectorySink`). What lives here is the wiring:
which messages a person sees, which error means which exit code, and how Ctrl-C ends a run.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO, TextIO, cast

import anyio

from .. import CollectClient
from ..beijing import format_date, format_minute
from ..errors import AuthError, CollectError, InvalidRequestError
from ..harvest import Harvester, list_lives
from ..harvest.filesystem import OutputError
from ..harvest.manifest import DifferentHarvestError, NotAHarvestDirectoryError
from ..harvest.outdir import DirectorySink
from ..json_codec import dumps_line
from . import console, json_logs, metrics_file, runtime
from .args import (
    CallOptions,
    HarvestOptions,
    LivesOptions,
    UsageError,
)
from .exits import ExitCode, HarvestEnd, find_error, harvest_exit_code
from .interrupt import run_interruptibly
from .progress import (
    ProgressView,
    failed_phrase,
    failure_lines,
    follow,
    format_duration,
    progress_view,
    summary_table,
)

__all__ = ["run_call", "run_harvest", "run_lives", "run_sim"]

# -- harvest -------------------------------------------------------------------------------


def run_harvest(
    options: HarvestOptions, *, stderr: TextIO | None = None, stdout: TextIO | None = None
) -> ExitCode:
    """``cc-collect harvest``: the whole run, from opening ``--out`` to the exit code."""
    # Looked up per call, not bound at import: tests and embedders swap sys.stderr.
    stderr, stdout = stderr or sys.stderr, stdout or sys.stdout
    sink = DirectorySink(
        options.out,
        options.request,
        source={"base_url": options.credentials.base_url, "userid": options.credentials.userid},
    )
    return run_with_cron_outputs(
        lambda stderr: _open_and_harvest(options, sink, stderr, stdout),
        stderr,
        log_format=options.log_format,
        verbose=options.display.verbose,
        metrics=options.metrics_file,
        render=lambda code, duration, path: _metrics_text(path, sink, code, duration),
        figures=lambda duration: _figures(options, sink, duration),
    )


def run_with_cron_outputs(
    run: Callable[[TextIO], ExitCode],
    stderr: TextIO,
    *,
    log_format: str,
    verbose: int,
    metrics: Path | None,
    render: Callable[[ExitCode, float, Path], str],
    figures: Callable[[float], Mapping[str, Any]],
) -> ExitCode:
    """``run(stderr)`` with a command's cron outputs: with ``log_format`` "json" every
    stderr line a JSON object, ending with a ``finished`` event of the exit code and
    ``figures(duration)``; with ``metrics``, that file written from ``render(code, duration,
    path)`` first (a file that cannot be written turns a success into exit 4)."""
    events = None
    if log_format == "json":
        events = json_logs.install(stderr, verbose)
        stderr = cast(TextIO, events)
    started = time.monotonic()
    code = run(stderr)
    duration = time.monotonic() - started
    if metrics is not None:
        code = _write_metrics(metrics, render(code, duration, metrics), code, stderr)
    if events is not None:
        events.event(logging.INFO, "finished", exit_code=int(code), **figures(duration))
    return code


def _figures(options: HarvestOptions, sink: DirectorySink, duration: float) -> dict[str, Any]:
    manifest = sink.manifest or {}
    return {
        "out": str(options.out),
        "complete": bool(manifest.get("complete")),
        "records": int(manifest.get("records") or 0),
        "units": manifest.get("units") or {},
        "kinds": {
            kind: {key: counts.get(key) for key in ("units", "failed", "pages", "records")}
            for kind, counts in (manifest.get("kinds") or {}).items()
        },
        "requests": int(manifest.get("requests") or 0),
        "duration_seconds": round(duration, 3),
    }


def _metrics_text(path: Path, sink: DirectorySink, code: ExitCode, duration: float) -> str:
    manifest = sink.manifest or {}
    runs = manifest.get("runs") or []
    this_run = None if sink.already_complete or not runs else runs[-1]
    return metrics_file.render(
        manifest,
        exit_code=int(code),
        duration=duration,
        now=time.time(),
        last_success=metrics_file.previous_success(path),
        this_run=this_run,
    )


def _write_metrics(path: Path, text: str, code: ExitCode, stderr: TextIO) -> ExitCode:
    """Write a command's metrics file; a file that cannot be written turns a success into
    exit 4 (output), with one line saying why."""
    try:
        metrics_file.write(path, text)
    except OSError as exc:
        console.error(stderr, f"cannot write the metrics file {path}: {exc.strerror or exc}")
        return ExitCode.OUTPUT if code == ExitCode.OK else code
    return code


def _open_and_harvest(
    options: HarvestOptions, sink: DirectorySink, stderr: TextIO, stdout: TextIO
) -> ExitCode:
    try:
        sink.open()
    except (DifferentHarvestError, NotAHarvestDirectoryError) as exc:
        console.error(stderr, exc)
        return ExitCode.USAGE
    except OutputError as exc:
        console.error(stderr, exc)
        return ExitCode.OUTPUT
    try:
        return runtime.run_async(_harvest, options, sink, stderr, stdout)
    finally:
        sink.release()


async def _harvest(
    options: HarvestOptions, sink: DirectorySink, stderr: TextIO, stdout: TextIO
) -> ExitCode:
    if sink.already_complete:
        return _nothing_to_do(options, sink, stderr, stdout)
    display = options.display
    if not display.quiet:
        request = options.request
        console.say(
            stderr,
            f"cc-collect: harvesting {request.describe()}; into {options.out}",
        )
        if sink.skip:
            console.say(stderr, f"cc-collect: resuming: {len(sink.skip):,} units already committed")
    async with runtime.client(options.credentials, options.timeout, options.concurrency) as client:
        harvester = _harvester(options, client, sink)
        view = progress_view(
            stderr,
            quiet=display.quiet,
            verbose=display.verbose,
            kinds=options.request.kinds,
        )
        error, interrupted = await _fetch(harvester, sink, view, stderr)
        view.finish(harvester.progress())
    auth, output = _sort_error(error)
    report = harvester.report
    end = HarvestEnd(
        auth_rejected=auth is not None,
        output_failed=output is not None,
        interrupted=interrupted or report.cancelled,
        failed_units=len(report.failures),
    )
    _tell_end(options, sink.manifest or {}, end, stderr, stdout, duration=report.duration)
    if auth is not None:
        console.error(stderr, console.auth_message(options.credentials, auth))
    elif output is not None:
        console.error(stderr, output)
    return harvest_exit_code(end)


def _nothing_to_do(
    options: HarvestOptions, sink: DirectorySink, stderr: TextIO, stdout: TextIO
) -> ExitCode:
    manifest = sink.manifest or {}
    if not options.display.quiet:
        console.say(
            stderr,
            f"cc-collect: {options.out} already holds this harvest, complete "
            f"({int(manifest.get('records') or 0):,} records of "
            f"{int(manifest.get('lives') or 0):,} lives, finished "
            f"{manifest.get('finished_at')}); nothing to do",
        )
    if options.display.json:
        console.print_json(stdout, manifest)
    return ExitCode.OK


def _harvester(options: HarvestOptions, client: CollectClient, sink: DirectorySink) -> Harvester:
    request = options.request
    extra: dict[str, Any] = {}
    if options.initial_rate is not None:
        extra["initial_rate"] = options.initial_rate
    return Harvester(
        client,
        window=request.window,
        lives=request.lives or None,
        kinds=request.kinds,
        rate=options.rate,
        concurrency=options.concurrency,
        skip=sink.skip,
        **extra,
    )


async def _fetch(
    harvester: Harvester, sink: DirectorySink, view: ProgressView, stderr: TextIO
) -> tuple[Exception | None, bool]:
    """Run the harvest into ``sink`` with the progress display beside it and Ctrl-C handled;
    return what it raised (sorted out by :func:`_sort_error`) and whether a signal ended it."""

    async def work() -> None:
        async with anyio.create_task_group() as display:
            display.start_soon(follow, harvester, view)
            try:
                await harvester.run(sink)
            finally:
                display.cancel_scope.cancel()

    try:
        return None, await run_interruptibly(work, stderr)
    except Exception as exc:  # anyio wraps errors in exception groups; sorted out later
        return exc, False


def _sort_error(error: Exception | None) -> tuple[AuthError | None, Exception | None]:
    """The rejected credentials or the output error that ``error`` holds. Anything else is
    a bug, not a condition: it is raised again, traceback and all."""
    if error is None:
        return None, None
    auth = find_error(error, AuthError)
    output = find_error(error, OutputError) or find_error(error, OSError)
    if auth is None and output is None:
        raise error
    return auth, output


def _tell_end(
    options: HarvestOptions,
    manifest: Mapping[str, Any],
    end: HarvestEnd,
    stderr: TextIO,
    stdout: TextIO,
    *,
    duration: float,
) -> None:
    """The summary, the failures and the closing line (the error line of an authentication
    or output failure is the caller's)."""
    quiet, where = options.display.quiet, options.out
    broken = end.auth_rejected or end.output_failed
    if not quiet and manifest and not broken:
        console.say(stderr, summary_table(manifest))
    for line in failure_lines(manifest):
        console.say(stderr, line)
    if options.display.json and manifest:
        console.print_json(stdout, manifest)
    if broken:
        return
    if end.interrupted:
        units = manifest.get("units") or {}
        done, expected = int(units.get("done") or 0), int(units.get("expected") or 0)
        console.say(
            stderr,
            f"cc-collect: interrupted: {done:,} of {expected:,}+ units committed in {where}; "
            "run the same command again to finish",
        )
    elif end.failed_units:
        console.say(
            stderr,
            f"cc-collect: incomplete: {failed_phrase(manifest.get('failures') or [])}; "
            "run the same command again to retry them",
        )
    elif not quiet:
        issues = manifest.get("issues") or []
        if issues:
            console.say(
                stderr, f"cc-collect: note: {len(issues):,} completeness issue(s) in manifest"
            )
        console.say(
            stderr,
            f"cc-collect: complete: {int(manifest.get('records') or 0):,} records in {where} "
            f"({format_duration(duration)})",
        )


# -- lives ---------------------------------------------------------------------------------


def _binary_stdout(stdout: TextIO) -> BinaryIO:
    buffer: BinaryIO = getattr(stdout, "buffer", None) or sys.stdout.buffer
    return buffer


def run_lives(
    options: LivesOptions, *, stderr: TextIO | None = None, stdout: TextIO | None = None
) -> ExitCode:
    """``cc-collect lives``: one JSON line per live of the window, on stdout."""
    # Looked up per call, not bound at import: tests and embedders swap sys.stderr.
    stderr, stdout = stderr or sys.stderr, stdout or sys.stdout
    return runtime.run_async(_lives, options, stderr, stdout)


async def _lives(options: LivesOptions, stderr: TextIO, stdout: TextIO) -> ExitCode:
    out = _binary_stdout(stdout)
    failures: list[str] = []
    count = 0

    def failed(room: str | None, exc: CollectError) -> None:
        where = f" of room {room}" if room else ""
        failures.append(f"listing lives{where} failed: {exc}")

    async with runtime.client(options.credentials, options.timeout) as client:
        try:
            async with aclosing(list_lives(client, options.window, failed)) as lives:
                async for live in lives:
                    count += 1
                    out.write(dumps_line(dict(live.wire())))
                    out.flush()
        except AuthError as exc:
            console.error(stderr, console.auth_message(options.credentials, exc))
            return ExitCode.AUTH
    for failure in failures:
        console.error(stderr, failure)
    if not options.display.quiet:
        console.say(stderr, f"cc-collect: {count:,} lives")
    return ExitCode.UNITS_FAILED if failures else ExitCode.OK


# -- call ----------------------------------------------------------------------------------


def run_call(
    options: CallOptions, *, stderr: TextIO | None = None, stdout: TextIO | None = None
) -> ExitCode:
    """``cc-collect call``: one endpoint, its OK envelope pretty-printed on stdout."""
    # Looked up per call, not bound at import: tests and embedders swap sys.stderr.
    stderr, stdout = stderr or sys.stderr, stdout or sys.stdout
    return runtime.run_async(_call, options, stderr, stdout)


async def _call(options: CallOptions, stderr: TextIO, stdout: TextIO) -> ExitCode:
    async with runtime.client(options.credentials, options.timeout) as client:
        try:
            envelope = await client.call(options.endpoint, method=options.method, **options.params)
        except AuthError as exc:
            console.error(stderr, console.auth_message(options.credentials, exc))
            return ExitCode.AUTH
        except InvalidRequestError as exc:
            if exc.attempts == 0:  # refused before sending: the command line is wrong
                raise UsageError(str(exc)) from None
            console.error(stderr, exc)
            return ExitCode.UNITS_FAILED
        except CollectError as exc:
            console.error(stderr, exc)
            return ExitCode.UNITS_FAILED
    console.print_json(stdout, envelope)
    return ExitCode.OK


# -- sim -----------------------------------------------------------------------------------


def run_sim(argv: Sequence[str], *, stderr: TextIO | None = None) -> ExitCode:
    """``cc-collect sim``: the simulator on loopback until Ctrl-C (options: the simulator's
    own, see ``cc-collect sim --help``)."""
    from ..sim import Simulator, serve
    from ..sim.options import parse_args

    stderr = stderr or sys.stderr
    options = parse_args(argv, prog="cc-collect sim")
    simulator = Simulator(options.spec, options.config)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # uvicorn runs in a worker thread; the main thread owns the signals and waits.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with serve(simulator, options.host, options.port) as url:
            console.say(stderr, _sim_banner(url, options.spec, options.config.accounts))
            while not stop.wait(0.5):
                pass
    except OSError as exc:  # the port is taken, or not ours to bind
        console.error(
            stderr,
            f"cannot listen on {options.host}:{options.port} ({exc.strerror or exc}); "
            "choose another --port (0: any free one)",
        )
        return ExitCode.USAGE
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.say(stderr, "cc-collect: simulator stopped")
    return ExitCode.OK


def _sim_banner(url: str, spec: Any, accounts: Mapping[str, str]) -> str:
    from datetime import timedelta

    start = spec.window_start
    end = start + timedelta(days=spec.window_days)
    userid, api_key = next(iter(accounts.items()))
    lines = [
        f"cc-collect: simulator on {url}: {spec.lives} lives in {spec.rooms} rooms, "
        f"{format_minute(start)} to {format_minute(end)} (Beijing time)",
        "Use it from another shell (these are the simulator's test credentials):",
        f"  export CC_BASE_URL={url} CC_USERID={userid} CC_API_KEY={api_key}",
        f"  cc-collect harvest --since {format_date(start)} --until {format_date(end)} --kinds all "
        "--out sim-harvest",
    ]
    lines += [f"  (also account {u} with key {k})" for u, k in list(accounts.items())[1:]]
    lines.append("Ctrl-C to stop.")
    return "\n".join(lines)
