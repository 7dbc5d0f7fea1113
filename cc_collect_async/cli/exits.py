"""Exit codes, and finding the error that decides one inside anyio's exception groups."""

from __future__ import annotations

import enum
from typing import TypeVar

__all__ = ["ExitCode", "find_error"]

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
