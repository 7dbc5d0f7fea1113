"""The HTTP engine seam: the request path hands a signed request here and gets bytes back.

An :class:`Engine` does one thing: send a request whose URL is already signed and return
the status, headers and whole body, within a total deadline. Two engines exist:

- :class:`HttpxEngine` over an ``httpx.AsyncClient``: the one this library builds, a user's
  own client, or one around a user's transport (``httpx.MockTransport`` in tests);
- :class:`AiohttpEngine` over one ``aiohttp.ClientSession`` (asyncio only, the ``fast``
  extra).

httpx's own pool (httpcore 1.0) assigns requests to connections in time that grows with the
square of the pool, which takes most of the CPU past ~30 requests in flight; aiohttp's pool
does not, and skipping httpx's Request/Response layer saves as much CPU again
(docs/architecture.md, performance notes; ``benchmarks/`` measures both). :class:`Sender`
picks the engine once, wraps every failure of either into the library's typed errors, and
is all the request path sees: nothing outside this module knows which engine runs.

Why not the ``httpx-aiohttp`` package: it hands aiohttp the URL as text, and aiohttp (yarl)
re-quotes it, turning the signed ``%27 %28 %29 %2A %21`` back into ``' ( ) * !``. The server
then checks the hash against a query we did not sign. :class:`AiohttpEngine` passes the URL
as already encoded, byte for byte.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal, Protocol

import anyio
import sniffio

from .errors import CollectError, DecodeError, TransportError

if TYPE_CHECKING:  # each imported where its engine is built: a process needs only one
    import aiohttp
    import httpx

__all__ = [
    "USER_AGENT",
    "AiohttpEngine",
    "Engine",
    "HttpBackend",
    "HttpxEngine",
    "Reply",
    "ReplyLike",
    "Sender",
    "aiohttp_available",
]

#: ``"auto"``: aiohttp when ``cc_collect_async[fast]`` is installed and the loop is asyncio.
HttpBackend = Literal["auto", "httpx", "aiohttp"]

USER_AGENT = "cc_collect_async/0.1"
#: What :class:`AiohttpEngine` offers and decodes itself.
_ACCEPT_ENCODING = "gzip, deflate"


def aiohttp_available() -> bool:
    """Whether the optional aiohttp engine (the ``fast`` extra) is installed."""
    return importlib.util.find_spec("aiohttp") is not None


class ReplyLike(Protocol):
    """What the request path reads from a reply: an ``httpx.Response`` or a :class:`Reply`."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...


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


Headers = Sequence[tuple[str, str]]


class Engine(Protocol):
    """One HTTP engine: sends a signed request and returns the whole reply.

    ``send`` raises the engine's own exceptions, those in ``failures`` (which include the
    ``TimeoutError`` for ``deadline``, the seconds allowed for connect, send and the whole
    body); :class:`Sender` turns them into typed errors in one place.
    """

    #: ``"httpx"`` or ``"aiohttp"``.
    name: str
    #: The exceptions that mean this exchange failed (and nothing else did).
    failures: tuple[type[BaseException], ...]
    #: Of those, the ones that mean the time ran out, and a body that could not be decoded.
    timeouts: tuple[type[BaseException], ...]
    undecodable: tuple[type[BaseException], ...]

    async def send(
        self, method: str, url: str, headers: Headers, body: bytes | None, deadline: float
    ) -> ReplyLike: ...

    async def aclose(self) -> None: ...


class UndecodableBody(Exception):
    """A body whose content coding could not be undone."""


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
        raise UndecodableBody(f"cannot decode {coding} body: {exc}") from None
    raise UndecodableBody(f"unsupported content encoding {coding!r}")


