"""Choosing the HTTP engine under httpx: httpcore's pool, or aiohttp's.

httpx's own pool (httpcore 1.0) assigns requests to connections in time that grows with the
square of the pool, which takes most of the CPU past ~30 requests in flight; aiohttp's pool
does not (DESIGN.md, performance notes; ``benchmarks/`` measures both). aiohttp is plugged in
as an httpx transport, so everything above it (signing, retries, classification, tests with
``MockTransport``) stays the same. aiohttp runs on asyncio only, so the choice is made on the
first request, when the running event loop is known: under trio the httpcore pool is used.

Why not the ``httpx-aiohttp`` package: it hands aiohttp the URL as text, and aiohttp (yarl)
re-quotes it, turning the signed ``%27 %28 %29 %2A %21`` back into ``' ( ) * !``. The server
then checks the hash against a query we did not sign. This adapter passes the URL as
already encoded, byte for byte.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import TYPE_CHECKING, Literal

import httpx
import sniffio

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AiohttpTransport", "HttpBackend", "SelectingTransport", "aiohttp_available"]

#: ``"auto"``: aiohttp when ``cc_collect_async[fast]`` is installed and the loop is asyncio.
HttpBackend = Literal["auto", "httpx", "aiohttp"]


def aiohttp_available() -> bool:
    """Whether the optional aiohttp transport (the ``fast`` extra) is installed."""
    return importlib.util.find_spec("aiohttp") is not None


# Headers aiohttp writes itself from the URL and body; sending httpx's copies would double them.
_SELF_MANAGED_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one ``aiohttp.ClientSession`` (asyncio only).

    The body is read whole here (collect replies are single JSON documents), and aiohttp's
    errors become the httpx errors they correspond to, so the request path classifies them
    exactly as it does for httpcore.
    """

    def __init__(self, *, limits: httpx.Limits) -> None:
        self._limit = limits.max_connections or 100
        self._session: aiohttp.ClientSession | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import aiohttp
        import yarl

        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        timeouts = request.extensions.get("timeout", {})
        headers = [
            (k, v) for k, v in request.headers.items() if k.lower() not in _SELF_MANAGED_HEADERS
        ]
        try:
            async with self._session.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),
                headers=headers,
                data=request.content or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeouts.get("pool"),
                    sock_connect=timeouts.get("connect"),
                    sock_read=timeouts.get("read"),
                ),
            ) as reply:
                body = await reply.read()
                status, raw_headers = reply.status, reply.raw_headers
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.NetworkError(f"{type(exc).__name__}: {exc}", request=request) from exc
        return httpx.Response(status, headers=list(raw_headers), content=body, request=request)

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

    def _choose(self) -> httpx.AsyncBaseTransport:
        on_asyncio = sniffio.current_async_library() == "asyncio"
        if self.backend == "aiohttp" and not on_asyncio:
            raise RuntimeError("the aiohttp backend runs on asyncio only; use http_backend='auto'")
        if self.backend != "httpx" and on_asyncio and aiohttp_available():
            return AiohttpTransport(limits=self._limits)
        return httpx.AsyncHTTPTransport(limits=self._limits, http1=True, http2=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._inner is None:
            self._inner = self._choose()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()
