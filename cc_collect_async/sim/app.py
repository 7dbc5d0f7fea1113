"""The simulator itself: a raw ASGI application that answers like the vendor's collect API.

It parses ``scope["query_string"]`` itself, with its own route table, so a mistake in the
client's endpoint table or signing is caught here rather than mirrored. The one piece of the
package it shares is :mod:`cc_collect_async.thqs`, the published signing scheme.

A request goes: route -> (latency) -> parse -> authenticate (THQS) -> (stall) -> rate limit
-> fault draw -> handler. Auth and parameter failures are HTTP 200 FAIL envelopes, as the vendor
sends them; only an unknown path is a 404 and only a rate limit a 429.
"""

from __future__ import annotations

import hmac
import math
import random
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qsl, unquote_plus

import anyio
import attrs
import httpx

from cc_collect_async import json_codec
from cc_collect_async.thqs import signature

from .behaviour import (
    AccountBuckets,
    FaultInjector,
    SimConfig,
    SimStats,
    Staller,
    normalise_path,
    retry_after_seconds,
)
from .data import TIME_FORMAT, Dataset, DatasetSpec, Record, Truth

__all__ = ["Simulator"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON: Final = (b"content-type", b"application/json; charset=utf-8")
_HTML: Final = (b"content-type", b"text/html; charset=utf-8")
_DEFAULT_PAGE_LENGTH: Final = 20
_HTTP_FAULTS: Final = {"http500": 500, "http502": 502, "http503": 503}
_REASONS: Final = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


_dumps = json_codec.dumps


class _ConnectionDropped(Exception):
    """Raised mid-reply so the server aborts the connection: the "drop" fault.

    Over uvicorn the half-sent reply (Content-Length promises more) plus the closed socket is
    what a client sees when a load balancer dies; in-process, :meth:`Simulator.transport`
    turns it into :class:`httpx.RemoteProtocolError`.
    """


class _Fail(Exception):
    """A FAIL reply: ``code`` is the vendor-style error code, ``reason`` the human part."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason

    @property
    def message(self) -> str:
        return f"{self.code}: {self.reason}"


def _param_error(reason: str) -> _Fail:
    return _Fail("PARAM_ERROR", reason)


def _auth_error(reason: str) -> _Fail:
    return _Fail("AUTH_FAIL", reason)


def _wire_text(value: object) -> str:
    # How a JSON body value reads as a query value (the signing module's bool rule).
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


@attrs.frozen
class _Call:
    """One parsed, authenticated request."""

    route: _Route
    method: str
    params: dict[str, str]
    account: str
    body: bytes
    content_type: str

    def optional(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if value else None

    def required(self, name: str) -> str:
        value = self.params.get(name)
        if not value:
            raise _param_error(f"missing parameter {name}")
        return value

    def positive_int(self, name: str, default: int | None = None) -> int:
        text = self.params.get(name)
        if not text:
            if default is None:
                raise _param_error(f"missing parameter {name}")
            return default
        if not text.isascii() or not text.isdigit() or int(text) < 1:
            raise _param_error(f"{name} must be a positive integer, got {text!r}")
        return int(text)

    def timestamp(self, name: str) -> datetime:
        text = self.required(name)
        for layout in ("%Y-%m-%d %H:%M", TIME_FORMAT):
            try:
                return datetime.strptime(text, layout)
            except ValueError:
                continue
        raise _param_error(f"{name} must be YYYY-MM-DD HH:MM, got {text!r}")

    def day(self, name: str) -> datetime:
        text = self.required(name)
        try:
            return datetime.strptime(text, "%Y-%m-%d")
        except ValueError:
            raise _param_error(f"{name} must be YYYY-MM-DD, got {text!r}") from None

    @property
    def request_key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """What makes two requests "the same" for the per-request fault cap."""
        return (self.route.path, tuple(sorted(self.params.items())))


Handler = Callable[["Simulator", _Call], dict[str, Any]]


@attrs.frozen
class _Route:
    path: str
    handler: Handler
    account_param: str = "userid"
    rollcall: bool = False


def _ok(data: object, **extra: object) -> dict[str, Any]:
    return {"result": "OK", "data": data, "error_msg": "", **extra}


def _fail_envelope(rollcall: bool, code: str, message: str) -> dict[str, Any]:
    if rollcall:
        return {"result": "FAIL", "error": code, "data": None, "errorMsg": message}
    return {"result": "FAIL", "data": None, "error_msg": message}


class Simulator:
    """The vendor's collect API over a deterministic :class:`Dataset`, as an ASGI app.

    ``await sim(scope, receive, send)`` serves a request; :meth:`transport` plugs it into an
    ``httpx.AsyncClient`` in-process; :func:`~cc_collect_async.sim.serve` puts it on TCP.
    """

    def __init__(
        self,
        dataset: Dataset | DatasetSpec | None = None,
        config: SimConfig | None = None,
    ) -> None:
        if dataset is None or isinstance(dataset, DatasetSpec):
            dataset = Dataset(dataset)
        self.dataset: Dataset = dataset
        self.config: SimConfig = config if config is not None else SimConfig()
        self.stats = SimStats()
        # The event loop's clock: the monotonic clock over TCP, and a virtual one when a test
        # runs client and simulator on virtual time.
        self._limiter = AccountBuckets(
            self.config.rate, self.config.burst, self.config.path_rates, anyio.current_time
        )
        self._staller = Staller(self.config)
        self._faults = FaultInjector(
            self.config.fault_rate,
            self.config.fault_kinds,
            self.config.max_faults_per_request,
            self.config.fault_seed,
        )
        self._latency_rng = random.Random(f"{self.config.fault_seed}/latency")
        self._limit_rng = random.Random(f"{self.config.fault_seed}/rate-limit")

    def __repr__(self) -> str:
        return f"Simulator({self.dataset!r}, {self.config!r})"

    def reset_stats(self) -> None:
        """Zero the counters (the data set, buckets and fault memory are left alone)."""
        self.stats = SimStats()

    def reset_behaviour(self) -> None:
        """Refill every rate-limit bucket, forget which requests already met faults and which
        lives already stalled the server."""
        self._limiter.reset()
        self._faults.reset()
        self._staller.reset()

    def transport(self) -> httpx.AsyncBaseTransport:
        """An in-process transport for ``httpx.AsyncClient(transport=...)``."""
        return _SimTransport(self)

    def truth(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        roomids: Collection[str] | None = None,
    ) -> Truth:
        """Shortcut for ``self.dataset.truth(...)``."""
        return self.dataset.truth(start, end, roomids)

    # --- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = normalise_path(scope["path"])
        method: str = scope["method"]
        if path == "/_sim" or path.startswith("/_sim/"):
            await self._control(path, scope, send)
            return
        stats = self.stats
        stats.requests += 1
        route = _ROUTES.get(path)
        if route is None:
            stats.not_found += 1
            missing = _fail_envelope(False, "NOT_FOUND", f"NOT_FOUND: no such path {scope['path']}")
            await _send_json(send, 404, missing)
            return
        stats.count_path(route.path)
        if method not in ("GET", "POST"):
            stats.param_failed += 1
            message = f"METHOD_NOT_ALLOWED: {method} (use GET or POST)"
            reply = _fail_envelope(route.rollcall, "METHOD_NOT_ALLOWED", message)
            await _send_json(send, 405, reply, [(b"allow", b"GET, POST")])
            return
        body = await _read_body(receive) if method == "POST" else b""
        config = self.config
        if config.latency or config.jitter:
            await anyio.sleep(config.latency + self._latency_rng.uniform(0.0, config.jitter))

        try:
            call = self._authenticate(route, scope, method, body)
        except _Fail as fail:
            if fail.code == "AUTH_FAIL":
                stats.auth_failed += 1
            else:
                stats.param_failed += 1
            await _send_json(send, 200, _fail_envelope(route.rollcall, fail.code, fail.message))
            return

        if self._staller.active:
            stall = self._staller.draw(call.params.get("liveid") or call.params.get("live_id"))
            if stall:
                stats.stalls += 1
                stats.stalled += stall
                # Blocks the whole event loop on purpose: the requests arriving meanwhile
                # wait in the socket buffers and then reach the rate check together.
                config.block(stall)
        wait = self._limiter.acquire(call.account, path)
        stats.count_arrival(anyio.current_time(), refused=wait > 0.0)
        if wait > 0.0:
            stats.rate_limited += 1
            reply = _fail_envelope(route.rollcall, "TOO_MANY_REQUEST", "TOO_MANY_REQUEST")
            if self._limit_rng.random() < config.rate_limit_fail_fraction:
                await _send_json(send, 200, reply)
            else:
                advertised = config.retry_after if config.retry_after is not None else wait
                retry_after = str(retry_after_seconds(advertised)).encode()
                await _send_json(send, 429, reply, [(b"retry-after", retry_after)])
            return

        fault = self._faults.draw(call.request_key)
        if fault is not None:
            stats.count_fault(fault)
            if fault in _HTTP_FAULTS:
                await _send_html_error(send, _HTTP_FAULTS[fault])
                return
            if fault == "process_fail":
                reply = _fail_envelope(route.rollcall, "PROCESS_FAIL", "PROCESS_FAIL")
                await _send_json(send, 200, reply)
                return
            if fault == "slow":
                await anyio.sleep(config.slow_seconds)

        try:
            reply = route.handler(self, call)
        except _Fail as fail:
            stats.param_failed += 1
            reply = _fail_envelope(route.rollcall, fail.code, fail.message)
        else:
            if fault not in ("drop", "truncate"):
                stats.ok += 1
        payload = _dumps(reply)

        if fault == "truncate":
            # A correct Content-Length for a body that is cut: only the JSON decoder notices.
            await _send_bytes(send, 200, payload[: len(payload) // 2], _JSON)
        elif fault == "drop":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [_JSON, (b"content-length", str(len(payload)).encode())],
                }
            )
            await send(
                {
                    "type": "http.response.body",
                    "body": payload[: len(payload) // 2],
                    "more_body": True,
                }
            )
            raise _ConnectionDropped("simulated dropped connection")
        else:
            await _send_bytes(send, 200, payload, _JSON)

    # --- parsing and THQS -----------------------------------------------------------------

    def _authenticate(self, route: _Route, scope: Scope, method: str, body: bytes) -> _Call:
        content_type = _header(scope, b"content-type")
        raw: bytes = scope.get("query_string", b"")
        if (
            not raw
            and method == "POST"
            and content_type.startswith("application/x-www-form-urlencoded")
        ):
            # A form POST carries the signed string in the body instead of the URL.
            raw = body
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise _param_error("malformed query string (not percent-encoded)") from None

        params: dict[str, str] = {}
        signed: list[str] = []
        stamp: str | None = None
        digest: str | None = None
        for segment in text.split("&"):
            if not segment:
                continue
            raw_key, _, raw_value = segment.partition("=")
            try:
                key = unquote_plus(raw_key, errors="strict")
                value = unquote_plus(raw_value, errors="strict")
            except UnicodeDecodeError:
                raise _param_error(f"malformed query string near {segment[:40]!r}") from None
            if key == "time":
                stamp = value
            elif key == "hash":
                digest = value
            elif key in params:
                raise _param_error(f"duplicate parameter {key}")
            else:
                params[key] = value
                # The hash covers the query exactly as sent, minus time and hash.
                signed.append(segment)

        if not stamp or not digest:
            raise _auth_error("missing time or hash")
        account = params.get(route.account_param)
        accounts = self.config.accounts
        if not account or account not in accounts:
            raise _auth_error(f"unknown userid {account!r} ({route.account_param})")
        if not stamp.isascii() or not stamp.isdigit():
            raise _auth_error(f"missing time or hash (time must be Unix seconds, got {stamp!r})")
        now = self.config.clock()
        if abs(now - int(stamp)) > self.config.skew_seconds:
            raise _auth_error(
                f"time outside the allowed window (request {stamp}, server {int(now)}, "
                f"allowed skew {self.config.skew_seconds:g} s)"
            )
        expected = signature("&".join(signed), int(stamp), accounts[account])
        if not hmac.compare_digest(expected.encode(), digest.encode()):
            raise _auth_error("signature mismatch")
        return _Call(
            route=route,
            method=method,
            params=params,
            account=account,
            body=body,
            content_type=content_type,
        )

    # --- control routes (never used by the client) ----------------------------------------

    async def _control(self, path: str, scope: Scope, send: Send) -> None:
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if path == "/_sim/stats":
            await _send_json(send, 200, self.stats.as_dict())
        elif path == "/_sim/reset":
            self.reset_stats()
            self.reset_behaviour()
            await _send_json(send, 200, {"reset": True})
        elif path == "/_sim/truth":
            try:
                start = _control_time(query.get("start"))
                end = _control_time(query.get("end"))
            except ValueError as exc:
                await _send_json(send, 400, {"error": str(exc)})
                return
            rooms = query.get("roomid")
            roomids = [room for room in rooms.split(",") if room] if rooms else None
            truth = self.dataset.truth(start, end, roomids)
            await _send_json(send, 200, truth.to_json())
        else:
            await _send_json(send, 404, {"error": f"no control route {path}"})


def _control_time(text: str | None) -> datetime | None:
    if not text:
        return None
    for layout in ("%Y-%m-%d %H:%M", TIME_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.strptime(text, layout)
        except ValueError:
            continue
    raise ValueError(f"bad time {text!r}: use YYYY-MM-DD HH:MM")


# --- sending ------------------------------------------------------------------------------


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            decoded: str = value.decode("latin-1").lower()
            return decoded
    return ""


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: tuple[bytes, bytes],
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [content_type, (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(
    send: Send,
    status: int,
    payload: object,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await _send_bytes(send, status, _dumps(payload), _JSON, extra)


async def _send_html_error(send: Send, status: int) -> None:
    # What a proxy in front of the vendor sends: HTML, not JSON, so clients must not decode.
    title = f"{status} {_REASONS[status]}"
    body = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    await _send_bytes(send, status, body.encode(), _HTML)


# --- endpoint handlers --------------------------------------------------------------------


def _live_of_account(sim: Simulator, liveid: str, name: str = "liveid") -> str:
    if sim.dataset.live(liveid) is None:
        raise _param_error(f"{name} {liveid} is not a live of this account")
    return liveid


def _room_of_account(sim: Simulator, roomid: str) -> str:
    if not sim.dataset.has_room(roomid):
        raise _param_error(f"roomid {roomid} is not a room of this account")
    return roomid


def _live_in_room(sim: Simulator, call: _Call) -> tuple[str, str]:
    roomid = _room_of_account(sim, call.required("roomid"))
    liveid = _live_of_account(sim, call.required("liveid"))
    live = sim.dataset.live(liveid)
    if live is None or live.roomid != roomid:
        raise _param_error(f"liveid {liveid} does not belong to roomid {roomid}")
    return roomid, liveid


def _page(
    sim: Simulator,
    call: _Call,
    total: int,
    fetch: Callable[[int, int], list[Record]],
) -> dict[str, Any]:
    page = call.positive_int("page_size", 1)
    requested = call.positive_int("page_length", _DEFAULT_PAGE_LENGTH)
    length = min(requested, sim.config.max_page_length)
    offset = (page - 1) * length
    items = fetch(offset, length) if offset < total else []
    page_count = math.ceil(total / length) if total else 0
    return _ok(items, page_size=page, page_length=length, page_count=page_count)


def _max_parallel(sim: Simulator, call: _Call) -> dict[str, Any]:
    liveid = call.optional("liveid")
    if liveid is not None:
        peak, when = sim.dataset.peak(_live_of_account(sim, liveid))
    else:
        first = call.day("start_time")
        last = call.day("end_time")
        if last < first:
            raise _param_error("end_time must not be before start_time")
        # Whole days, both ends included.
        lives = sim.dataset.lives(first, last + timedelta(days=1))
        peak, when = 0, None
        for live in lives:
            live_peak, live_when = sim.dataset.peak(live.liveid)
            if live_peak > peak:
                peak, when = live_peak, live_when
    stamp = when.strftime(TIME_FORMAT) if when is not None else None
    return _ok({"max_parallel": peak, "time": stamp})


def _usercount(sim: Simulator, call: _Call) -> dict[str, Any]:
    liveid = _live_of_account(sim, call.required("liveid"))
    return _ok({"livecount": sim.dataset.viewer_count(liveid)})


def _duration(sim: Simulator, call: _Call) -> dict[str, Any]:
    live = sim.dataset.live(_live_of_account(sim, call.required("liveid")))
    assert live is not None
    hours = (live.end_time - live.start_time).total_seconds() / 3600
    return _ok(
        {
            "duration": round(hours, 2),
            # The vendor's sample has this trailing space; keep it.
            "start_time": live.start_time.strftime(TIME_FORMAT) + " ",
            "end_time": live.end_time.strftime(TIME_FORMAT),
        }
    )


def _access(sim: Simulator, call: _Call) -> dict[str, Any]:
    roomid, liveid = _live_in_room(sim, call)
    records = sim.dataset.records(liveid, "access")
    viewerid = call.optional("viewerid")
    if viewerid is not None:
        records = [record for record in records if record["viewerid"] == viewerid]
    return _ok(records, roomid=roomid, liveid=liveid)


def _chat(sim: Simulator, call: _Call) -> dict[str, Any]:
    roomid, liveid = _live_in_room(sim, call)
    return _ok(sim.dataset.records(liveid, "chat"), roomid=roomid, liveid=liveid)


def _live_record(sim: Simulator, call: _Call) -> dict[str, Any]:
    start = call.timestamp("start_time")
    end = call.timestamp("end_time")
    if end <= start:
        raise _param_error("end_time must be later than start_time")
    roomid = call.optional("roomid")
    roomids = None if roomid is None else [_room_of_account(sim, roomid)]
    lives = sim.dataset.lives(start, end, roomids)
    return _page(
        sim,
        call,
        len(lives),
        lambda offset, limit: [
            live.to_wire(call.account) for live in lives[offset : offset + limit]
        ],
    )


def _room_kind(kind: str) -> Handler:
    """vote/answercard/brainstorm: one live when ``liveid`` is given, else the whole room."""

    def handler(sim: Simulator, call: _Call) -> dict[str, Any]:
        if call.optional("liveid") is not None:
            _roomid, liveid = _live_in_room(sim, call)
            liveids = [liveid]
        else:
            roomid = _room_of_account(sim, call.required("roomid"))
            liveids = [live.liveid for live in sim.dataset.room_lives(roomid)]
        total = sum(sim.dataset.count(liveid, kind) for liveid in liveids)
        return _page(
            sim,
            call,
            total,
            lambda offset, limit: sim.dataset.slice(liveids, kind, offset, limit),
        )

    handler.__name__ = f"_{kind}"
    return handler


def _reward(sim: Simulator, call: _Call) -> dict[str, Any]:
    _roomid, liveid = _live_in_room(sim, call)
    records = sim.dataset.records(liveid, "reward")
    return _page(sim, call, len(records), lambda offset, limit: records[offset : offset + limit])


def _gather(sim: Simulator, call: _Call) -> dict[str, Any]:
    _roomid, liveid = _live_in_room(sim, call)
    return _ok(sim.dataset.gather(liveid))


def _client_info(sim: Simulator, call: _Call) -> dict[str, Any]:
    roomid = _room_of_account(sim, call.required("roomid"))
    return _ok(sim.dataset.client_info(roomid, call.optional("viewerid")))


def _rollcall(sim: Simulator, call: _Call) -> dict[str, Any]:
    if call.body.strip() and ("json" in call.content_type or call.body.lstrip().startswith(b"{")):
        _check_json_body(call)
    liveid = _live_of_account(sim, call.required("live_id"), "live_id")
    index = call.positive_int("page_index")
    text = call.required("page_num")
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 500:
        raise _param_error(f"page_num must be 1..500, got {text!r}")
    size = min(int(text), sim.config.max_rollcall_page_num)
    records = sim.dataset.records(liveid, "rollcall")
    offset = (index - 1) * size
    page = records[offset : offset + size]
    return {
        "result": "OK",
        "error": None,
        "data": {"total": len(records), "size": size, "current": index, "data": page},
        "errorMsg": "",
    }


def _check_json_body(call: _Call) -> None:
    # The signed query is the authority; a JSON body that says something else is a client
    # bug worth failing loudly on rather than silently picking one of the two.
    try:
        document = json_codec.loads(call.body)
    except ValueError:
        raise _param_error("malformed JSON body") from None
    if not isinstance(document, dict):
        raise _param_error("JSON body must be an object")
    for key, value in document.items():
        if key in ("time", "hash"):
            continue
        if value is None and key not in call.params:
            continue
        if call.params.get(key) != _wire_text(value):
            raise _param_error(f"JSON body disagrees with the signed query on {key}")


_ROUTE_LIST: Final = (
    _Route("/collect/max_parallel/", _max_parallel),
    _Route("/collect/live/usercount/", _usercount),
    _Route("/collect/live/duration/", _duration),
    _Route("/collect/live/user/record/", _access),
    _Route("/collect/live/chat/record/", _chat),
    _Route("/collect/live/record", _live_record),
    _Route("/collect/brainstom/record", _room_kind("brainstorm")),
    _Route("/collect/vote/record", _room_kind("vote")),
    _Route("/collect/answercard/record", _room_kind("answercard")),
    _Route("/collect/reward/record", _reward),
    _Route("/collect/live/gather", _gather),
    _Route("/collect/room/client/info", _client_info),
    _Route("/openapi/collect/rollcall/get", _rollcall, account_param="account_id", rollcall=True),
)
_ROUTES: Final = {normalise_path(route.path): route for route in _ROUTE_LIST}
VENDOR_PATHS: Final = tuple(route.path for route in _ROUTE_LIST)
"""The 13 paths exactly as the vendor spells them."""


class _SimTransport(httpx.AsyncBaseTransport):
    """``httpx.ASGITransport`` plus the one thing it cannot do: drop a connection."""

    def __init__(self, app: Simulator) -> None:
        self._inner = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except _ConnectionDropped as exc:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body", request=request
            ) from exc

    async def aclose(self) -> None:
        await self._inner.aclose()
