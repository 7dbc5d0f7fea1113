"""How a command runs: on which event loop, with which client."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from .. import CollectClient
from .args import DEFAULT_CONCURRENCY, Credentials
from .exits import ExitCode

__all__ = ["client", "run_async", "uvloop_available"]


def run_async(func: Callable[..., Awaitable[ExitCode]], *args: object) -> ExitCode:
    """Run a command's coroutine on asyncio, on uvloop's event loop when it is installed
    (the ``fast`` extra): it spends less CPU per request, which is what keeps 128 requests
    in flight at the pace of the server's latency on a small machine (benchmarks/)."""
    return anyio.run(
        func, *args, backend="asyncio", backend_options={"use_uvloop": uvloop_available()}
    )


def uvloop_available() -> bool:
    return sys.platform != "win32" and importlib.util.find_spec("uvloop") is not None


def client(
    credentials: Credentials, timeout: float | None, concurrency: int | None = None
) -> CollectClient:
    """The client a command talks through: its credentials, ``--timeout`` and
    ``--concurrency`` (the pool's size)."""
    options: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    return CollectClient(
        credentials.userid,
        credentials.api_key,
        base_url=credentials.base_url,
        max_concurrency=concurrency or DEFAULT_CONCURRENCY,
        **options,
    )
