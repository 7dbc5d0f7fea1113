"""Every way a call can fail maps to one typed error, retried or not, with its context.

Table-driven over a real client whose wire is a respx router: each row is one server
behaviour, repeated on every attempt, and the error class, retry flag, number of requests
and the context the error must carry.

The README's "Errors" section, claim by claim, and the test that holds it:

- every failure is a CollectError with endpoint, status, vendor_message, params, attempts
  and retryable: ``test_error_mapping`` (every row), ``test_rollcall_fail_envelope``;
  params never hold the key or hash: ``test_error_params_never_hold_hash_or_time``;
- each row of the table (class, cause, retried): ``test_error_mapping`` and
  ``test_the_table_covers_every_error_class``; Retry-After honoured: the ``retry_after``
  tests below; a wrong account id: the ``fail-userid-mismatch`` rows; refused before
  sending: test_endpoints' ``test_missing_required_parameter_is_refused_before_sending``;
  no complete reply within ``timeout``, a reply that is not HTTP: test_wire;
- a record that does not fit its model is a retried DecodeError with its endpoint and
  attempts: ``test_replies_that_do_not_fit_the_model_are_retried_decode_errors``;
- the RetryPolicy defaults and fresh signatures per attempt: test_retry, test_thqs;
- no signed query in error texts or logs: test_wire, test_secrets; the NullHandler:
  ``test_the_library_logs_nowhere_unless_the_application_says_where``.
"""

from __future__ import annotations

import email.utils
import subprocess
import sys
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import httpx
import pytest
import respx

from cc_collect_async import (
    AuthError,
    CollectClient,
    CollectError,
    DecodeError,
    InvalidRequestError,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    TransportError,
)

MAX_ATTEMPTS = 3
USERCOUNT = "/collect/live/usercount/"
ROLLCALL = "/openapi/collect/rollcall/get"


def _fail(message: str) -> dict[str, Any]:
    return {"result": "FAIL", "data": None, "error_msg": message}


@attrs.frozen
class Case:
    id: str
    #: A response (status, headers, body) or an httpx exception class raised on every attempt.
    reply: tuple[int, dict[str, str], bytes | dict[str, Any] | list[Any]] | type[Exception]
    error: type[CollectError]
    retryable: bool
    status: int | None
    vendor_message: str | None = None
    #: The waits between attempts, when they are fixed by the reply (Retry-After).
    sleeps: list[float] | None = None

    @property
    def requests(self) -> int:
        return MAX_ATTEMPTS if self.retryable else 1


