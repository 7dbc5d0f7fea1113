"""Exit codes: what each means, how a harvest's ending picks one, and finding the error that
decides it inside anyio's exception groups."""

from __future__ import annotations

import enum
from typing import NamedTuple, TypeVar

__all__ = ["ExitCode", "HarvestEnd", "find_error", "harvest_exit_code"]

E = TypeVar("E", bound=BaseException)


class ExitCode(enum.IntEnum):
    """What ``cc-collect`` returns; cron and scripts branch on these."""

    OK = 0
    #: Some units failed; they are listed on stderr and in manifest.json. Rerun to retry.
    UNITS_FAILED = 1
    #: A mistake in the command line or the environment; nothing was fetched.
    USAGE = 2
    #: The server rejected the credentials.
    AUTH = 3
    #: The output directory cannot be written (permissions, full disk, in use).
    OUTPUT = 4
    #: SIGINT or SIGTERM; complete units were committed first.
    INTERRUPTED = 130


def find_error(exc: BaseException, kind: type[E]) -> E | None:
    """The first ``kind`` in ``exc``, looking inside (nested) exception groups.

    anyio task groups wrap whatever a task raised, so an error from the sink or the harvest
    reaches the command wrapped once per task group it crossed.
    """
    if isinstance(exc, kind):
        return exc
    # Duck-typed: BaseExceptionGroup is a builtin only from Python 3.11 (a backport before).
    inner: object = getattr(exc, "exceptions", None)
    if isinstance(inner, tuple):
        for member in inner:
            if isinstance(member, BaseException):
                found = find_error(member, kind)
                if found is not None:
                    return found
    return None


# A NamedTuple, not attrs or a dataclass: ``cc-collect`` imports this module before anything
# heavy, so that a Ctrl-C while it starts is already handled (see cli/__init__.py).
class HarvestEnd(NamedTuple):
    """How a harvest ended, in the terms the exit code is decided on."""

    auth_rejected: bool = False
    #: The output directory could not be written (permissions, full disk).
    output_failed: bool = False
    #: SIGINT/SIGTERM, or the harvest was cancelled before it finished.
    interrupted: bool = False
    #: Units (and room listings) that failed after their retries.
    failed_units: int = 0


def harvest_exit_code(end: HarvestEnd) -> ExitCode:
    """The exit code of a harvest that ended as ``end``.

    The condition that asks the most of the person reading it wins: rejected credentials
    make every rerun fail the same way, an output error needs the disk or the directory
    fixed, an interrupted run needs a rerun to finish, failed units a rerun to retry them.
    """
    if end.auth_rejected:
        return ExitCode.AUTH
    if end.output_failed:
        return ExitCode.OUTPUT
    if end.interrupted:
        return ExitCode.INTERRUPTED
    if end.failed_units:
        return ExitCode.UNITS_FAILED
    return ExitCode.OK
