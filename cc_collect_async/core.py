"""The one request path: sign, send, classify, retry.

Every call of every endpoint goes through :meth:`Requester.call`. It validates the
parameters against the endpoint's row, waits for the rate limiters, signs the request afresh
for each attempt (the server rejects a stale ``time``), sends it through one shared
``httpx.AsyncClient``, and turns the reply into the envelope dict or a typed
:class:`~cc_collect_async.errors.CollectError`. Nothing else in the library talks to httpx.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import anyio
import attrs
import httpx
from anyio.lowlevel import checkpoint_if_cancelled

from . import thqs
from .endpoints import Endpoint
from .errors import (
    AuthError,
    CollectError,
    DecodeError,
    InvalidRequestError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from .ratelimit import RateLimiter
from .retry import RetryPolicy
from .transport import (
    DIRECT_ACCEPT_ENCODING,
    AiohttpTransport,
    HttpBackend,
    SelectingTransport,
)

try:  # orjson decodes a 20 KB page in less than half the time of json (DESIGN.md)
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - exercised where orjson is absent
    _loads = json.loads

__all__ = ["DEFAULT_BASE_URL", "ApiKey", "CallStats", "Requester", "classify_reply"]

DEFAULT_BASE_URL = "https://ccapi.csslcloud.net"
USER_AGENT = "cc_collect_async/0.1"

logger = logging.getLogger("cc_collect_async")


class ApiKey:
    """The account's API key, kept out of every repr, str, log line and error."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value.strip():
            raise ValueError("the API key is empty")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "ApiKey('***')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("an ApiKey is not pickled, so it cannot leak into a file")


@attrs.define
class CallStats:
    """Running counters of one requester, read by progress displays and reports."""

    calls: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    failures: int = 0

    def snapshot(self) -> CallStats:
        return attrs.evolve(self)


# Substrings of the vendor's FAIL messages, most specific first. The collect API documents no
# codes; these are the ones the vendor's sibling APIs and the simulator use.
_RATE_LIMIT_MARKERS = ("too_many_request", "too many request", "访问过于频繁", "rate limit")
_SERVER_MARKERS = ("process_fail", "系统繁忙", "server error", "internal error", "服务器")
_AUTH_MARKERS = (
    "auth_fail",
    "hash",
    "signature",
    "签名",
    "验证",
    "unknown userid",
    "用户不存在",
    "账号",
)
_PARAM_MARKERS = ("param", "参数", "missing", "invalid")


def _fail_error(message: str) -> type[CollectError]:
    text = message.lower()
    if text.startswith("param_error"):
        return InvalidRequestError
    for markers, cls in (
        (_RATE_LIMIT_MARKERS, RateLimitedError),
        (_SERVER_MARKERS, ServerError),
        (_AUTH_MARKERS, AuthError),
        (_PARAM_MARKERS, InvalidRequestError),
    ):
        if any(m in text for m in markers):
            return cls
    return InvalidRequestError