CASES = [
    Case("429-retry-after-seconds", (429, {"Retry-After": "7"}, b""), RateLimitedError,
         True, 429, sleeps=[7.0, 7.0]),
    Case("429-no-retry-after", (429, {}, b""), RateLimitedError, True, 429),
    Case("fail-too-many-request", (200, {}, _fail("TOO_MANY_REQUEST")), RateLimitedError,
         True, 200, "TOO_MANY_REQUEST"),
    Case("fail-访问过于频繁", (200, {}, _fail("访问过于频繁")), RateLimitedError,
         True, 200, "访问过于频繁"),
    Case("http-500", (500, {}, b"oops"), ServerError, True, 500),
    Case("http-502", (502, {}, b"<html>bad gateway</html>"), ServerError, True, 502),
    Case("http-503", (503, {}, b""), ServerError, True, 503),
    Case("fail-process-fail", (200, {}, _fail("PROCESS_FAIL")), ServerError,
         True, 200, "PROCESS_FAIL"),
    Case("fail-auth-signature", (200, {}, _fail("AUTH_FAIL: signature mismatch")), AuthError,
         False, 200, "AUTH_FAIL: signature mismatch"),
    Case("fail-auth-unknown-userid", (200, {}, _fail("AUTH_FAIL: unknown userid")), AuthError,
         False, 200, "AUTH_FAIL: unknown userid"),
    Case("fail-time-expired", (200, {}, _fail("request time expired")), AuthError,
         False, 200, "request time expired"),
    Case("fail-userid-mismatch", (200, {}, _fail("userid mismatch")), AuthError,
         False, 200, "userid mismatch"),
    Case("fail-account-id", (200, {}, _fail("account_id does not match the key")), AuthError,
         False, 200, "account_id does not match the key"),
    Case("fail-账号不匹配", (200, {}, _fail("账号不匹配")), AuthError, False, 200, "账号不匹配"),
    # Wordings of the vendor's Chinese messages the markers must not misread: an AuthError
    # stops a whole harvest, and a refusal or a server fault that is not retried fails units.
    Case("fail-参数验证失败", (200, {}, _fail("参数验证失败")), InvalidRequestError,
         False, 200, "参数验证失败"),
    Case("fail-该用户没有进出记录", (200, {}, _fail("该用户没有进出记录")), InvalidRequestError,
         False, 200, "该用户没有进出记录"),
    Case("fail-签名验证失败", (200, {}, _fail("签名验证失败")), AuthError,
         False, 200, "签名验证失败"),
    Case("fail-请求过于频繁", (200, {}, _fail("请求过于频繁")), RateLimitedError,
         True, 200, "请求过于频繁"),
    Case("fail-调用频率超限", (200, {}, _fail("调用频率超限")), RateLimitedError,
         True, 200, "调用频率超限"),
    Case("fail-系统异常", (200, {}, _fail("系统异常")), ServerError, True, 200, "系统异常"),
    Case("fail-param-missing", (200, {}, _fail("PARAM_ERROR: missing parameter liveid")),
         InvalidRequestError, False, 200, "PARAM_ERROR: missing parameter liveid"),
    # "assigned" contains "sign": a word inside another is no signature complaint.
    Case("fail-unknown-wording", (200, {}, _fail("room not assigned to this live")),
         InvalidRequestError, False, 200, "room not assigned to this live"),
    Case("http-404", (404, {}, b"not found"), InvalidRequestError, False, 404),
    Case("http-400", (400, {}, b"bad request"), InvalidRequestError, False, 400),
    Case("http-401", (401, {}, b""), AuthError, False, 401),
    Case("http-403", (403, {}, b""), AuthError, False, 403),
    Case("connect-error", httpx.ConnectError, TransportError, True, None),
    Case("read-timeout", httpx.ReadTimeout, TransportError, True, None),
    Case("connect-timeout", httpx.ConnectTimeout, TransportError, True, None),
    Case("remote-protocol-error", httpx.RemoteProtocolError, TransportError, True, None),
    Case("read-error", httpx.ReadError, TransportError, True, None),
    Case("truncated-json", (200, {}, b'{"result": "OK", "data": {"livecou'), DecodeError,
         True, 200),
    Case("html-body", (200, {"Content-Type": "text/html"}, b"<html><body>502</body></html>"),
         DecodeError, True, 200),
    Case("empty-body", (200, {}, b""), DecodeError, True, 200),
    Case("json-list-not-envelope", (200, {}, [1, 2, 3]), DecodeError, True, 200),
    Case("json-object-not-envelope", (200, {}, {"livecount": 3}), DecodeError, True, 200),
]  # fmt: skip


def _responder(reply: Any) -> Any:
    if isinstance(reply, type):
        return reply  # respx raises the exception class with the request attached
    status, headers, body = reply

    def respond(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, headers=headers, content=body)
        return httpx.Response(status, headers=headers, json=body)

    return respond


@pytest.mark.anyio
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_error_mapping(
    case: Case,
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    fake_time: Any,
    userid: str,
) -> None:
    route = router.get(USERCOUNT).mock(side_effect=_responder(case.reply))
    async with make_client(retry=RetryPolicy(max_attempts=MAX_ATTEMPTS)) as client:
        with pytest.raises(CollectError) as info:
            await client.user_count("L1")
        stats = client.stats
    exc = info.value
    assert type(exc) is case.error
    assert exc.retryable is case.retryable
    assert route.call_count == case.requests
    assert exc.attempts == case.requests
    assert exc.endpoint == "user_count"
    assert exc.status == case.status
    assert exc.vendor_message == case.vendor_message
    assert exc.params == {"userid": userid, "liveid": "L1"}
    assert len(fake_time.sleeps) == case.requests - 1
    if case.sleeps is not None:
        assert fake_time.sleeps == case.sleeps
    assert (stats.requests, stats.retries, stats.failures) == (
        case.requests,
        case.requests - 1,
        1,
    )
    assert stats.rate_limited == (case.requests if case.error is RateLimitedError else 0)


