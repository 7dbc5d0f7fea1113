"""Shared fixtures of the core suite: both anyio backends, a respx router wired into a real
client, a fake clock and sleep, and an independent verifier of THQS-signed query strings."""

from __future__ import annotations

import asyncio
import hashlib
import selectors
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx
import trio.lowlevel
import trio.testing

from cc_collect_async import CollectClient

BASE_URL = "https://ccapi.csslcloud.net"
USERID = "9DC1A878A164F696"
# Distinctive, so a leak is found by a plain substring search of any text.
API_KEY = "sEcR3t-Key/+=&9f8e7d"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every ``@pytest.mark.anyio`` test runs under asyncio and under trio."""
    return str(request.param)


class _JumpingSelector(selectors.DefaultSelector):
    """Never waits for a timer: when nothing is ready it moves the loop's clock to the next
    timer instead (real I/O that is ready is still reported)."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready or timeout == 0 or self.loop is None:
            return ready
        if timeout is None:  # no timer at all: only I/O (a worker thread) can wake the loop
            return super().select(None)
        self.loop.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on virtual time: whenever every task waits, the clock jumps to the
    next timer, so ``anyio.sleep(60)`` returns at once with ``anyio.current_time()`` 60 s
    later. The asyncio twin of trio's ``MockClock(autojump_threshold=0)``."""

    def __init__(self) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        self.now = 0.0
        # Timers due within this much of the clock run; virtual jumps land exactly on them.
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self.now


def jump(seconds: float) -> None:
    """Move the virtual clock on without running anything: what a blocked event loop (a
    stalled server in the same process) looks like to everyone else."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        trio.lowlevel.current_clock().jump(seconds)  # type: ignore[attr-defined]
        return
    assert isinstance(loop, VirtualTimeLoop)
    loop.now += seconds


def on_virtual_clock(backend: str) -> tuple[str, Mapping[str, Any]]:
    """The anyio backend ``backend`` running on virtual time."""
    if backend == "trio":
        return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}
    return "asyncio", {"loop_factory": VirtualTimeLoop}


@pytest.fixture(params=["asyncio", "trio"])
def virtual_anyio_backend(request: pytest.FixtureRequest) -> tuple[str, Mapping[str, Any]]:
    """Both anyio backends on virtual time; a module opts in with
    ``anyio_backend = virtual_anyio_backend`` style override (see test_governor.py)."""
    return on_virtual_clock(str(request.param))


class FakeTime:
    """Wall clock, monotonic clock and sleep in one: ``sleep`` records the wait and moves both
    clocks forward by it, so retry loops run instantly and their waits can be inspected."""

    def __init__(self, wall: float = 1_700_000_000.0, *, tick: float = 0.0) -> None:
        self.wall = wall
        self.mono = 1000.0
        #: Seconds the wall clock advances on every read (simulates time passing per attempt).
        self.tick = tick
        self.sleeps: list[float] = []
        self.wall_reads = 0

    def clock(self) -> float:
        value = self.wall
        self.wall_reads += 1
        self.wall += self.tick
        return value

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def new_fake_time() -> type[FakeTime]:
    """The :class:`FakeTime` class, for tests that need their own clock settings."""
    return FakeTime


@pytest.fixture
def base_url() -> str:
    return BASE_URL


@pytest.fixture
def userid() -> str:
    return USERID


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def router() -> respx.Router:
    """A respx router for the vendor's base URL; plug it in with :func:`make_client`."""
    return respx.Router(base_url=BASE_URL, assert_all_called=False)


@pytest.fixture
def make_client(router: respx.Router, fake_time: FakeTime) -> Callable[..., CollectClient]:
    """Build a real CollectClient whose wire is the respx ``router`` and whose sleep and clock
    are ``fake_time``. Keyword arguments override the client's options."""

    def build(**options: Any) -> CollectClient:
        options.setdefault("transport", httpx.MockTransport(router.async_handler))
        options.setdefault("sleep", fake_time.sleep)
        options.setdefault("clock", fake_time.clock)
        return CollectClient(USERID, API_KEY, base_url=BASE_URL, **options)

    return build


def check_signed_query(
    raw_query: bytes | str, api_key: str = API_KEY
) -> tuple[dict[str, str], int]:
    """Verify a signed query exactly as the vendor would, without the library's code.

    The query must end with ``time=T&hash=H``; H must be the upper-case MD5 of
    ``rest&time=T&salt=K`` where ``rest`` is everything before ``time`` as sent; the signed
    pairs must be sorted by their (encoded) key. Returns the decoded parameters and T.
    """
    query = raw_query.decode("ascii") if isinstance(raw_query, bytes) else raw_query
    pairs = query.split("&")
    assert len(pairs) >= 2, query
    time_pair, hash_pair = pairs[-2], pairs[-1]
    assert time_pair.startswith("time="), query
    assert hash_pair.startswith("hash="), query
    timestamp = time_pair[len("time=") :]
    assert timestamp.isdigit(), query
    rest = "&".join(pairs[:-2])
    salted = f"{rest}&time={timestamp}&salt={api_key}"
    expected = hashlib.md5(salted.encode("utf-8")).hexdigest().upper()
    assert hash_pair[len("hash=") :] == expected, f"bad signature on {query}"
    keys = [pair.split("=", 1)[0] for pair in pairs[:-2]]
    assert keys == sorted(keys), f"pairs not sorted by key: {keys}"
    params = parse_qsl(rest, keep_blank_values=True, strict_parsing=bool(rest))
    decoded = dict(params)
    assert len(decoded) == len(params), f"duplicate keys in {query}"
    assert "time" not in decoded and "hash" not in decoded
    return decoded, int(timestamp)


@pytest.fixture
def verify_query() -> Callable[..., tuple[dict[str, str], int]]:
    """The independent THQS verifier (see :func:`check_signed_query`)."""
    return check_signed_query


# The PostgreSQL server of the sync tests (started once per session, only when asked for).
from postgres_server import PostgresServer, postgres_server  # noqa: E402, F401


@pytest.fixture(params=["duckdb", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each kind (``duckdb:///`` file or a new PostgreSQL database)."""
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'cc.duckdb'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        yield server.fresh_database()
