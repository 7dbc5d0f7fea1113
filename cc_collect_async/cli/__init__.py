"""``cc-collect``: the command line over the harvest API (argument parsing, progress display
and exit codes; the work itself is done by :mod:`cc_collect_async.harvest`).

Exit codes: 0 complete, 1 some units failed, 2 usage or configuration error, 3
authentication rejected, 4 output error (unwritable directory, full disk), 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .args import (
    UsageError,
    build_parser,
    call_options,
    demo_options,
    harvest_options,
    lives_options,
)
from .exits import ExitCode

__all__ = ["ExitCode", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cc-collect`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    from .commands import configure_logging, run_call, run_harvest, run_lives, run_sim
    from .demo import run_demo

    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        namespace, extra = parser.parse_known_args(args)
        if extra and namespace.command != "sim":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # argparse: 2 for a usage error, 0 after --help/--version
        return int(exc.code) if isinstance(exc.code, int) else ExitCode.USAGE
    try:
        if namespace.command == "sim":
            try:
                return run_sim(extra)
            except SystemExit as exc:
                return int(exc.code) if isinstance(exc.code, int) else ExitCode.USAGE
        configure_logging(getattr(namespace, "verbose", 0), sys.stderr)
        if namespace.command == "harvest":
            return run_harvest(harvest_options(namespace, os.environ))
        if namespace.command == "lives":
            return _stdout_closed_ok(run_lives, lives_options(namespace, os.environ))
        if namespace.command == "call":
            return run_call(call_options(namespace, os.environ))
        if namespace.command == "demo":
            return run_demo(demo_options(namespace))
        raise AssertionError(f"unhandled command {namespace.command}")
    except UsageError as exc:
        print(f"cc-collect: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        # Only before the harvest's own handler is installed, or in lives/call.
        print("\ncc-collect: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


def _stdout_closed_ok(run: object, options: object) -> int:
    """``cc-collect lives | head``: a reader that stops early is not an error."""
    assert callable(run)
    try:
        code: int = run(options)
    except BrokenPipeError:
        # Point stdout at nothing so the interpreter's final flush does not complain.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK
    return code