def test_the_table_covers_every_error_class() -> None:
    classes = {c.error for c in CASES}
    assert classes == {
        RateLimitedError,
        ServerError,
        AuthError,
        InvalidRequestError,
        TransportError,
        DecodeError,
    }


@pytest.mark.parametrize(
    ("cls", "retryable"),
    [
        (CollectError, False),
        (AuthError, False),
        (InvalidRequestError, False),
        (RateLimitedError, True),
        (ServerError, True),
        (TransportError, True),
        (DecodeError, True),
    ],
)
def test_retryable_flags(cls: type[CollectError], retryable: bool) -> None:
    assert cls("x").retryable is retryable
    assert issubclass(cls, CollectError)


# -- rollcall's envelope: {"result", "error", "data", "errorMsg"} -------------------------------


def _rollcall_fail(code: str | None, message: str) -> dict[str, Any]:
    return {"result": "FAIL", "error": code, "data": None, "errorMsg": message}


ROLLCALL_CASES = [
    ("auth", _rollcall_fail("AUTH_FAIL", "AUTH_FAIL: signature mismatch"), AuthError, 1,
     "AUTH_FAIL: signature mismatch"),
    ("too-many", _rollcall_fail("TOO_MANY_REQUEST", "TOO_MANY_REQUEST"), RateLimitedError,
     MAX_ATTEMPTS, "TOO_MANY_REQUEST"),
    # The code says what happened even when the prose matches no known wording.
    ("too-many-prose", _rollcall_fail("TOO_MANY_REQUEST", "请求太多，请稍后再试"),
     RateLimitedError, MAX_ATTEMPTS, "请求太多，请稍后再试"),
    ("process-fail-prose", _rollcall_fail("PROCESS_FAIL", "系统异常"), ServerError,
     MAX_ATTEMPTS, "系统异常"),
    ("param", _rollcall_fail("PARAM_ERROR", "PARAM_ERROR: page_num"), InvalidRequestError, 1,
     "PARAM_ERROR: page_num"),
    ("message-only", _rollcall_fail(None, "访问过于频繁"), RateLimitedError, MAX_ATTEMPTS,
     "访问过于频繁"),
]  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("envelope", "error", "requests", "vendor_message"),
    [case[1:] for case in ROLLCALL_CASES],
    ids=[case[0] for case in ROLLCALL_CASES],
)
async def test_rollcall_fail_envelope(
    envelope: dict[str, Any],
    error: type[CollectError],
    requests: int,
    vendor_message: str,
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    userid: str,
) -> None:
    route = router.post(ROLLCALL).respond(json=envelope)
    async with make_client(retry=RetryPolicy(max_attempts=MAX_ATTEMPTS)) as client:
        with pytest.raises(CollectError) as info:
            await client.rollcall_records("LIVE1", page_num=50)
    exc = info.value
    assert type(exc) is error
    assert route.call_count == requests == exc.attempts
    assert exc.endpoint == "rollcall"
    assert exc.status == 200
    assert exc.vendor_message == vendor_message
    assert exc.params == {
        "account_id": userid,
        "live_id": "LIVE1",
        "page_index": 1,
        "page_num": 50,
    }


# -- Retry-After -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_retry_after_http_date_is_honoured(
    router: respx.Router, make_client: Callable[..., CollectClient], fake_time: Any
) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    header = email.utils.format_datetime(when, usegmt=True)
    route = router.get(USERCOUNT).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": header}),
            httpx.Response(200, json={"result": "OK", "data": {"livecount": 9}}),
        ]
    )
    async with make_client() as client:
        assert (await client.user_count("L1")).livecount == 9
    assert route.call_count == 2
    assert len(fake_time.sleeps) == 1
    # The header has whole seconds, so the wait is 29-30 s; backoff would be under 1 s.
    assert 28.0 <= fake_time.sleeps[0] <= 30.0


@pytest.mark.anyio
async def test_retry_after_date_in_the_past_means_retry_now(
    router: respx.Router, make_client: Callable[..., CollectClient], fake_time: Any
) -> None:
    router.get(USERCOUNT).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
            httpx.Response(200, json={"result": "OK", "data": {"livecount": 1}}),
        ]
    )
    async with make_client() as client:
        await client.user_count("L1")
    assert fake_time.sleeps == [0.0]


