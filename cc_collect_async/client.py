"""`CollectClient`: one typed coroutine per collect endpoint, over the one request path."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

import anyio

from . import models
from .cache import CacheUse, ResponseCache
from .converter import structure
from .core import DEFAULT_BASE_URL, ApiKey, CallStats, Reader, Requester, Sleep
from .endpoints import Endpoint, PageStyle, RawPage, endpoint, read_object, read_records
from .errors import CollectError
from .governor import Governor
from .instrumentation import Instrumentation, as_instrumentation
from .pagination import Page, Paginated, typed_page
from .ratelimit import RateLimiter
from .retry import RetryPolicy
from .thqs import Clock
from .transport import HttpBackend, Sender

if TYPE_CHECKING:  # imported by the httpx engine, when a process uses it
    import httpx

__all__ = ["CollectClient", "check_base_url"]

T = TypeVar("T")
When = date | datetime | str

#: Seconds one attempt may take in all (connect, send, the whole reply): room for a chat
#: reply of tens of megabytes on a slow link, and still a few retries within the retry
#: policy's two minutes when a server trickles bytes.
DEFAULT_TIMEOUT = 60.0


def check_base_url(url: str) -> str:
    """``url`` without its trailing slash, or ``ValueError`` saying what is wrong with it.

    A base URL with no host, a port out of range or broken brackets would otherwise fail
    on every attempt, six retries later, with a transport error.
    """
    text = url.strip()
    try:
        if any(char <= " " or char == "\x7f" for char in text):
            raise ValueError("a space or control character")
        parsed = urlsplit(text)
        host = parsed.hostname  # checks the brackets of an IPv6 address
    except ValueError as exc:
        raise ValueError(f"base URL {text!r} is malformed ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"base URL {text!r} must start with http:// or https://")
    if not host:
        raise ValueError(f"base URL {text!r} has no host")
    try:
        port = parsed.port
    except ValueError:
        port = 0
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"base URL {text!r} has a port out of range (expected 1 to 65535)")
    if parsed.query or parsed.fragment:
        raise ValueError(f"base URL {text!r} must not carry a query or fragment")
    return text.rstrip("/")


def _envelope(envelope: dict[str, Any]) -> dict[str, Any]:
    return envelope


def _paginated(name: str) -> tuple[Endpoint, PageStyle]:
    ep = endpoint(name)
    if ep.paging is None:
        raise ValueError(f"{name} is not paginated")
    return ep, ep.paging


class CollectClient:
    """Async client of the CC collect statistics API.

    Use it as an async context manager (or call :meth:`aclose`). One client shares one
    connection pool; pass your own ``http_client`` (never closed by us) or ``transport``
    (for tests: ``httpx.MockTransport``, ``httpx.ASGITransport``) to control the wire.
    ``http_backend`` picks the engine otherwise: ``"auto"`` (the default) uses aiohttp under
    asyncio when the ``fast`` extra is installed, which keeps its speed at high concurrency,
    and httpx's own pool elsewhere. ``timeout`` bounds each attempt as a whole (connect,
    send and the whole reply); when it runs out the attempt is a retried ``TransportError``.

    Single-object endpoints return a model; list endpoints return a list of models; paginated
    endpoints return a :class:`~cc_collect_async.pagination.Paginated`: ``await`` it for one
    page, ``async for`` over it for every item of every page. Every model keeps its wire dict
    in ``.raw``.
    """

    def __init__(
        self,
        userid: str,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_backend: HttpBackend = "auto",
        timeout: float = DEFAULT_TIMEOUT,
        max_concurrency: int = 8,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | Governor | None = None,
        endpoint_limiters: Mapping[str, RateLimiter] | None = None,
        cache: ResponseCache | None = None,
        instrumentation: Instrumentation | Sequence[Instrumentation] | None = None,
        clock: Clock = time.time,
        sleep: Sleep = anyio.sleep,
        _sender: Sender | None = None,
    ) -> None:
        if not userid.strip():
            raise ValueError("userid is empty")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        base_url = check_base_url(base_url)
        #: Closed by :meth:`aclose` unless it came from the client this one derives from.
        self._owns_sender = _sender is None
        self._sender = _sender or Sender(
            backend=http_backend,
            max_connections=max_concurrency,
            timeout=timeout,
            http_client=http_client,
            transport=transport,
        )
        self._api_key = ApiKey(api_key)
        self.instrumentation = as_instrumentation(instrumentation)
        self.requester = Requester(
            userid=userid,
            api_key=self._api_key,
            sender=self._sender,
            base_url=base_url,
            retry=retry,
            rate_limiter=rate_limiter,
            endpoint_limiters=endpoint_limiters,
            max_concurrency=max_concurrency,
            clock=clock,
            sleep=sleep,
            instrumentation=self.instrumentation,
        )
        self._clock = clock
        self._sleep = sleep
        #: Shared replies of single calls (:class:`~cc_collect_async.cache.ResponseCache`);
        #: None, the default, sends every call.
        self.cache = cache

    def with_options(
        self,
        *,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | Governor | None = None,
        endpoint_limiters: Mapping[str, RateLimiter] | None = None,
        max_concurrency: int | None = None,
        cache: ResponseCache | Literal[False] | None = None,
    ) -> CollectClient:
        """A client sharing this one's connection pool with other limits and fresh counters.

        Closing the derived client does not close the pool; close the original. Built by
        the constructor, so it is a whole client of the same class. The cache and the
        instrumentation are shared, unless ``cache`` names another cache, or is False for
        none.
        """
        requester = self.requester
        return type(self)(
            requester.userid,
            self._api_key.reveal(),
            base_url=self.base_url,
            retry=retry or requester.retry,
            rate_limiter=rate_limiter if rate_limiter is not None else requester.rate_limiter,
            endpoint_limiters=(
                endpoint_limiters if endpoint_limiters is not None else requester.endpoint_limiters
            ),
            max_concurrency=max_concurrency or requester.max_concurrency,
            cache=None if cache is False else cache or self.cache,
            instrumentation=self.instrumentation,
            clock=self._clock,
            sleep=self._sleep,
            _sender=self._sender,
        )

    @classmethod
    def from_env(cls, **options: Any) -> CollectClient:
        """Build a client from ``CC_USERID``, ``CC_API_KEY`` and optional ``CC_BASE_URL``."""
        userid = os.environ.get("CC_USERID", "")
        api_key = os.environ.get("CC_API_KEY", "")
        if not userid or not api_key:
            raise ValueError("set CC_USERID and CC_API_KEY (the account id and its API key)")
        options.setdefault("base_url", os.environ.get("CC_BASE_URL") or DEFAULT_BASE_URL)
        return cls(userid, api_key, **options)

    @property
    def userid(self) -> str:
        return self.requester.userid

    @property
    def base_url(self) -> str:
        """The server's base URL, without a trailing slash."""
        return self.requester.base_url

    @property
    def max_concurrency(self) -> int:
        """Requests in flight at most (also the size of the connection pool)."""
        return self.requester.max_concurrency

    @property
    def stats(self) -> CallStats:
        """Running counts of this client's calls, requests, retries, rate-limit hits and
        failures (a client from :meth:`with_options` counts its own)."""
        return self.requester.stats

    @property
    def engine(self) -> str | None:
        """The HTTP engine, ``"aiohttp"`` or ``"httpx"``; None while ``http_backend="auto"``
        waits for the first request to see the event loop."""
        return self._sender.engine

    @property
    def timeout(self) -> float:
        """Seconds one attempt may take in all: connect, send and the whole reply."""
        return self._sender.timeout

    def __repr__(self) -> str:
        return f"CollectClient(userid={self.userid!r}, base_url={self.base_url!r})"

    async def __aenter__(self) -> CollectClient:
        self._sender.check_event_loop()  # where the mistake is made, not at the first request
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_sender:
            await self._sender.aclose()

    # -- generic access, used by the typed wrappers below and by the harvest ------------------

    async def call(
        self, name: str, *, method: str | None = None, **params: object
    ) -> dict[str, Any]:
        """Call endpoint ``name`` and return its OK envelope as received (with a cache on,
        a copy of its own for each caller)."""
        return await self._request(endpoint(name), params, _envelope, method=method)

    async def fetch_records(self, name: str, **params: object) -> list[dict[str, Any]]:
        """The wire records of a list endpoint (``data`` of the envelope, each an object)."""
        return await self._request(endpoint(name), params, read_records)

    async def fetch_page(
        self,
        name: str,
        page: int,
        length: int,
        *,
        method: str | None = None,
        **params: object,
    ) -> RawPage:
        """One page of a paginated endpoint, as the server reported it."""
        ep, paging = _paginated(name)
        return await self._page(ep, paging, page, length, method, params, paging.read, True)

    def paginate(
        self,
        name: str,
        *,
        page: int = 1,
        length: int | None = None,
        method: str | None = None,
        cache: CacheUse = True,
        **params: object,
    ) -> Paginated[Any]:
        """A :class:`Paginated` over endpoint ``name`` from ``page`` on."""
        ep, paging = _paginated(name)

        def read_typed(envelope: dict[str, Any]) -> Page[Any]:
            return typed_page(paging.read(envelope), ep.model)

        async def fetch(number: int, size: int) -> Page[Any]:
            return await self._page(ep, paging, number, size, method, params, read_typed, cache)

        async def fetch_raw(number: int, size: int) -> RawPage:
            return await self._page(ep, paging, number, size, method, params, paging.read, cache)

        # An explicit 0 must reach validation (and be refused), not become the default.
        size = length if length is not None else paging.max_length or 100
        return Paginated(fetch, fetch_raw, page=page, length=size, endpoint=name)

    async def _request(
        self,
        ep: Endpoint,
        params: Mapping[str, object],
        read: Reader[T],
        *,
        method: str | None = None,
        cache: CacheUse = True,
    ) -> T:
        """``read(envelope)`` of one call, through the cache when there is one.

        The cache sits here, above the request path, so a hit spends no rate-limit token.
        It stores envelopes (one entry serves every reader of the same call); ``read`` still
        runs inside the retry loop on a fetch, so a garbled reply is retried, never stored.
        """
        store = self.cache
        if store is None:
            return await self.requester.request(ep, params, method=method, read=read)
        read_here: list[T] = []

        def checked(envelope: dict[str, Any]) -> dict[str, Any]:
            read_here.append(read(envelope))
            return envelope

        async def fetch() -> dict[str, Any]:
            read_here.clear()
            return await self.requester.request(ep, params, method=method, read=checked)

        wire = ep.prepare(self.userid, params)
        key = store.key(
            self.userid, self.base_url, ep.name, wire, credential=self.requester.credential
        )
        envelope = await store.fetch(key, fetch, use=cache, instrumentation=self.instrumentation)
        # This caller's own fetch has read the envelope already; a shared or stored one is
        # read here, and what it finds garbled is said of this call, made in no attempt.
        if read_here:
            return read_here[-1]
        try:
            return read(envelope)
        except CollectError as exc:
            exc.locate(ep.name, wire, 0)
            raise

    async def _page(
        self,
        ep: Endpoint,
        paging: PageStyle,
        number: int,
        length: int,
        method: str | None,
        params: Mapping[str, object],
        read: Reader[T],
        cache: CacheUse,
    ) -> T:
        params = {**params, paging.page_param: number, paging.length_param: length}
        return await self._request(ep, params, read, method=method, cache=cache)

    async def _one(self, name: str, model: type[T], cache: CacheUse, **params: object) -> T:
        return await self._request(
            endpoint(name),
            params,
            lambda envelope: structure(read_object(envelope), model),
            cache=cache,
        )

    async def _many(self, name: str, model: type[T], cache: CacheUse, **params: object) -> list[T]:
        return await self._request(
            endpoint(name),
            params,
            lambda envelope: [structure(item, model) for item in read_records(envelope)],
            cache=cache,
        )

    # -- the 13 endpoints --------------------------------------------------------------------
    # Each takes ``cache``: True uses the client's cache (if any), "refresh" skips a stored
    # reply and replaces it, False neither reads nor writes it.

    async def max_parallel(
        self,
        liveid: str | None = None,
        *,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
        cache: CacheUse = True,
    ) -> models.MaxParallel:
        """Peak concurrent viewers of live ``liveid``, or of the account between two days."""
        return await self._one(
            "max_parallel",
            models.MaxParallel,
            cache,
            liveid=liveid,
            start_time=start_date,
            end_time=end_date,
        )

    async def user_count(self, liveid: str, *, cache: CacheUse = True) -> models.LiveUserCount:
        """Cumulative viewers of a live."""
        return await self._one("user_count", models.LiveUserCount, cache, liveid=liveid)

    async def duration(self, liveid: str, *, cache: CacheUse = True) -> models.LiveDuration:
        """Actual duration of a live (hours) and its start and end."""
        return await self._one("duration", models.LiveDuration, cache, liveid=liveid)

    async def access_records(
        self, roomid: str, liveid: str, *, viewerid: str | None = None, cache: CacheUse = True
    ) -> list[models.AccessRecord]:
        """Every enter/exit record of a live (one reply holds them all)."""
        return await self._many(
            "access", models.AccessRecord, cache, roomid=roomid, liveid=liveid, viewerid=viewerid
        )

    async def chat_records(
        self, roomid: str, liveid: str, *, cache: CacheUse = True
    ) -> list[models.ChatRecord]:
        """Every chat message of a live (one reply holds them all)."""
        return await self._many("chat", models.ChatRecord, cache, roomid=roomid, liveid=liveid)

    def lives(
        self,
        start_time: When,
        end_time: When,
        *,
        roomid: str | None = None,
        page: int = 1,
        page_length: int = 100,
        cache: CacheUse = True,
    ) -> Paginated[models.LiveRecord]:
        """The account's lives that started between ``start_time`` and ``end_time``."""
        return self.paginate(
            "lives",
            page=page,
            length=page_length,
            cache=cache,
            start_time=start_time,
            end_time=end_time,
            roomid=roomid,
        )

    def brainstorm_records(
        self,
        roomid: str,
        *,
        liveid: str | None = None,
        page: int = 1,
        page_length: int = 100,
        cache: CacheUse = True,
    ) -> Paginated[models.BrainstormRecord]:
        """Brainstorms of a live, or of the whole room when ``liveid`` is None."""
        return self.paginate(
            "brainstorm", page=page, length=page_length, cache=cache, roomid=roomid, liveid=liveid
        )

    def vote_records(
        self,
        roomid: str,
        *,
        liveid: str | None = None,
        page: int = 1,
        page_length: int = 100,
        cache: CacheUse = True,
    ) -> Paginated[models.VoteRecord]:
        """Votes of a live, or of the whole room when ``liveid`` is None."""
        return self.paginate(
            "vote", page=page, length=page_length, cache=cache, roomid=roomid, liveid=liveid
        )

    def answercard_records(
        self,
        roomid: str,
        *,
        liveid: str | None = None,
        page: int = 1,
        page_length: int = 100,
        cache: CacheUse = True,
    ) -> Paginated[models.AnswerCardRecord]:
        """Answer cards of a live, or of the whole room when ``liveid`` is None."""
        return self.paginate(
            "answercard", page=page, length=page_length, cache=cache, roomid=roomid, liveid=liveid
        )

    def reward_records(
        self,
        roomid: str,
        liveid: str,
        *,
        page: int = 1,
        page_length: int = 100,
        cache: CacheUse = True,
    ) -> Paginated[models.RewardRecord]:
        """Rewards handed out in a live."""
        return self.paginate(
            "reward", page=page, length=page_length, cache=cache, roomid=roomid, liveid=liveid
        )

    async def summary(
        self, roomid: str, liveid: str, *, cache: CacheUse = True
    ) -> models.LiveSummary:
        """Summary of a live (``/collect/live/gather``)."""
        return await self._one("summary", models.LiveSummary, cache, roomid=roomid, liveid=liveid)

    async def client_info(
        self, roomid: str, *, viewerid: str | None = None, cache: CacheUse = True
    ) -> list[models.ClientInfo]:
        """Device reports of a room's web viewers."""
        return await self._many(
            "client_info", models.ClientInfo, cache, roomid=roomid, viewerid=viewerid
        )

    def rollcall_records(
        self,
        liveid: str,
        *,
        page: int = 1,
        page_num: int = 500,
        method: Literal["POST", "GET"] = "POST",
        cache: CacheUse = True,
    ) -> Paginated[models.RollcallRecord]:
        """Roll-call answers of a live. POST with a JSON body by default, as the seed says;
        ``method="GET"`` for the vendor's later documentation."""
        return self.paginate(
            "rollcall", page=page, length=page_num, method=method, cache=cache, live_id=liveid
        )
