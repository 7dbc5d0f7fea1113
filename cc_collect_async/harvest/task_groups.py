"""An error that crossed anyio task groups, raised as itself.

anyio wraps whatever a task raises in an exception group, once per task group it crosses. A
caller of ``Harvester.run`` or ``sync`` writes ``except AuthError`` (or ``except
DatabaseError``, or catches what its own sink raised): a group of one error would slip past
it. Several errors at once stay a group.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["sole_error"]


def _sole(exc: BaseException) -> BaseException:
    # Duck-typed: BaseExceptionGroup is a builtin only from Python 3.11 (a backport before).
    while True:
        inner: object = getattr(exc, "exceptions", None)
        if not (isinstance(inner, tuple) and len(inner) == 1):
            return exc
        member = inner[0]
        if not isinstance(member, BaseException):
            return exc
        exc = member


@contextmanager
def sole_error() -> Iterator[None]:
    """Re-raise an exception group holding a single error (however deeply) as that error."""
    try:
        yield
    except BaseException as exc:
        sole = _sole(exc)
        if sole is exc:
            raise
        raise sole from None