@pytest.mark.anyio
async def test_retry_after_is_capped(
    router: respx.Router, make_client: Callable[..., CollectClient], fake_time: Any
) -> None:
    route = router.get(USERCOUNT).respond(429, headers={"Retry-After": "3600"})
    policy = RetryPolicy(max_attempts=3, max_retry_after=30.0, max_elapsed=1000.0)
    async with make_client(retry=policy) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.user_count("L1")
    assert route.call_count == 3
    assert fake_time.sleeps == [30.0, 30.0]
    assert info.value.retry_after == 3600.0


@pytest.mark.anyio
@pytest.mark.parametrize("header", ["soon", "nan", "", "-5x"])
async def test_broken_retry_after_falls_back_to_backoff(
    header: str,
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    fake_time: Any,
) -> None:
    router.get(USERCOUNT).respond(429, headers={"Retry-After": header})
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.5, jitter=0.0)
    async with make_client(retry=policy) as client:
        with pytest.raises(RateLimitedError):
            await client.user_count("L1")
    assert fake_time.sleeps == [0.5, 1.0]


# -- recovery and context --------------------------------------------------------------------


@pytest.mark.anyio
async def test_transient_failures_then_success(
    router: respx.Router, make_client: Callable[..., CollectClient], fake_time: Any
) -> None:
    route = router.get(USERCOUNT).mock(
        side_effect=[
            httpx.Response(503),
            httpx.ConnectError("refused"),
            httpx.Response(200, content=b'{"result": "OK", "da'),
            httpx.Response(200, json=_fail("TOO_MANY_REQUEST")),
            httpx.Response(200, json={"result": "OK", "data": {"livecount": 5}}),
        ]
    )
    async with make_client(retry=RetryPolicy(max_attempts=5)) as client:
        result = await client.user_count("L1")
        stats = client.stats
    assert result.livecount == 5
    assert route.call_count == 5
    assert len(fake_time.sleeps) == 4
    assert (stats.calls, stats.requests, stats.retries, stats.failures) == (1, 5, 4, 0)
    assert stats.rate_limited == 1


def test_error_params_never_hold_hash_or_time() -> None:
    exc = ServerError("x", params={"userid": "U", "liveid": "L", "hash": "ABC", "time": 5})
    assert exc.params == {"userid": "U", "liveid": "L"}


def test_error_str_and_repr_carry_context() -> None:
    exc = AuthError(
        "the server answered FAIL: AUTH_FAIL",
        endpoint="vote",
        status=200,
        vendor_message="AUTH_FAIL",
        params={"roomid": "R"},
    )
    assert str(exc) == "the server answered FAIL: AUTH_FAIL [vote] (HTTP 200)"
    text = repr(exc)
    assert text.startswith("AuthError(")
    assert "'vote'" in text and "'AUTH_FAIL'" in text and "'roomid': 'R'" in text
    assert "AuthError: the server answered FAIL" in "".join(traceback.format_exception(exc))


