"""Ctrl-C and SIGTERM during a harvest: stop fetching, commit what is complete, then exit.

The first signal cancels the harvest's cancel scope; the harvest then closes its sink inside
a shielded scope, which commits every finished unit and writes the manifest. A second
signal means "stop now": the process exits at once, which is safe because every committed
unit is already on disk under its final name (the same state a SIGKILL leaves).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable
from typing import TextIO

import anyio
from anyio.abc import TaskStatus

from .console import say
from .exits import ExitCode

__all__ = ["cancel_on_signal", "run_interruptibly"]


async def run_interruptibly(work: Callable[[], Awaitable[None]], stderr: TextIO) -> bool:
    """Await ``work()`` with SIGINT/SIGTERM handled as :func:`cancel_on_signal` says, each
    signal told on ``stderr``; True when a signal cut it short. Whatever ``work`` raises
    propagates (inside an exception group: it crosses a task group)."""

    def notice(signum: int) -> None:
        name = signal.Signals(signum).name
        say(stderr, f"\ncc-collect: {name}: committing finished units (again to abandon)")

    def abandon() -> None:
        say(stderr, "cc-collect: abandoned; committed units are kept, rerun to finish")

    async with anyio.create_task_group() as watcher:
        work_scope = anyio.CancelScope()
        await watcher.start(cancel_on_signal, work_scope, notice, abandon)
        with work_scope:
            await work()
        watcher.cancel_scope.cancel()
    return work_scope.cancel_called


async def cancel_on_signal(
    scope: anyio.CancelScope,
    notice: Callable[[int], None],
    abandon: Callable[[], None],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Until cancelled: on SIGINT/SIGTERM call ``notice`` and cancel ``scope``; on a second
    signal call ``abandon`` and exit with code 130 immediately.

    Start it with ``await task_group.start(...)`` so the handlers are in place before the
    work begins.
    """
    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                if scope.cancel_called:
                    abandon()
                    os._exit(ExitCode.INTERRUPTED)
                notice(signum)
                scope.cancel()
    except NotImplementedError:  # pragma: no cover - Windows: KeyboardInterrupt still works
        task_status.started()
        await anyio.sleep_forever()
