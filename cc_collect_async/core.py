"""The one request path: sign, send, classify, read, retry.

Every call of every endpoint goes through :meth:`Requester.request`. It validates the
parameters against the endpoint's row, waits for the rate limiters, signs the request afresh
for each attempt (the server rejects a stale ``time``), sends it through the
:class:`~cc_collect_async.transport.Sender` (which alone knows the HTTP engine), turns the
reply into the envelope dict or a typed :class:`~cc_collect_async.errors.CollectError`, and
reads the envelope into what the caller asked for. Every step of an attempt sits inside the
retry loop, so every error it raises carries the endpoint and the number of attempts.
"""

from __future__ import annotations

import email.utils
import hmac
import logging
import math
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import attrs
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
)
from .governor import Governor, Permit, RequestGate
from .instrumentation import AttemptEvent, CallEvent, Instrumentation
from .json_codec import dumps, loads
from .ratelimit import RateLimiter
from .retry import RetryPolicy
from .transport import ReplyLike, Sender

__all__ = ["DEFAULT_BASE_URL", "ApiKey", "CallStats", "Requester", "classify_reply"]

DEFAULT_BASE_URL = "https://ccapi.csslcloud.net"

_FINGERPRINT_SALT = os.urandom(32)
logger = logging.getLogger("cc_collect_async")
# A library logs, the application decides where to: without this, Python's last-resort
# handler would print warnings (a unit's failure) on stderr of any program using us.
logger.addHandler(logging.NullHandler())


