"""A web backend that shows a live's figures without exhausting the vendor's rate limit.

Run it with the simulator (``cc-collect sim`` prints the URL and test credentials)::

    export CC_USERID=... CC_API_KEY=... CC_BASE_URL=http://127.0.0.1:PORT
    uvicorn fastapi_app:app --app-dir examples

One :class:`CollectClient` per process, made in the lifespan (building one costs an SSL
context and a pool; sharing it shares its connections, its rate limiter and its cache).
The cache merges concurrent page views of the same live into one vendor call and keeps the
figures of ended lives; the interactive retry policy gives up within seconds, after which
the cache serves its last value if it has one. Prometheus metrics are at ``/metrics``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
from fastapi import FastAPI, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from cc_collect_async import (
    CollectClient,
    CollectError,
    InvalidRequestError,
    ResponseCache,
    RetryPolicy,
)
from cc_collect_async.metrics.prometheus import PrometheusInstrumentation


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    registry = CollectorRegistry()
    client = CollectClient.from_env(
        cache=ResponseCache(max_entries=10_000, max_bytes=128 * 1024 * 1024),
        retry=RetryPolicy.interactive(),
        instrumentation=PrometheusInstrumentation(registry),
    )
    async with client:
        app.state.client = client
        app.state.registry = registry
        yield


app = FastAPI(title="CC live figures", lifespan=lifespan)


def _client(request: Request) -> CollectClient:
    client: CollectClient = request.app.state.client
    return client


T = TypeVar("T")


async def _unless_gone(request: Request, work: Callable[[], Awaitable[T]]) -> T:
    """``await work()``, cancelled when the visitor disconnects: a page nobody waits for
    should not hold a request slot. If the call was the one fetching for other visitors of
    the same live, one of them takes over (the cache's single-flight)."""
    result: list[T] = []
    failure: CollectError | None = None
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        try:
            result.append(await work())
        except CollectError as exc:  # raised after the group, not wrapped in a group
            failure = exc
        tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if not result:  # the visitor left: nobody reads this
        raise HTTPException(status_code=499, detail="client closed request")
    return result[0]


def _http_error(exc: CollectError) -> HTTPException:
    # The vendor's message can name parameters; it never holds the API key.
    if isinstance(exc, InvalidRequestError):
        return HTTPException(status_code=404, detail=exc.message)
    return HTTPException(status_code=503, detail="the statistics service is unavailable")


@app.get("/lives/{roomid}/{liveid}/summary")
async def live_summary(
    roomid: str, liveid: str, request: Request, refresh: bool = False
) -> dict[str, Any]:
    """A live's audience: viewers in total, per platform and per region."""
    client = _client(request)
    try:
        summary = await _unless_gone(
            request,
            lambda: client.summary(roomid, liveid, cache="refresh" if refresh else True),
        )
    except CollectError as exc:
        raise _http_error(exc) from None
    return {
        "roomid": roomid,
        "liveid": liveid,
        "usercount": summary.usercount,
        "platforms": {
            getattr(code, "name", str(code)).lower(): count
            for code, count in summary.by_platform().items()
        },
        "locations": dict(summary.locations),
    }


@app.get("/lives/{liveid}/duration")
async def live_duration(liveid: str, request: Request) -> dict[str, Any]:
    """When a live started and ended. Also tells the cache that the live is over, so its
    other figures are kept for long."""
    try:
        duration = await _unless_gone(request, lambda: _client(request).duration(liveid))
    except CollectError as exc:
        raise _http_error(exc) from None
    return {
        "liveid": liveid,
        "hours": duration.duration,
        "start_time": duration.start_time.isoformat() if duration.start_time else None,
        "end_time": duration.end_time.isoformat() if duration.end_time else None,
    }


@app.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