class _WithoutSignature(logging.Filter):
    """httpx logs every request at INFO, URL and all ("HTTP Request: GET https://...&time=
    ...&hash=..."): its lines lose the signed pair here, as our own messages do."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any("hash=" in str(a) for a in record.args):
            record.args = tuple(
                _SIGNED_PAIR.sub("", str(a)) if "hash=" in str(a) else a for a in record.args
            )
        if isinstance(record.msg, str) and "hash=" in record.msg:
            record.msg = _SIGNED_PAIR.sub("", record.msg)
        return True


_HTTPX_LOG_FILTER = _WithoutSignature()


class HttpxEngine:
    """Requests through an ``httpx.AsyncClient``; closes it only if ``owned``."""

    name = "httpx"

    def __init__(self, client: httpx.AsyncClient, *, owned: bool) -> None:
        import httpx

        httpx_logger = logging.getLogger("httpx")
        if _HTTPX_LOG_FILTER not in httpx_logger.filters:
            httpx_logger.addFilter(_HTTPX_LOG_FILTER)

        self.failures: tuple[type[BaseException], ...] = (
            httpx.HTTPError,
            httpx.InvalidURL,
            TimeoutError,
        )
        self.timeouts: tuple[type[BaseException], ...] = (TimeoutError, httpx.TimeoutException)
        self.undecodable: tuple[type[BaseException], ...] = (httpx.DecodingError,)
        self._client = client
        self._owned = owned

    @classmethod
    def build(
        cls,
        *,
        max_connections: int,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> HttpxEngine:
        """An engine over a client of our own: HTTP/1.1, a pool as large as the concurrency
        cap (so httpcore's pool queue stays empty), ``transport`` if given."""
        import httpx

        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        client = httpx.AsyncClient(
            transport=transport or httpx.AsyncHTTPTransport(limits=limits, http2=False),
            limits=limits,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )
        return cls(client, owned=True)

    async def send(
        self, method: str, url: str, headers: Headers, body: bytes | None, deadline: float
    ) -> ReplyLike:
        # httpx has no total timeout: its read timeout restarts with every byte.
        with anyio.fail_after(deadline):
            return await self._client.request(method, url, content=body, headers=headers)

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()


def require_asyncio() -> None:
    """aiohttp runs on asyncio only: a program on another event loop that asks for it is told
    so, and what to ask for instead."""
    library = sniffio.current_async_library()
    if library != "asyncio":
        raise RuntimeError(
            f"http_backend='aiohttp' runs on asyncio only; under {library} use "
            "http_backend='auto' or 'httpx'"
        )


class AiohttpEngine:
    """Requests through one ``aiohttp.ClientSession`` (asyncio only), made on first use.

    The body is read whole (collect replies are single JSON documents) and its gzip or
    deflate coding undone here, as httpx would.
    """

    name = "aiohttp"

    def __init__(self, *, max_connections: int) -> None:
        import aiohttp

        self.failures: tuple[type[BaseException], ...] = (
            aiohttp.ClientError,
            asyncio.TimeoutError,
            TimeoutError,
            UndecodableBody,
        )
        self.timeouts: tuple[type[BaseException], ...] = (asyncio.TimeoutError, TimeoutError)
        self.undecodable: tuple[type[BaseException], ...] = (UndecodableBody,)
        self._limit = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._client_timeout: aiohttp.ClientTimeout | None = None  # the last one, reused

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        require_asyncio()
        connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": _ACCEPT_ENCODING},
        )
        return self._session

    async def send(
        self, method: str, url: str, headers: Headers, body: bytes | None, deadline: float
    ) -> ReplyLike:
        import aiohttp
        import yarl

        session = self._session or self._open()
        limit = self._client_timeout
        if limit is None or limit.total != deadline:
            # aiohttp's total covers connect, send and reading the whole body.
            limit = self._client_timeout = aiohttp.ClientTimeout(total=deadline)
        async with session.request(
            method,
            yarl.URL(url, encoded=True),  # as signed: no re-quoting
            headers=headers,
            data=body,
            allow_redirects=False,
            timeout=limit,
        ) as reply:
            data = await reply.read()
            return Reply(
                reply.status, reply.headers, _decoded(data, reply.headers.get("Content-Encoding"))
            )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


# A signed pair, however an engine's message spells the URL (quoted or not, in a repr).
_SIGNED_PAIR = re.compile(r"(?i)(?:[?&]|%26)?(?<![a-z])(?:time|hash)(?:=|%3D)[^&%\s'\"<>),]*")


def scrub(text: str, url: str) -> str:
    """``text`` without the signed query of ``url`` (its ``time`` and ``hash``): with them a
    request can be replayed for minutes and the key attacked offline. The parameters are no
    secret but go too; the error carries them apart."""
    _, _, query = url.partition("?")
    if query:
        text = text.replace(f"?{query}", "").replace(query, "")
        digest = query.rpartition("hash=")[2]
        if digest:
            text = text.replace(digest, "***")
    return _SIGNED_PAIR.sub("", text)


