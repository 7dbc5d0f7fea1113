"""`CollectClient`: one typed coroutine per collect endpoint, over the one request path."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import date, datetime
from types import TracebackType
from typing import Any, Literal, TypeVar

import anyio
import httpx

from . import models
from .converter import structure
from .core import DEFAULT_BASE_URL, ApiKey, Requester, Sleep, build_http_client
from .endpoints import RawPage, endpoint
from .errors import DecodeError
from .pagination import Paginated
from .ratelimit import RateLimiter
from .retry import RetryPolicy
from .thqs import Clock
from .transport import HttpBackend

__all__ = ["CollectClient", "check_base_url"]

T = TypeVar("T")
When = date | datetime | str


def check_base_url(url: str) -> str:
    """``url`` without its trailing slash, or ``ValueError`` saying what is wrong with it.

    A base URL with no host, a port out of range or broken brackets would otherwise fail
    on every attempt, six retries later, with a transport error.
    """
    text = url.strip()
    try:
        parsed = httpx.URL(text)
        port = parsed.port  # httpx checks the range when it parses
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"base URL {text!r} is malformed ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"base URL {text!r} must start with http:// or https://")
    if not parsed.host:
        raise ValueError(f"base URL {text!r} has no host")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"base URL {text!r} has a port out of range")
    if parsed.query or parsed.fragment:
        raise ValueError(f"base URL {text!r} must not carry a query or fragment")
    return text.rstrip("/")


class CollectClient:
    """Async client of the CC collect statistics API.

    Use it as an async context manager (or call :meth:`aclose`). One client shares one
    connection pool; pass your own ``http_client`` (never closed by us) or ``transport``
    (for tests: ``httpx.MockTransport``, ``httpx.ASGITransport``) to control the wire.
    ``http_backend`` picks the engine otherwise: ``"auto"`` (the default) uses aiohttp under
    asyncio when the ``fast`` extra is installed, which keeps its speed at high concurrency,
    and httpx's own pool elsewhere.

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
        timeout: float = 30.0,
        max_concurrency: int = 8,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        endpoint_limiters: Mapping[str, RateLimiter] | None = None,
        clock: Clock = time.time,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if not userid.strip():
            raise ValueError("userid is empty")
        base_url = check_base_url(base_url)
        self._owns_http = http_client is None
        http = http_client or build_http_client(
            max_connections=max_concurrency,
            timeout=timeout,
            transport=transport,
            backend=http_backend,
        )
        self.requester = Requester(
            userid=userid,
            api_key=ApiKey(api_key),
            http=http,
            base_url=base_url,
            retry=retry,
            rate_limiter=rate_limiter,
            endpoint_limiters=endpoint_limiters,
            max_concurrency=max_concurrency,
            clock=clock,
            sleep=sleep,
        )
        self._http = http

    def with_options(
        self,
        *,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        endpoint_limiters: Mapping[str, RateLimiter] | None = None,
        max_concurrency: int | None = None,
    ) -> CollectClient:
        """A client sharing this one's connection pool with other limits and fresh counters.

        Closing the derived client does not close the pool; close the original.
        """
        clone = object.__new__(CollectClient)
        clone._owns_http = False
        clone._http = self._http
        clone.requester = self.requester.derive(
            retry=retry,
            rate_limiter=rate_limiter,
            endpoint_limiters=endpoint_limiters,
            max_concurrency=max_concurrency,
        )
        return clone

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

    def __repr__(self) -> str:
        return f"CollectClient(userid={self.userid!r}, base_url={self.requester.base_url!r})"

    async def __aenter__(self) -> CollectClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # -- generic access, used by the typed wrappers below and by the harvest ------------------

    async def call(
        self, name: str, *, method: str | None = None, **params: object
    ) -> dict[str, Any]:
        """Call endpoint ``name`` and return its OK envelope as received."""
        return await self.requester.call(endpoint(name), params, method=method)

    async def fetch_records(self, name: str, **params: object) -> list[dict[str, Any]]:
        """The wire records of a list endpoint (``data`` of the envelope)."""
        envelope = await self.requester.call(endpoint(name), params)
        data = envelope.get("data")
        if data is None:
            return []
        if not isinstance(data, list):
            raise DecodeError("reply data is not a list", endpoint=name)
        return data

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
        ep = endpoint(name)
        assert ep.paging is not None, f"{name} is not paginated"
        paging = ep.paging
        params = {**params, paging.page_param: page, paging.length_param: length}
        return await self.requester.request(
            ep, params, method=method, read=lambda envelope: paging.read(envelope, name)
        )

    def paginate(
        self,
        name: str,
        *,
        page: int = 1,
        length: int | None = None,
        method: str | None = None,
        **params: object,
    ) -> Paginated[Any]:
        """A :class:`Paginated` over endpoint ``name`` from ``page`` on."""
        ep = endpoint(name)
        if ep.paging is None:
            raise ValueError(f"{name} is not paginated")

        async def fetch(number: int, size: int) -> RawPage:
            return await self.fetch_page(name, number, size, method=method, **params)

        # An explicit 0 must reach validation (and be refused), not become the default.
        size = length if length is not None else ep.paging.max_length or 100
        return Paginated(fetch, ep.model, page=page, length=size)

    async def _one(self, name: str, model: type[T], **params: object) -> T:
        envelope = await self.requester.call(endpoint(name), params)
        data = envelope.get("data")
        if not isinstance(data, dict):
            raise DecodeError("reply data is not an object", endpoint=name)
        return structure(data, model)

    async def _many(self, name: str, model: type[T], **params: object) -> list[T]:
        return [structure(item, model) for item in await self.fetch_records(name, **params)]

    # -- the 13 endpoints --------------------------------------------------------------------

    async def max_parallel(
        self,
        liveid: str | None = None,
        *,
        start_date: date | str | None = None,
        end_date: date | str | None = None,
    ) -> models.MaxParallel:
        """Peak concurrent viewers of live ``liveid``, or of the account between two days."""
        return await self._one(
            "max_parallel",
            models.MaxParallel,
            liveid=liveid,
            start_time=start_date,
            end_time=end_date,
        )

    async def user_count(self, liveid: str) -> models.LiveUserCount:
        """Cumulative viewers of a live."""
        return await self._one("user_count", models.LiveUserCount, liveid=liveid)

    async def duration(self, liveid: str) -> models.LiveDuration:
        """Actual duration of a live (hours) and its start and end."""
        return await self._one("duration", models.LiveDuration, liveid=liveid)

    async def access_records(
        self, roomid: str, liveid: str, *, viewerid: str | None = None
    ) -> list[models.AccessRecord]:
        """Every enter/exit record of a live (one reply holds them all)."""
        return await self._many(
            "access", models.AccessRecord, roomid=roomid, liveid=liveid, viewerid=viewerid
        )

    async def chat_records(self, roomid: str, liveid: str) -> list[models.ChatRecord]:
        """Every chat message of a live (one reply holds them all)."""
        return await self._many("chat", models.ChatRecord, roomid=roomid, liveid=liveid)

    def lives(
        self,
        start_time: When,
        end_time: When,
        *,
        roomid: str | None = None,
        page: int = 1,
        page_length: int = 100,
    ) -> Paginated[models.LiveRecord]:
        """The account's lives that started between ``start_time`` and ``end_time``."""
        return self.paginate(
            "lives",
            page=page,
            length=page_length,
            start_time=start_time,
            end_time=end_time,
            roomid=roomid,
        )

    def brainstorm_records(
        self, roomid: str, *, liveid: str | None = None, page: int = 1, page_length: int = 100
    ) -> Paginated[models.BrainstormRecord]:
        """Brainstorms of a live, or of the whole room when ``liveid`` is None."""
        return self.paginate(
            "brainstorm", page=page, length=page_length, roomid=roomid, liveid=liveid
        )

    def vote_records(
        self, roomid: str, *, liveid: str | None = None, page: int = 1, page_length: int = 100
    ) -> Paginated[models.VoteRecord]:
        """Votes of a live, or of the whole room when ``liveid`` is None."""
        return self.paginate("vote", page=page, length=page_length, roomid=roomid, liveid=liveid)

    def answercard_records(
        self, roomid: str, *, liveid: str | None = None, page: int = 1, page_length: int = 100
    ) -> Paginated[models.AnswerCardRecord]:
        """Answer cards of a live, or of the whole room when ``liveid`` is None."""
        return self.paginate(
            "answercard", page=page, length=page_length, roomid=roomid, liveid=liveid
        )

    def reward_records(
        self, roomid: str, liveid: str, *, page: int = 1, page_length: int = 100
    ) -> Paginated[models.RewardRecord]:
        """Rewards handed out in a live."""
        return self.paginate("reward", page=page, length=page_length, roomid=roomid, liveid=liveid)

    async def summary(self, roomid: str, liveid: str) -> models.LiveSummary:
        """Summary of a live (``/collect/live/gather``)."""
        return await self._one("summary", models.LiveSummary, roomid=roomid, liveid=liveid)

    async def client_info(
        self, roomid: str, *, viewerid: str | None = None
    ) -> list[models.ClientInfo]:
        """Device reports of a room's web viewers."""
        return await self._many("client_info", models.ClientInfo, roomid=roomid, viewerid=viewerid)

    def rollcall_records(
        self,
        liveid: str,
        *,
        page: int = 1,
        page_num: int = 500,
        method: Literal["POST", "GET"] = "POST",
    ) -> Paginated[models.RollcallRecord]:
        """Roll-call answers of a live. POST with a JSON body by default, as the seed says;
        ``method="GET"`` for the vendor's later documentation."""
        return self.paginate("rollcall", page=page, length=page_num, method=method, live_id=liveid)