class ApiKey:
    """The account's API key, kept out of every repr, str, log line and error."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value.strip():
            raise ValueError("the API key is empty")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def fingerprint(self) -> str:
        """Equal for equal keys within this process, and telling nothing about the key: an
        HMAC under a salt drawn when the process started. The response cache keys by it."""
        return hmac.new(_FINGERPRINT_SALT, self._value.encode(), "sha256").hexdigest()[:32]

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


# Substrings of the vendor's FAIL messages, most specific first. The collect API documents no
# codes; these are the ones the vendor's sibling APIs and the simulator use.
# An AuthError stops a whole harvest, so only words about the signature, its time or the
# account mark one: "验证" (verification) also ends "参数验证失败" (parameter validation
# failed), and "用户" is the viewers' word in this API ("该用户没有进出记录").
_RATE_LIMIT_MARKERS = (
    "too_many_request",
    "too many request",
    "rate limit",
    "频繁",  # 访问过于频繁, 请求过于频繁: "called too often"
    "频率",  # 调用频率超限: "call frequency over the limit"
)
_SERVER_MARKERS = (
    "process_fail",
    "系统繁忙",
    "系统异常",
    "系统错误",
    "server error",
    "internal error",
    "服务器",
)
_AUTH_MARKERS = (
    "auth_fail",
    "hash",
    "signature",
    "签名",
    # a stale or skewed time
    "timestamp",
    "expired",
    "过期",
    # the account: "unknown userid", "userid mismatch", "account_id does not match", ...
    # (we always send the account id, so a complaint about it is about the account)
    "userid",
    "user id",
    "account_id",
    "account id",
    "账号",
    "账户",
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


def _error_type(exc: BaseException) -> str:
    """An exception's name as the hooks report it; a cancellation by one name on every
    event loop (asyncio's ``CancelledError``, trio's ``Cancelled``)."""
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return "Cancelled"
    return type(exc).__name__


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


def classify_reply(reply: ReplyLike) -> dict[str, Any]:
    """Return the OK envelope of ``reply`` or raise the typed error it amounts to (without
    the endpoint: the request path adds where it happened)."""
    status = reply.status_code
    if status == 429:
        raise RateLimitedError(
            "the server says the account calls too fast",
            retry_after=_retry_after(reply),
            status=status,
        )
    if status >= 500:
        raise ServerError("server error", status=status)
    if status in (401, 403):
        raise AuthError("the server rejected the credentials", status=status)
    if status >= 400:
        raise InvalidRequestError("the server refused the request", status=status)
    try:
        envelope = loads(reply.content)
    except ValueError as exc:
        raise DecodeError(
            f"reply is not complete JSON ({len(reply.content)} bytes): {exc}", status=status
        ) from None
    if not isinstance(envelope, dict) or "result" not in envelope:
        raise DecodeError("reply is not a collect envelope", status=status)
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
        f"the server answered FAIL: {message or 'no reason given'}",
        vendor_message=message,
        status=status,
    )


Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")
#: Reads an OK envelope into what the caller wants; raises ``DecodeError`` if it cannot.
Reader = Callable[[dict[str, Any]], T]


def _envelope(envelope: dict[str, Any]) -> dict[str, Any]:
    return envelope


class Requester:
    """Signs, sends, classifies, reads and retries; shared by every endpoint coroutine.

    ``max_concurrency`` caps requests in flight. It is also the size of the connection pool
    the client builds, so no pool queue forms below us (docs/architecture.md, performance notes).
    """

    def __init__(
        self,
        *,
        userid: str,
        api_key: ApiKey,
        sender: Sender,
        base_url: str = DEFAULT_BASE_URL,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | Governor | None = None,
        endpoint_limiters: Mapping[str, RateLimiter] | None = None,
        max_concurrency: int = 8,
        clock: thqs.Clock = time.time,
        sleep: Sleep = anyio.sleep,
        monotonic: Callable[[], float] = anyio.current_time,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        self.userid = userid
        self._api_key = api_key
        #: Which key signs: the response cache keeps apart replies of different keys.
        self.credential = api_key.fingerprint()
        self._sender = sender
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._rate_limiter = rate_limiter
        self._endpoint_limiters = dict(endpoint_limiters or {})
        self._gate = RequestGate(rate_limiter, self._endpoint_limiters)
        self.max_concurrency = max_concurrency
        self._capacity: anyio.CapacityLimiter | None = None
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self._rand = random.Random()
        self.stats = CallStats()
        #: Told about every attempt and every call (:mod:`~cc_collect_async.instrumentation`).
        self.instrumentation = instrumentation
        where = urlsplit(self.base_url)
        self._server = (where.hostname or "", where.port)

    def __repr__(self) -> str:
        return f"Requester(userid={self.userid!r}, base_url={self.base_url!r})"

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
        read: Reader[T],
        method: str | None = None,
    ) -> T:
        """Call ``endpoint`` and return ``read(envelope)``.

        ``read`` runs inside the retry loop: an OK envelope it finds garbled (a page without
        its pagination fields, a record that does not fit its model) is a ``DecodeError`` of
        this call, retried like a truncated body, never passed on.
        """
        wire = endpoint.prepare(self.userid, params)
        verb = method or endpoint.method
        self.stats.calls += 1
        started = self._monotonic()
        hooks = self.instrumentation
        attempt = 0
        counted = 0  # attempts that failed (an attempt turned away by a spent quota waited)
        excused = 0.0  # seconds spent waiting out a spent quota
        spent = 0.0  # seconds on the wire and backing off: what an attempt's deadline leaves
        made = 0  # attempts that got past the gate onto the wire
        unreported = False  # one of them whose end the hooks have not heard
        try:
            while True:
                attempt += 1
                status: int | None = None
                began = sent = started if hooks is None else self._monotonic()
                permit: Permit | None = None
                # A call that does not wait out quotas (a page view) waits for nothing past
                # its time in all: not for the limiters, nor for a connection slot.
                patience = None
                if not self.retry.wait_out_quotas:
                    patience = self.retry.max_elapsed - (self._monotonic() - started)
                try:
                    async with self._admitted(endpoint, patience) as permit:
                        sent = self._monotonic()  # an attempt's own time starts here
                        made += 1
                        unreported = True
                        # The policy's time in all bounds an attempt too: a page view given 4 s
                        # must not wait out the transport's minute for one stalled reply.
                        budget = self.retry.max_elapsed - spent
                        reply = await self._send(endpoint, wire, verb, budget)
                    status = reply.status_code
                    result = read(classify_reply(reply))
                except CollectError as exc:
                    exc.locate(endpoint.name, wire, attempt, status)
                    spent += self._monotonic() - sent
                    unreported = False
                    error = type(exc).__name__
                    if hooks is not None:
                        self._observe(hooks, endpoint, verb, attempt, began, sent, status, error)
                    # A spent quota's wait is excused only by a policy that waits quotas out.
                    waited = self._settled(permit, exc) and self.retry.wait_out_quotas
                    counted += not waited
                    delay = self.retry.delay(max(counted, 1), exc.retry_after, rand=self._rand)
                    if waited:  # time spent waiting for the server's quota is not time failing
                        excused += delay + (permit.waited if permit is not None else 0.0)
                    else:
                        spent += delay
                    elapsed = self._monotonic() - started - excused
                    out_of_time = elapsed + delay > self.retry.max_elapsed
                    if not exc.retryable or counted >= self.retry.max_attempts or out_of_time:
                        self.stats.failures += 1
                        # The error's text names the endpoint and status: said once per line.
                        logger.warning("failed after %d attempt(s): %s", attempt, exc)
                        if hooks is not None:
                            self._observe_call(hooks, endpoint, attempt, started, error)
                        raise
                    self.stats.retries += 1
                    logger.info("attempt %d failed: %s; retrying in %.2fs", attempt, exc, delay)
                    await self._sleep(delay)
                    continue
                unreported = False
                if hooks is not None:
                    self._observe(hooks, endpoint, verb, attempt, began, sent, status, None)
                    self._observe_call(hooks, endpoint, attempt, started, "ok")
                self._settled(permit, None)
                return result
        except BaseException as exc:
            if hooks is not None and not isinstance(exc, CollectError):
                # Cancelled (the visitor went away) or not ours: the attempt on the wire was
                # still made, and the vendor counted it.
                name = _error_type(exc)
                if unreported:
                    self._observe(hooks, endpoint, verb, attempt, began, sent, status, name)
                self._observe_call(hooks, endpoint, made, started, name)
            raise

    def _observe(
        self,
        hooks: Instrumentation,
        endpoint: Endpoint,
        method: str,
        attempt: int,
        began: float,
        sent: float,
        status: int | None,
        error_type: str | None,
    ) -> None:
        hooks.on_attempt(
            AttemptEvent(
                endpoint=endpoint.name,
                path=endpoint.path,
                method=method,
                server_address=self._server[0],
                server_port=self._server[1],
                attempt=attempt,
                status=status,
                error_type=error_type,
                duration=self._monotonic() - sent,
                limiter_wait=sent - began,
            )
        )

    def _observe_call(
        self,
        hooks: Instrumentation,
        endpoint: Endpoint,
        attempts: int,
        started: float,
        outcome: str,
    ) -> None:
        hooks.on_call(
            CallEvent(
                endpoint=endpoint.name,
                attempts=attempts,
                outcome=outcome,
                duration=self._monotonic() - started,
            )
        )

    async def _send(
        self, endpoint: Endpoint, wire: Mapping[str, str | int], method: str, budget: float
    ) -> ReplyLike:
        # Signed per attempt: a retry must carry a fresh time or the server calls it stale.
        query = thqs.sign(wire, self._api_key.reveal(), clock=self._clock)
        if method == "POST" and endpoint.json_body:
            body = dumps(wire)
            headers: Sequence[tuple[str, str]] = (("Content-Type", "application/json"),)
        else:
            body, headers = None, ()
        self.stats.requests += 1
        logger.debug("%s %s %s", method, endpoint.path, wire)
        return await self._sender.send(
            method, f"{self.base_url}{endpoint.path}?{query}", headers, body, deadline=budget
        )

    # -- rate limits and the concurrency cap: every word the request path says to them -----

    @property
    def rate_limiter(self) -> RateLimiter | Governor | None:
        return self._rate_limiter

    @property
    def endpoint_limiters(self) -> Mapping[str, RateLimiter]:
        return self._endpoint_limiters

    @asynccontextmanager
    async def _admitted(self, endpoint: Endpoint, patience: float | None) -> AsyncIterator[Permit]:
        """Held while one attempt is on the wire: the gate (governor, limiters) lets it go,
        and one of ``max_concurrency`` slots is its own. Waiting for them longer than
        ``patience`` seconds (None: no bound) is a ``RateLimitedError`` of this client's own."""
        if self._capacity is None:
            self._capacity = anyio.CapacityLimiter(self.max_concurrency)
        # No cancel scope per attempt where nothing bounds the wait (every harvest request).
        waiting: AbstractContextManager[object] = (
            nullcontext()
            if patience is None
            else anyio.CancelScope(deadline=anyio.current_time() + max(patience, 0.0))
        )
        permit: Permit | None = None
        slot = False
        try:
            with waiting:
                permit = await self._gate.admit(endpoint.name)
                await self._capacity.acquire()
                slot = True
            if permit is None or not slot:
                raise RateLimitedError(
                    "this client's rate limiter (or its cap on requests in flight) would hold "
                    f"the call past its {self.retry.max_elapsed:g} s in all; nothing was sent"
                )
            # A slot handed over just as the caller was cancelled (another unit hit an auth
            # error, say) must not turn into one more request: anyio delivers that
            # cancellation only at the next pass through the event loop.
            await checkpoint_if_cancelled()
            yield permit
        finally:
            if slot:
                self._capacity.release()
            if permit is not None:
                permit.release()

    def _settled(self, permit: Permit | None, error: CollectError | None) -> bool:
        """Tell the gate how the attempt ended: a success, the server's "too fast", or
        another failure. True when the attempt only waited for a spent quota."""
        if isinstance(error, RateLimitedError):
            self.stats.rate_limited += 1
        if permit is None:
            return False
        return permit.settle(error, max_retry_after=self.retry.max_retry_after)
