"""THQS signing: the published vector, the encoding rules, a fresh signature per attempt, and
a property test against a verifier written here from the vendor's description alone."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cc_collect_async import CollectClient, thqs

OK_CHAT = {"result": "OK", "data": [], "error_msg": ""}
Verify = Callable[..., tuple[dict[str, str], int]]


def test_published_vector_is_reproduced_exactly() -> None:
    query = thqs.sign(
        {"name": "harry", "level": "top", "salary": 1000},
        "aSdF1234",
        clock=lambda: 1291879392,
    )
    assert query == (
        "level=top&name=harry&salary=1000&time=1291879392&hash=BF04A55B30CFF562F7ADD9F054AB7FFB"
    )


def test_published_vector_passes_the_independent_verifier(verify_query: Verify) -> None:
    query = thqs.sign(
        {"salary": 1000, "name": "harry", "level": "top"}, "aSdF1234", clock=lambda: 1291879392
    )
    params, timestamp = verify_query(query, "aSdF1234")
    assert params == {"level": "top", "name": "harry", "salary": "1000"}
    assert timestamp == 1291879392


def test_wrong_key_fails_the_verifier(verify_query: Verify) -> None:
    """The verifier itself can fail: a query signed with another key is rejected."""
    query = thqs.sign({"name": "harry"}, "aSdF1234", clock=lambda: 1291879392)
    with pytest.raises(AssertionError, match="bad signature"):
        verify_query(query, "another-key")


def test_none_params_are_dropped_from_query_and_signature() -> None:
    with_none = thqs.sign({"a": "1", "b": None, "c": "3"}, "K", clock=lambda: 5)
    without = thqs.sign({"a": "1", "c": "3"}, "K", clock=lambda: 5)
    assert with_none == without
    assert with_none.startswith("a=1&c=3&time=5&hash=")


def test_encoding_is_quote_plus() -> None:
    # Written out by hand from the quote_plus rules: space -> '+', '/', '&', '=', '+' and
    # non-ASCII percent-encoded as UTF-8, '~' '-' '_' '.' kept.
    assert thqs.encode_params({"q": "a b/c&d=e+f"}) == "q=a+b%2Fc%26d%3De%2Bf"
    assert thqs.encode_params({"name": "张三"}) == "name=%E5%BC%A0%E4%B8%89"
    assert thqs.encode_params({"k y": "~-_."}) == "k+y=~-_."


def test_pairs_are_sorted_by_key() -> None:
    assert thqs.encode_params({"userid": "U", "b": 2, "a": 1, "page_size": 3}) == (
        "a=1&b=2&page_size=3&userid=U"
    )


def test_booleans_are_written_as_one_and_zero() -> None:
    assert thqs.encode_params({"x": True, "y": False}) == "x=1&y=0"


def test_timestamp_is_whole_seconds(verify_query: Verify) -> None:
    query = thqs.sign({"a": "1"}, "K", clock=lambda: 1291879392.987)
    _, timestamp = verify_query(query, "K")
    assert timestamp == 1291879392


def test_signature_is_upper_case_md5_of_salted_string() -> None:
    expected = hashlib.md5(b"a=1&time=77&salt=K").hexdigest().upper()
    assert thqs.signature("a=1", 77, "K") == expected
    assert expected.isupper()


def test_empty_params_still_sign_time() -> None:
    query = thqs.sign({}, "K", clock=lambda: 42)
    expected = hashlib.md5(b"&time=42&salt=K").hexdigest().upper()
    assert query == f"time=42&hash={expected}"


# Arbitrary Unicode except lone surrogates (which cannot be UTF-8 encoded at all).
_text = st.text(st.characters(codec="utf-8"), max_size=12)
_keys = _text.filter(lambda k: k not in ("time", "hash"))
_values = st.one_of(_text, st.integers(), st.none())


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=st.dictionaries(_keys, _values, max_size=6),
    timestamp=st.integers(min_value=0, max_value=2**33),
    key=st.text(st.characters(codec="utf-8"), min_size=1, max_size=16),
)
def test_property_independent_verifier_agrees(
    verify_query: Verify, params: dict[str, Any], timestamp: int, key: str
) -> None:
    query = thqs.sign(params, key, clock=lambda: timestamp)
    decoded, sent_time = verify_query(query, key)
    assert sent_time == timestamp
    assert decoded == {k: str(v) for k, v in params.items() if v is not None}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    roomid=st.text(st.characters(codec="utf-8"), min_size=1, max_size=10),
    liveid=st.text(st.characters(codec="utf-8"), min_size=1, max_size=10),
)
@pytest.mark.anyio
async def test_property_request_as_sent_verifies(
    verify_query: Verify, base_url: str, userid: str, api_key: str, roomid: str, liveid: str
) -> None:
    """Through the real client and httpx: the query string as it reaches the server."""
    router = respx.Router(base_url=base_url, assert_all_called=False)
    route = router.get("/collect/live/chat/record/").respond(json=OK_CHAT)
    transport = httpx.MockTransport(router.async_handler)
    async with CollectClient(userid, api_key, base_url=base_url, transport=transport) as client:
        assert await client.chat_records(roomid, liveid) == []
    assert route.call_count == 1
    decoded, _ = verify_query(route.calls.last.request.url.query)
    assert decoded == {"userid": userid, "roomid": roomid, "liveid": liveid}


@pytest.mark.anyio
async def test_every_attempt_is_signed_afresh(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    new_fake_time: Any,
    verify_query: Verify,
    userid: str,
) -> None:
    clock = new_fake_time(wall=1_700_000_000.0, tick=7.0)
    route = router.get("/collect/live/usercount/").mock(
        side_effect=[
            httpx.Response(503),
            httpx.Response(200, json={"result": "OK", "data": {"livecount": 3}}),
        ]
    )
    async with make_client(clock=clock.clock, sleep=clock.sleep) as client:
        result = await client.user_count("L1")
    assert result.livecount == 3
    assert route.call_count == 2
    first, second = (call.request.url.query for call in route.calls)
    (p1, t1), (p2, t2) = verify_query(first), verify_query(second)
    assert p1 == p2 == {"userid": userid, "liveid": "L1"}
    # The clock advanced 7 s per read, plus the backoff the fake sleep added (< 1 s).
    assert (t1, t2) == (1_700_000_000, 1_700_000_007)
    assert first.split(b"&hash=")[1] != second.split(b"&hash=")[1]
