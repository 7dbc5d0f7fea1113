"""Choosing the HTTP engine under httpx: httpcore's pool, or aiohttp's.

httpx's own pool (httpcore 1.0) assigns requests to connections in time that grows with the
square of the pool, which takes most of the CPU past ~30 requests in flight; aiohttp's pool
does not (DESIGN.md, performance notes; ``benchmarks/`` measures both). aiohttp is plugged in
as an httpx transport, so everything above it (signing, retries, classification, tests with
``MockTransport``) stays the same. aiohttp runs on asyncio only, so the choice is made on the
first request, when the running event loop is known: under trio the httpcore pool is used.

The request path may also skip httpx's client layer for the aiohttp engine of a client this
library built itself (:meth:`AiohttpTransport.fetch`): building and parsing an
``httpx.Request`` and ``httpx.Response`` around each aiohttp exchange, plus the client's
cookie, auth and redirect machinery, cost as much CPU as aiohttp itself, which at 128
requests in flight was the difference between reaching the latency bound and not
(``benchmarks/``). The reply is read the same way either way.

Why not the ``httpx-aiohttp`` package: it hands aiohttp the URL as text, and aiohttp (yarl)
re-quotes it, turning the signed ``%27 %28 %29 %2A %21`` back into ``' ( ) * !``. The server
then checks the hash against a query we did not sign. This adapter passes the URL as
already encoded, byte for byte.
"""

from __future__ import annotations

import asyncio
import importlib.util
import zlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import httpx
import sniffio

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "AiohttpTransport",
    "HttpBackend",
    "Reply",
    "SelectingTransport",
    "aiohttp_available",
]

#: ``"auto"``: aiohttp when ``cc_collect_async[fast]`` is installed and the loop is asyncio.
HttpBackend = Literal["auto", "httpx", "aiohttp"]


def aiohttp_available() -> bool:
    """Whether the optional aiohttp transport (the ``fast`` extra) is installed."""
    return importlib.util.find_spec("aiohttp") is not None


# Headers aiohttp writes itself from the URL and body; sending httpx's copies would double them.
_SELF_MANAGED_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})
#: What :meth:`AiohttpTransport.fetch` accepts and decodes itself (httpx may offer more).
DIRECT_ACCEPT_ENCODING = "gzip, deflate"


class Reply:
    """A reply as the request path reads it: the status, the headers (``get`` is
    case-insensitive) and the decoded body. ``httpx.Response`` has the same three."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def __repr__(self) -> str:
        return f"Reply(status_code={self.status_code}, {len(self.content)} bytes)"


def _decoded(body: bytes, encoding: str | None) -> bytes:
    """The body without its content coding (what httpx's decoders do, for gzip and deflate)."""
    coding = (encoding or "").strip().lower()
    if coding in ("", "identity"):
        return body
    try:
        if coding in ("gzip", "x-gzip"):
            return zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(body)
        if coding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:  # raw deflate, as some servers send it
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise httpx.DecodingError(f"cannot decode {coding} body: {exc}") from None
    raise httpx.DecodingError(f"unsupported content encoding {coding!r}")


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one ``aiohttp.ClientSession`` (asyncio only).

    The body is read whole here (collect replies are single JSON documents), and aiohttp's
    errors become the httpx errors they correspond to, so the request path classifies them
    exactly as it does for httpcore.
    """

    def __init__(self, *, limits: httpx.Limits) -> None:
        self._limit = limits.max_connections or 100
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def _client_timeout(self, connect: Any, pool: Any, read: Any) -> aiohttp.ClientTimeout:
        key = (connect, pool, read)
        timeout = self._timeouts.get(key)
        if timeout is None:
            import aiohttp

            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, connect=pool, sock_connect=connect, sock_read=read
            )
        return timeout

    async def _exchange(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]],
        content: bytes | None,
        timeout: aiohttp.ClientTimeout,
        request: httpx.Request | None,
    ) -> tuple[int, Any, Any, bytes]:
        """One aiohttp request: status, raw headers, headers, raw body; httpx errors."""
        import aiohttp
        import yarl

        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        try:
            async with self._session.request(
                method,
                yarl.URL(url, encoded=True),
                headers=[(k, v) for k, v in headers if k.lower() not in _SELF_MANAGED_HEADERS],
                data=content or None,
                allow_redirects=False,
                timeout=timeout,
            ) as reply:
                body = await reply.read()
                return reply.status, reply.raw_headers, reply.headers, body
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.NetworkError(f"{type(exc).__name__}: {exc}", request=request) from exc

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        status, raw_headers, _, body = await self._exchange(
            request.method,
            str(request.url),
            request.headers.items(),
            request.content,
            self._client_timeout(
                timeouts.get("connect"), timeouts.get("pool"), timeouts.get("read")
            ),
            request,
        )
        return httpx.Response(status, headers=list(raw_headers), content=body, request=request)

    async def fetch(
        self,
        method: str,
        url: str,
        *,
        headers: Iterable[tuple[str, str]],
        content: bytes | None,
        timeout: httpx.Timeout,
    ) -> Reply:
        """Send one request straight through aiohttp and return the decoded :class:`Reply`.

        ``url`` is sent exactly as given (already encoded); ``headers`` should offer at most
        :data:`DIRECT_ACCEPT_ENCODING`. Errors are the httpx errors ``handle_async_request``
        raises, so the caller classifies both paths alike.
        """
        status, _, reply_headers, body = await self._exchange(
            method,
            url,
            headers,
            content,
            self._client_timeout(timeout.connect, timeout.pool, timeout.read),
            None,
        )
        return Reply(status, reply_headers, _decoded(body, reply_headers.get("Content-Encoding")))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class SelectingTransport(httpx.AsyncBaseTransport):
    """Delegates to the engine ``backend`` names, built lazily on the first request."""

    def __init__(self, *, backend: HttpBackend, limits: httpx.Limits) -> None:
        if backend not in ("auto", "httpx", "aiohttp"):
            raise ValueError(f"http_backend must be auto, httpx or aiohttp, not {backend!r}")
        if backend == "aiohttp" and not aiohttp_available():
            raise ValueError(
                "http_backend='aiohttp' needs the fast extra: pip install 'cc_collect_async[fast]'"
            )
        self.backend = backend
        self._limits = limits
        self._inner: httpx.AsyncBaseTransport | None = None

    @property
    def engine(self) -> str | None:
        """``"aiohttp"`` or ``"httpx"`` once the first request chose; None before."""
        if self._inner is None:
            return None
        return "httpx" if isinstance(self._inner, httpx.AsyncHTTPTransport) else "aiohttp"

    def resolve(self) -> httpx.AsyncBaseTransport:
        """The engine, chosen now if no request has chosen it yet (needs a running loop)."""
        if self._inner is None:
            self._inner = self._choose()
        return self._inner

    def _choose(self) -> httpx.AsyncBaseTransport:
        on_asyncio = sniffio.current_async_library() == "asyncio"
        if self.backend == "aiohttp" and not on_asyncio:
            raise RuntimeError("the aiohttp backend runs on asyncio only; use http_backend='auto'")
        if self.backend != "httpx" and on_asyncio and aiohttp_available():
            return AiohttpTransport(limits=self._limits)
        return httpx.AsyncHTTPTransport(limits=self._limits, http1=True, http2=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.resolve().handle_async_request(request)

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()
