"""``cc-collect``: the command line over the harvest API (argument parsing, progress display
and exit codes; the work itself is done by :mod:`cc_collect_async.harvest`).

Exit codes: 0 complete, 1 some units failed, 2 usage or configuration error, 3
authentication rejected, 4 output error (unwritable directory, full disk), 130 interrupted.

This module imports nothing heavy at import time: :func:`main` imports the commands inside
its Ctrl-C handling, so a Ctrl-C while the program is still starting (importing the HTTP
stack takes a noticeable fraction of a second) ends it with 130 and one line, not a
traceback.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .exits import ExitCode

if TYPE_CHECKING:
    import argparse

__all__ = ["ExitCode", "main"]

#: A subcommand: the parsed command line and the arguments left over in, the exit code out.
Runner = Callable[["argparse.Namespace", Sequence[str]], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cc-collect`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    previous = _terminate_as_interrupt()
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate_as_interrupt() -> Any:
    """SIGTERM (a scheduler stopping the job) raises KeyboardInterrupt until the command's
    own handlers take over, so a stop while it starts is 130 and one line, like Ctrl-C,
    not a silent 143. Returns the handler it replaced (None off the main thread)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: signals are not ours to handle
        return None


def _main(argv: Sequence[str] | None) -> int:
    try:
        from .args import ParseError, UsageError, build_parser

        args = list(sys.argv[1:] if argv is None else argv)
        parser = build_parser()
        try:
            namespace, extra = parser.parse_known_args(args)
            if extra and namespace.command != "sim":
                parser.error(f"unrecognized arguments: {_unrecognized(extra)}")
        except SystemExit as exc:  # argparse: 0 after --help/--version
            return _exit_status(exc)
        except ParseError as exc:
            return _usage_error(str(exc), _wants_json_logs(args))
        try:
            return _runners()[namespace.command](namespace, extra)
        except UsageError as exc:
            json = getattr(namespace, "log_format", "text") == "json"
            return _usage_error(f"cc-collect: error: {exc}", json)
    except KeyboardInterrupt:
        # Before the harvest's own handler is installed (start-up), or in lives/call.
        print("\ncc-collect: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


def _unrecognized(extra: Sequence[str]) -> str:
    """The unrecognized arguments, their values left out: a mistyped ``--api_key KEY`` must
    not print the key to a terminal, a cron mail or a CI log."""
    shown = [word.partition("=")[0] + ("=..." if "=" in word else "") for word in extra]
    names = [word for word in shown if word.startswith("-")]
    values = len(shown) - len(names)
    more = f" ({values} value{'s' if values > 1 else ''} not shown)" if values else ""
    return (" ".join(names) or "values") + more


def _runners() -> dict[str, Runner]:
    """Each subcommand's runner; a new subcommand adds its parser in ``args.build_parser``
    and its runner here."""
    from .args import call_options, demo_options, harvest_options, lives_options
    from .commands import run_call, run_harvest, run_lives, run_sim
    from .console import configure_logging
    from .demo import run_demo

    def harvest(ns: argparse.Namespace, extra: Sequence[str]) -> int:
        options = harvest_options(ns, os.environ)
        configure_logging(ns.verbose, sys.stderr)
        return run_harvest(options)

    def lives(ns: argparse.Namespace, extra: Sequence[str]) -> int:
        options = lives_options(ns, os.environ)
        configure_logging(ns.verbose, sys.stderr)
        return _stdout_closed_ok(lambda: run_lives(options))

    def call(ns: argparse.Namespace, extra: Sequence[str]) -> int:
        options = call_options(ns, os.environ)
        configure_logging(ns.verbose, sys.stderr)
        return run_call(options)

    def demo(ns: argparse.Namespace, extra: Sequence[str]) -> int:
        options = demo_options(ns)
        configure_logging(ns.verbose, sys.stderr)
        return run_demo(options)

    def sync(ns: argparse.Namespace, extra: Sequence[str]) -> int:
        from .sync import run_sync, sync_options

        options = sync_options(ns, os.environ)
        configure_logging(ns.verbose, sys.stderr)
        return run_sync(options)

    def sim(ns: argparse.Namespace, extra: Sequence[str]) -> int:
        try:
            return run_sim(extra)
        except SystemExit as exc:  # the simulator's own argparse
            return _exit_status(exc)

    return {
        "harvest": harvest,
        "sync": sync,
        "lives": lives,
        "call": call,
        "demo": demo,
        "sim": sim,
    }


def _wants_json_logs(args: Sequence[str]) -> bool:
    """``--log-format json`` on a command line argparse refused."""
    pairs = zip(args, [*args[1:], ""], strict=True)
    return "--log-format=json" in args or ("--log-format", "json") in pairs


def _usage_error(line: str, json: bool) -> int:
    """Print a usage error, a JSON event and the ``finished`` one under --log-format json
    (a log shipper reads every stderr line as JSON)."""
    if not json:
        print(line, file=sys.stderr)
        return ExitCode.USAGE
    from . import json_logs

    events = json_logs.install(sys.stderr, 0)
    events.event(logging.ERROR, line.removeprefix("cc-collect: "))
    events.event(logging.INFO, "finished", exit_code=int(ExitCode.USAGE))
    return ExitCode.USAGE


def _exit_status(exc: SystemExit) -> int:
    return int(exc.code) if isinstance(exc.code, int) else ExitCode.USAGE


def _stdout_closed_ok(run: Callable[[], int]) -> int:
    """``cc-collect lives | head``: a reader that stops early is not an error."""
    try:
        return run()
    except BrokenPipeError:
        # Point stdout at nothing so the interpreter's final flush does not complain.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK
