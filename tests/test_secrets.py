"""The API key is only ever a salt: it never shows in a repr, a log line, an exception, or
anything sent to the server."""

from __future__ import annotations

import copy
import logging
import pickle
import re
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

import httpx
import pytest
import respx

from cc_collect_async import CollectClient, CollectError, RetryPolicy
from cc_collect_async.core import ApiKey

USERCOUNT = "/collect/live/usercount/"


def leaked_forms(key: str) -> list[str]:
    return [key, quote_plus(key), quote(key), quote(key, safe="")]


def assert_clean(text: str, key: str) -> None:
    for form in leaked_forms(key):
        assert form not in text, f"API key leaked in: {text[:300]!r}"


def test_assert_clean_finds_a_leak(api_key: str) -> None:
    """The check below would catch a key in any of its usual encodings."""
    for form in leaked_forms(api_key):
        with pytest.raises(AssertionError):
            assert_clean(f"GET /x?salt={form}", api_key)


def test_api_key_repr_str_format_and_pickle(api_key: str) -> None:
    key = ApiKey(api_key)
    for text in (repr(key), str(key), f"{key}", f"{key!r}", repr([key]), repr({"k": key})):
        assert_clean(text, api_key)
    assert key.reveal() == api_key
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(TypeError):
        copy.deepcopy(key)
    with pytest.raises(ValueError):
        ApiKey("")


@pytest.mark.anyio
async def test_client_and_requester_reprs(
    make_client: Callable[..., CollectClient], api_key: str, userid: str
) -> None:
    async with make_client() as client:
        texts = [
            repr(client),
            str(client),
            repr(client.requester),
            str(client.requester),
            repr(vars(client)),
            repr(vars(client.requester)),
            repr(client.requester.stats),
        ]
    for text in texts:
        assert_clean(text, api_key)
    assert userid in repr(client)


def test_client_from_env_repr(monkeypatch: pytest.MonkeyPatch, api_key: str) -> None:
    monkeypatch.setenv("CC_USERID", "U-ENV")
    monkeypatch.setenv("CC_API_KEY", api_key)
    client = CollectClient.from_env(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    assert_clean(repr(client), api_key)
    assert_clean(repr(client.requester), api_key)


def _record_texts(record: logging.LogRecord) -> list[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [record.getMessage(), repr(record.args), repr(record.msg), formatter.format(record)]


@pytest.mark.anyio
async def test_no_log_record_holds_the_key(
    caplog: pytest.LogCaptureFixture,
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    api_key: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    route = router.get(USERCOUNT).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "2"}),
            httpx.Response(503, text="busy"),
            httpx.ConnectError("connection refused"),
            httpx.Response(200, content=b'{"result": "OK", "da'),
            httpx.Response(200, json={"result": "FAIL", "error_msg": "TOO_MANY_REQUEST"}),
            httpx.Response(200, json={"result": "FAIL", "error_msg": "PROCESS_FAIL"}),
        ]
    )
    async with make_client(retry=RetryPolicy(max_attempts=6)) as client:
        with pytest.raises(CollectError):
            await client.user_count("L1")
    assert route.call_count == 6
    messages = [r.getMessage() for r in caplog.records]
    # The sequence was logged (so this test looks at real lines): 5 retries and the failure.
    assert sum("retrying" in m for m in messages) == 5
    assert any("failed after 6 attempt" in m for m in messages)
    for record in caplog.records:
        for text in _record_texts(record):
            assert_clean(text, api_key)
    assert_clean(caplog.text, api_key)
    # httpx's own line per reply names the URL: without the signed pair, which replays.
    assert sum(m.startswith("HTTP Request: GET") for m in messages) == 5
    assert not [m for m in messages if re.search(r"[?&](time|hash)=", m)]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, json={"result": "FAIL", "error_msg": "AUTH_FAIL: signature mismatch"}),
        httpx.Response(401),
        httpx.Response(429),
        httpx.Response(200, content=b"<html>"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed"),
    ],
    ids=["auth-fail", "401", "429", "html", "timeout", "protocol"],
)
async def test_no_exception_text_holds_the_key(
    reply: Any,
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    api_key: str,
) -> None:
    router.get(USERCOUNT).mock(side_effect=lambda request: _raise_or_return(reply))
    async with make_client(retry=RetryPolicy(max_attempts=2)) as client:
        with pytest.raises(CollectError) as info:
            await client.user_count("L1")
    _check_exception(info.value, api_key)


