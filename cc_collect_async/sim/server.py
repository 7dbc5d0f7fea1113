"""Putting the simulator on real TCP: uvicorn in a thread, or in a separate process.

In-process ASGI skips everything between the client and the socket (connection pools,
keep-alive, a half-closed connection, a server that is genuinely busy). :func:`serve` is for
tests that need a real socket; :func:`spawn` is for benchmarks, where the server must not
share the client's interpreter (and its GIL) or the client's numbers would be the server's.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .app import Simulator, _ConnectionDropped
from .behaviour import SimConfig
from .data import DatasetSpec
from .options import to_argv

__all__ = ["serve", "spawn"]

# Longer than any client's keep-alive expiry (httpx: 5 s), so the server is never the side
# that closes an idle connection just as the client reuses it.
_KEEP_ALIVE_SECONDS = 75


class _HideDrops(logging.Filter):
    """uvicorn logs every exception an app raises; a simulated drop is not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = record.exc_info
        return not (info is not None and isinstance(info[1], _ConnectionDropped))


_HIDE_DROPS = _HideDrops()


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - uvicorn is in the dev environment
        raise RuntimeError(
            "serving the simulator over TCP needs uvicorn: pip install 'cc_collect_async[sim]'"
        ) from exc
    return uvicorn


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it every reply waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextmanager
def serve(
    simulator: Simulator,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout: float = 10.0,
) -> Iterator[str]:
    """Serve ``simulator`` with uvicorn on ``host:port`` in a background thread.

    Yields the base URL once the server accepts connections; stops the server and joins the
    thread on exit. ``port=0`` picks a free port (bound before uvicorn starts, so the URL is
    right even before the server has logged anything).
    """
    uvicorn = _uvicorn()
    logging.getLogger("uvicorn.error").addFilter(_HIDE_DROPS)
    sock = _bind(host, port)
    actual_port = sock.getsockname()[1]
    config = uvicorn.Config(
        simulator,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws="none",
        timeout_keep_alive=_KEEP_ALIVE_SECONDS,
        # A "slow" fault in flight must not hold a test's exit for seconds.
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"cc-collect-sim:{actual_port}",
        daemon=True,
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the simulator's server thread exited during startup")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not start within {startup_timeout} s")
            time.sleep(0.005)
        yield _url(host, actual_port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    # Keeps reading after the URL line so the child can never block on a full pipe.
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextmanager
def spawn(
    spec: DatasetSpec | None = None,
    config: SimConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 30.0,
) -> Iterator[str]:
    """Run the simulator in a separate process (``python -m cc_collect_async.sim``).

    Yields the base URL the child printed; terminates the child on exit. Everything in
    ``spec`` and ``config`` crosses over as flags except a custom ``config.clock``.
    """
    argv = [
        sys.executable,
        "-m",
        "cc_collect_async.sim",
        "--host",
        host,
        "--port",
        str(port),
        *to_argv(spec, config),
        *extra_args,
    ]
    env = dict(os.environ)
    # Works from a source checkout as well as from an installed package.
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (_package_root(), env.get("PYTHONPATH", "")) if part
    )
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    pump = threading.Thread(
        target=_pump, args=(process.stdout, lines), name="cc-collect-sim-stdout", daemon=True
    )
    pump.start()
    try:
        deadline = time.monotonic() + startup_timeout
        url = None
        while url is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"the simulator process printed no URL in {startup_timeout} s")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(
                    f"the simulator process exited with {process.wait()} before printing a URL"
                )
            if line.startswith("URL "):
                url = line.split(None, 1)[1].strip()
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        pump.join(timeout=5)
        process.stdout.close()