_VOTE_PAGE = {"page_size": 1, "page_length": 20, "page_count": 1}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "name", "call", "body", "retried"),
    [
        (
            USERCOUNT,
            "user_count",
            lambda c: c.user_count("L1"),
            {"result": "OK", "data": {"livecount": "many"}},
            False,
        ),
        (
            USERCOUNT,
            "user_count",
            lambda c: c.user_count("L1"),
            {"result": "OK", "data": [1, 2]},
            True,
        ),
        (
            "/collect/live/chat/record/",
            "chat",
            lambda c: c.chat_records("R1", "L1"),
            {"result": "OK", "data": [{"id": 1, "timestamp": "yesterday"}]},
            False,
        ),
        (
            "/collect/live/chat/record/",
            "chat",
            lambda c: c.chat_records("R1", "L1"),
            {"result": "OK", "data": ["not a record"]},
            True,
        ),
        (
            "/collect/live/chat/record/",
            "chat",
            lambda c: c.fetch_records("chat", roomid="R1", liveid="L1"),
            {"result": "OK", "data": [1, "two", None]},
            True,
        ),
        (
            "/collect/live/chat/record/",
            "chat",
            lambda c: c.chat_records("R1", "L1"),
            {"result": "OK", "data": {"id": 1}},
            True,
        ),
        (
            "/collect/vote/record",
            "vote",
            lambda c: c.vote_records("R1"),
            {"result": "OK", "data": [], "page_size": 1, "page_length": 20},
            True,
        ),
        (
            "/collect/vote/record",
            "vote",
            lambda c: c.vote_records("R1"),
            {"result": "OK", "data": [{"publish_data": {"publish_time": "soon"}}], **_VOTE_PAGE},
            False,
        ),
        (
            "/collect/vote/record",
            "vote",
            lambda c: c.fetch_page("vote", 1, 20, roomid="R1"),
            {"result": "OK", "data": [{"a": 1}, [2]], **_VOTE_PAGE},
            True,
        ),
    ],
    ids=[
        "number-as-prose",
        "object-expected",
        "garbled-time",
        "record-not-object",
        "raw-records-not-objects",
        "list-expected",
        "no-count",
        "page-record-does-not-fit",
        "raw-page-record-not-object",
    ],
)
async def test_replies_that_do_not_fit_are_decode_errors_retried_unless_whole_json(
    path: str,
    name: str,
    call: Callable[[CollectClient], Any],
    body: dict[str, Any],
    retried: bool,
    router: respx.Router,
    make_client: Callable[..., CollectClient],
) -> None:
    """An OK envelope whose data does not fit is a DecodeError of that call, read inside the
    request path: it carries the endpoint and the attempts (README, Errors), never a cattrs,
    Key or TypeError a caller catching CollectError would miss. A record that does not fit
    its model is not retried: the same record comes back (six attempts added 14.5 s of
    backoff to the same error)."""
    route = router.get(path).respond(json=body)
    async with make_client(retry=RetryPolicy(max_attempts=MAX_ATTEMPTS)) as client:
        with pytest.raises(DecodeError) as caught:
            await call(client)
    exc = caught.value
    attempts = MAX_ATTEMPTS if retried else 1
    assert (exc.endpoint, exc.status, exc.attempts) == (name, 200, attempts)
    assert route.call_count == attempts
    assert exc.retryable is retried
    assert exc.params.get("roomid", exc.params.get("liveid")) in ("R1", "L1")


@pytest.mark.parametrize(
    ("base_url", "why"),
    [
        ("http://", "no host"),
        ("http://127.0.0.1:99999", "port out of range"),
        ("http://[::1", "malformed"),
        ("http://[zz]/", "malformed"),
        ("http://exa mple.com", "malformed"),
        ("http://example.com\x00", "malformed"),
        ("http://example.com:abc", "port out of range"),
        ("http://example.com:0", "port out of range"),
        ("ftp://example.com", "http:// or https://"),
        ("http://example.com/?a=1", "query"),
    ],
)
def test_a_bad_base_url_is_refused_before_any_request(base_url: str, why: str) -> None:
    from cc_collect_async import CollectClient

    with pytest.raises(ValueError, match=why):
        CollectClient("user", "key", base_url=base_url)


@pytest.mark.parametrize(("userid", "key"), [("   ", "key"), ("user", "   ")])
def test_blank_credentials_are_refused(userid: str, key: str) -> None:
    from cc_collect_async import CollectClient

    with pytest.raises(ValueError, match="empty"):
        CollectClient(userid, key)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (503, "server error [user_count] (HTTP 503)"),
        (404, "the server refused the request [user_count] (HTTP 404)"),
        (401, "the server rejected the credentials [user_count] (HTTP 401)"),
    ],
)
async def test_a_failure_reason_says_each_thing_once(
    status: int, expected: str, router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    """The text a manifest and stderr show as a failure's reason: no "HTTP 503 ... (HTTP 503)"."""
    router.get(USERCOUNT).respond(status)
    async with make_client(retry=RetryPolicy.never()) as client:
        with pytest.raises(CollectError) as caught:
            await client.user_count("L1")
    assert str(caught.value) == expected


def test_the_library_logs_nowhere_unless_the_application_says_where() -> None:
    """A failed call logs a warning; a program that configured no logging must not get it on
    stderr through Python's last-resort handler (the library's logger has a NullHandler)."""
    script = """
import anyio, httpx
from cc_collect_async import CollectClient, RetryPolicy, ServerError

async def main():
    transport = httpx.MockTransport(lambda request: httpx.Response(503))
    async with CollectClient("U", "K", transport=transport, retry=RetryPolicy.never()) as c:
        try:
            await c.user_count("L1")
        except ServerError:
            print("failed as expected")

anyio.run(main)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "failed as expected"
    assert done.stderr == ""