@pytest.mark.anyio
async def test_refused_request_error_holds_no_key(
    make_client: Callable[..., CollectClient], api_key: str
) -> None:
    async with make_client() as client:
        with pytest.raises(CollectError) as info:
            await client.call("chat", roomid="R1")
    _check_exception(info.value, api_key)


def _raise_or_return(reply: Any) -> httpx.Response:
    if isinstance(reply, Exception):
        raise reply
    return httpx.Response(reply.status_code, headers=reply.headers, content=reply.content)


def _check_exception(exc: CollectError, api_key: str) -> None:
    texts = [
        str(exc),
        repr(exc),
        "".join(traceback.format_exception(exc)),
        repr(exc.params),
        repr(vars(exc)),
        repr(exc.args),
    ]
    for text in texts:
        assert_clean(text, api_key)


# Complete parameters of every endpoint, so every path is checked on the wire.
CALLS: dict[str, dict[str, Any]] = {
    "max_parallel": {"liveid": "L1"},
    "user_count": {"liveid": "L1"},
    "duration": {"liveid": "L1"},
    "access": {"roomid": "R1", "liveid": "L1", "viewerid": "V1"},
    "chat": {"roomid": "R1", "liveid": "L1"},
    "lives": {"start_time": "2019-01-02 00:00", "end_time": "2019-01-03 00:00"},
    "brainstorm": {"roomid": "R1"},
    "vote": {"roomid": "R1", "page_size": 1, "page_length": 20},
    "answercard": {"roomid": "R1"},
    "reward": {"roomid": "R1", "liveid": "L1"},
    "summary": {"roomid": "R1", "liveid": "L1"},
    "client_info": {"roomid": "R1"},
    "rollcall": {"live_id": "L1", "page_index": 1, "page_num": 500},
}


@pytest.mark.anyio
@pytest.mark.parametrize("method", [None, "GET", "POST"])
async def test_the_key_is_never_sent(
    method: str | None,
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    api_key: str,
) -> None:
    route = router.route().respond(json={"result": "OK", "data": [], "error_msg": ""})
    async with make_client() as client:
        for name, params in CALLS.items():
            await client.call(name, method=method, **params)
    assert route.call_count == len(CALLS)
    bodies = 0
    for call in route.calls:
        request = call.request
        url = str(request.url)
        assert_clean(url, api_key)
        assert_clean(unquote_plus(url), api_key)
        for name, value in request.headers.items():
            assert_clean(f"{name}: {value}", api_key)
        body = request.content.decode("utf-8")
        bodies += bool(body)
        assert_clean(body, api_key)
        assert "salt" not in url
    # The rollcall POST carried a JSON body, which was checked too.
    assert bodies == (0 if method == "GET" else 1)


SIGNED_URL = (
    "http://127.0.0.1:8080/collect/live/usercount/?liveid=L1&userid=U1"
    "&time=1700000000&hash=0123456789ABCDEF0123456789ABCDEF"
)


@pytest.mark.parametrize(
    "text",
    [
        f"cannot connect to {SIGNED_URL}",
        f"url=URL('{SIGNED_URL}')",
        "GET /collect/live/usercount/?" + SIGNED_URL.partition("?")[2] + " HTTP/1.1",
        "at /x?liveid=L1%26time%3D1700000000%26hash%3D0123456789ABCDEF0123456789ABCDEF",
        "digest 0123456789ABCDEF0123456789ABCDEF alone",
    ],
    ids=["url", "repr", "request-line", "quoted", "digest"],
)
def test_scrub_removes_the_signature_however_it_is_spelled(text: str) -> None:
    from cc_collect_async.transport import scrub

    clean = scrub(text, SIGNED_URL)
    assert "0123456789ABCDEF0123456789ABCDEF" not in clean
    assert "1700000000" not in clean
    assert "hash" not in clean.lower() and "time%3d" not in clean.lower()