class ReplyLike(Protocol):
    """What classification reads from a reply: an ``httpx.Response`` or a direct
    :class:`~cc_collect_async.transport.Reply`."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...


def _retry_after(response: ReplyLike) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # "nan" parses as a float but is no wait at all; fall back to the backoff.
        return None if math.isnan(seconds) else max(seconds, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def classify_reply(
    endpoint: Endpoint, response: ReplyLike, params: Mapping[str, object]
) -> dict[str, Any]:
    """Return the OK envelope of ``response`` or raise the typed error it amounts to."""
    status = response.status_code
    where: dict[str, Any] = {"endpoint": endpoint.name, "status": status, "params": params}
    if status == 429:
        raise RateLimitedError(
            "the server says the account calls too fast",
            retry_after=_retry_after(response),
            **where,
        )
    if status >= 500:
        raise ServerError(f"server error HTTP {status}", **where)
    if status in (401, 403):
        raise AuthError("the server rejected the credentials", **where)
    if status >= 400:
        raise InvalidRequestError(f"the server refused the request (HTTP {status})", **where)
    try:
        envelope = _loads(response.content)
    except ValueError as exc:
        raise DecodeError(
            f"reply is not complete JSON ({len(response.content)} bytes): {exc}", **where
        ) from None
    if not isinstance(envelope, dict) or "result" not in envelope:
        raise DecodeError("reply is not a collect envelope", **where)
    if envelope["result"] == "OK":
        return envelope
    message = str(
        envelope.get("error_msg") or envelope.get("errorMsg") or envelope.get("error") or ""
    )
    # Rollcall puts a code in "error" and prose in "errorMsg"; the prose may match no known
    # wording (PROCESS_FAIL with "系统异常"), so classify on the code and the prose together.
    code = str(envelope.get("error") or "")
    cls = _fail_error(f"{code} {message}" if code and code != message else message)
    raise cls(
        f"the server answered FAIL: {message or 'no reason given'}", vendor_message=message, **where
    )


Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


def _envelope(envelope: dict[str, Any]) -> dict[str, Any]:
    return envelope


class Requester:
    """Signs, sends, classifies and retries; shared by every endpoint coroutine.

    ``max_concurrency`` caps requests in flight. It is also the size of the connection pool
    this requester builds, so httpcore's pool queue stays empty: its request assignment costs
    time growing with the square of the queue (DESIGN.md, performance notes).
    """

    def __init__(
        self,
        *,
        userid: str,
        api_key: ApiKey,
        http: httpx.AsyncClient,
        base_url: str = DEFAULT_BASE_URL,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        endpoint_limiters: Mapping[str, RateLimiter] | None = None,
        max_concurrency: int = 8,
        clock: thqs.Clock = time.time,
        sleep: Sleep = anyio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.userid = userid
        self._api_key = api_key
        self._http = http
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.rate_limiter = rate_limiter
        self.endpoint_limiters = dict(endpoint_limiters or {})
        self.max_concurrency = max_concurrency
        self._capacity: anyio.CapacityLimiter | None = None
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self._rand = random.Random()
        self.stats = CallStats()
        self._direct: AiohttpTransport | None = None
        self._direct_headers: list[tuple[str, str]] = []
        self._direct_checked = False

    def __repr__(self) -> str:
        return f"Requester(userid={self.userid!r}, base_url={self.base_url!r})"

    def derive(
        self,
        *,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        endpoint_limiters: Mapping[str, RateLimiter] | None = None,
        max_concurrency: int | None = None,
    ) -> Requester:
        """A requester over the same connection pool and credentials with other limits and
        fresh counters (a harvest uses one so its report counts only its own requests)."""
        return Requester(
            userid=self.userid,
            api_key=self._api_key,
            http=self._http,
            base_url=self.base_url,
            retry=retry or self.retry,
            rate_limiter=rate_limiter if rate_limiter is not None else self.rate_limiter,
            endpoint_limiters=(
                endpoint_limiters if endpoint_limiters is not None else self.endpoint_limiters
            ),
            max_concurrency=max_concurrency or self.max_concurrency,
            clock=self._clock,
            sleep=self._sleep,
            monotonic=self._monotonic,
        )

    def _direct_engine(self) -> AiohttpTransport | None:
        """The aiohttp engine of a client we built, which requests may use directly.

        Only for a client made by :func:`build_http_client`: nobody else holds it, so it has
        no hooks, auth or cookies that skipping its layers would bypass. The same headers
        and timeouts are sent either way.
        """
        if not self._direct_checked:
            self._direct_checked = True
            http = self._http
            if isinstance(http, _OwnHttpClient) and http.engine is not None:
                engine = http.engine.resolve()
                if isinstance(engine, AiohttpTransport):
                    self._direct = engine
                    self._direct_headers = [
                        (k, DIRECT_ACCEPT_ENCODING if k.lower() == "accept-encoding" else v)
                        for k, v in http.headers.items()
                    ]
        return self._direct

    def _limiters(self, endpoint: Endpoint) -> Sequence[RateLimiter]:
        found = [self.rate_limiter] if self.rate_limiter is not None else []
        own = self.endpoint_limiters.get(endpoint.name)
        return [*found, own] if own is not None else found

    async def call(
        self,
        endpoint: Endpoint,
        params: Mapping[str, object],
        *,
        method: str | None = None,
    ) -> dict[str, Any]:
        """Call ``endpoint`` with ``params``; return the OK envelope or raise CollectError."""
        return await self.request(endpoint, params, method=method, read=_envelope)

    async def request(
        self,
        endpoint: Endpoint,
        params: Mapping[str, object],
        *,
        read: Callable[[dict[str, Any]], T],
        method: str | None = None,
    ) -> T:
        """Call ``endpoint`` and return ``read(envelope)``.

        ``read`` runs inside the retry loop: an OK envelope that ``read`` finds garbled (a
        page without its pagination fields) is retried like a truncated body, never passed on.
        """
        wire = endpoint.prepare(self.userid, params)
        self.stats.calls += 1
        limiters = self._limiters(endpoint)
        started = self._monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                envelope = await self._attempt(endpoint, wire, method or endpoint.method, limiters)
                try:
                    result = read(envelope)
                except DecodeError as exc:
                    raise DecodeError(
                        exc.message, endpoint=endpoint.name, status=200, params=wire
                    ) from None
            except CollectError as exc:
                exc.attempts = attempt
                if isinstance(exc, RateLimitedError):
                    self.stats.rate_limited += 1
                    for limiter in limiters:
                        limiter.on_rate_limited(exc.retry_after)
                delay = self.retry.delay(attempt, exc.retry_after, rand=self._rand)
                out_of_time = self._monotonic() - started + delay > self.retry.max_elapsed
                if not exc.retryable or attempt >= self.retry.max_attempts or out_of_time:
                    self.stats.failures += 1
                    logger.warning("%s failed after %d attempt(s): %s", endpoint.name, attempt, exc)
                    raise
                self.stats.retries += 1
                logger.info(
                    "%s attempt %d failed (%s); retrying in %.2fs",
                    endpoint.name,
                    attempt,
                    exc,
                    delay,
                )
                await self._sleep(delay)
                continue
            for limiter in limiters:
                limiter.on_success()
            return result

    async def _attempt(
        self,
        endpoint: Endpoint,
        wire: Mapping[str, str | int],
        method: str,
        limiters: Sequence[RateLimiter],
    ) -> dict[str, Any]:
        for limiter in limiters:
            await limiter.acquire()
        # Signed per attempt: a retry must carry a fresh time or the server calls it stale.
        query = thqs.sign(wire, self._api_key.reveal(), clock=self._clock)
        url = f"{self.base_url}{endpoint.path}?{query}"
        body = (
            json.dumps(wire, ensure_ascii=False).encode()
            if method == "POST" and endpoint.json_body
            else None
        )
        headers = {"Content-Type": "application/json"} if body is not None else None
        direct = self._direct_engine()
        if self._capacity is None:
            self._capacity = anyio.CapacityLimiter(self.max_concurrency)
        where: dict[str, Any] = {"endpoint": endpoint.name, "params": wire}
        async with self._capacity:
            # A slot handed over just as the caller was cancelled (another unit hit an auth
            # error, say) must not turn into one more request: anyio delivers that
            # cancellation only at the next pass through the event loop.
            await checkpoint_if_cancelled()
            self.stats.requests += 1
            logger.debug("%s %s %s", method, endpoint.path, wire)
            try:
                response: ReplyLike
                if direct is not None:
                    response = await direct.fetch(
                        method,
                        url,
                        headers=[*self._direct_headers, *(headers or {}).items()],
                        content=body,
                        timeout=self._http.timeout,
                    )
                else:
                    response = await self._http.request(method, url, content=body, headers=headers)
            except httpx.TimeoutException as exc:
                raise TransportError(f"timed out: {type(exc).__name__}", **where) from None
            except httpx.DecodingError as exc:
                raise DecodeError(f"undecodable reply: {exc}", **where) from None
            except httpx.HTTPError as exc:
                raise TransportError(f"{type(exc).__name__}: {exc}", **where) from None
        return classify_reply(endpoint, response, wire)


class _OwnHttpClient(httpx.AsyncClient):
    """The client :func:`build_http_client` makes; ``engine`` selects its engine (None
    when the caller supplied the transport)."""

    def __init__(self, *, engine: SelectingTransport | None, **options: Any) -> None:
        super().__init__(**options)
        self.engine = engine


def build_http_client(
    *,
    max_connections: int,
    timeout: float,
    transport: httpx.AsyncBaseTransport | None = None,
    backend: HttpBackend = "auto",
) -> httpx.AsyncClient:
    """The shared HTTP/1.1 client: pool as large as the concurrency cap, pool timeout as
    long as the read timeout, so queueing happens in front of httpx, not inside it.
    Without an explicit ``transport`` the engine is chosen by ``backend``."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    engine = None if transport is not None else SelectingTransport(backend=backend, limits=limits)
    return _OwnHttpClient(
        engine=engine,
        transport=transport or engine,
        limits=limits,
        timeout=httpx.Timeout(timeout, pool=timeout),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
    )