def _failure(exc: BaseException, engine: Engine, url: str, timeout: float) -> CollectError:
    """The typed error an engine's exception amounts to; its text never holds the query."""
    if isinstance(exc, engine.timeouts):
        return TransportError(f"no complete reply within {timeout:g} s ({type(exc).__name__})")
    # aiohttp's response errors keep their own text apart from the URL and status.
    message = getattr(exc, "message", None)
    detail = message if isinstance(message, str) and message else str(exc)
    # One line: aiohttp's parser errors draw a caret under the bad bytes over several.
    text = " ".join(word for word in scrub(detail, url).split() if word != "^")
    if isinstance(exc, engine.undecodable):
        return DecodeError(f"undecodable reply: {text}")
    return TransportError(f"{type(exc).__name__}: {text}")


class Sender:
    """The engine seam the request path talks to: one engine, chosen once, and one place
    where its failures become typed errors.

    ``http_client`` (never closed here) or ``transport`` select the httpx engine; otherwise
    ``backend`` does. ``"auto"`` needs the running event loop (aiohttp runs on asyncio only):
    it is read when the sender is built inside one, else on the first request.
    """

    def __init__(
        self,
        *,
        backend: HttpBackend = "auto",
        max_connections: int,
        timeout: float,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if backend not in ("auto", "httpx", "aiohttp"):
            raise ValueError(f"http_backend must be auto, httpx or aiohttp, not {backend!r}")
        if backend == "aiohttp" and not aiohttp_available():
            raise ValueError(
                "http_backend='aiohttp' needs the fast extra: pip install 'cc_collect_async[fast]'"
            )
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.backend = backend
        self.timeout = float(timeout)
        self._max_connections = max_connections
        self._engine: Engine | None = None
        self._closed = False
        if http_client is not None:
            self._engine = HttpxEngine(http_client, owned=False)
        elif transport is not None or backend == "httpx" or not aiohttp_available():
            self._engine = HttpxEngine.build(
                max_connections=max_connections, timeout=self.timeout, transport=transport
            )
        elif backend == "aiohttp":
            self._engine = AiohttpEngine(max_connections=max_connections)
        else:
            try:
                sniffio.current_async_library()
            except sniffio.AsyncLibraryNotFoundError:
                pass  # no loop yet: the first request chooses
            else:
                self._engine = self._choose()

    @property
    def engine(self) -> str | None:
        """``"aiohttp"`` or ``"httpx"``; None while ``"auto"`` waits for its first request."""
        return None if self._engine is None else self._engine.name

    def check_event_loop(self) -> None:
        """Raise now if the engine chosen cannot run on the running event loop (aiohttp
        under trio) rather than at the first request."""
        if isinstance(self._engine, AiohttpEngine):
            require_asyncio()

    def _choose(self) -> Engine:
        if sniffio.current_async_library() == "asyncio":
            return AiohttpEngine(max_connections=self._max_connections)
        return HttpxEngine.build(max_connections=self._max_connections, timeout=self.timeout)

    async def send(
        self,
        method: str,
        url: str,
        headers: Headers = (),
        body: bytes | None = None,
        *,
        deadline: float | None = None,
    ) -> ReplyLike:
        """Send one signed request within ``timeout`` seconds, or ``deadline`` if sooner;
        a failure is a retryable ``TransportError`` (or a ``DecodeError`` for a body that
        cannot be decoded) whose text omits the signature."""
        if self._closed:
            raise _closed()
        engine = self._engine
        if engine is None:
            engine = self._engine = self._choose()
        # Never 0: aiohttp reads a total of 0 as no limit at all.
        limit = self.timeout if deadline is None else max(min(deadline, self.timeout), 0.01)
        try:
            return await engine.send(method, url, headers, body, limit)
        except engine.failures as exc:
            failure = _closed() if self._closed else _failure(exc, engine, url, limit)
        except RuntimeError:  # the engine's own word for its session closed under it
            if not self._closed:
                raise
            failure = _closed()
        # Raised outside the handler, so the engine's exception (whose text may hold the
        # signed URL) is not chained onto it and never printed with a traceback.
        raise failure

    async def aclose(self) -> None:
        self._closed = True
        if self._engine is not None:
            await self._engine.aclose()


def _closed() -> TransportError:
    """A call on a closed client, or in flight when it closed: not worth retrying."""
    error = TransportError(
        "the client is closed (its 'async with' ended, or aclose() was called): make calls "
        "while it is open"
    )
    error.retryable = False
    return error
