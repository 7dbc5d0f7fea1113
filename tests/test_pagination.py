"""Pagination: one typed page per ``await``, every item once per ``async for``, every page
per ``.pages()``, in both page styles, against servers that cap or change the page length."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from cc_collect_async import CollectClient, DecodeError, Page, RawPage, RollcallRecord, VoteRecord
from cc_collect_async.pagination import walk_pages

VOTE = "/collect/vote/record"
ROLLCALL = "/openapi/collect/rollcall/get"


def votes(n: int) -> list[dict[str, Any]]:
    return [
        {
            "publish_data": {"vote_id": f"v{i:04d}", "title": f"vote {i}", "style": 0},
            "reply_data": [{"uid": f"u{i}", "choices": [i % 3]}],
        }
        for i in range(n)
    ]


def rollcalls(n: int) -> list[dict[str, Any]]:
    return [
        {"live_id": "L1", "roll_call_id": "rc1", "user_id": f"u{i:04d}", "roll_call_status": 1}
        for i in range(n)
    ]


class StyleAServer:
    """A vendor-like style A endpoint over ``items``: ``page_size`` is the page number,
    ``page_length`` the length asked for, capped at ``cap``."""

    def __init__(self, items: list[dict[str, Any]], cap: int | None = None) -> None:
        self.items = items
        self.cap = cap
        self.asked: list[tuple[int, int]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        query = dict(parse_qsl(request.url.query.decode()))
        page, asked = int(query["page_size"]), int(query["page_length"])
        self.asked.append((page, asked))
        length = min(asked, self.cap) if self.cap else asked
        chunk = self.items[(page - 1) * length : page * length]
        return httpx.Response(
            200,
            json={
                "result": "OK",
                "data": chunk,
                "page_size": page,
                "page_length": length,
                "page_count": math.ceil(len(self.items) / length),
                "error_msg": "",
            },
        )


class RollcallServer:
    """Style B: ``page_index``/``page_num`` from the JSON body (POST) or the query (GET);
    the reply gives ``total``, ``size`` and ``current``."""

    def __init__(self, items: list[dict[str, Any]], cap: int | None = None) -> None:
        self.items = items
        self.cap = cap
        self.asked: list[tuple[str, int, int]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            body = json.loads(request.content)
        else:
            body = {
                k: int(v) for k, v in parse_qsl(request.url.query.decode()) if k.startswith("page")
            }
        page, asked = int(body["page_index"]), int(body["page_num"])
        self.asked.append((request.method, page, asked))
        size = min(asked, self.cap) if self.cap else asked
        chunk = self.items[(page - 1) * size : page * size]
        data = {"total": len(self.items), "size": size, "current": page, "data": chunk}
        return httpx.Response(
            200, json={"result": "OK", "error": None, "data": data, "errorMsg": ""}
        )


def vote_ids(records: list[VoteRecord] | tuple[VoteRecord, ...]) -> list[str | None]:
    return [r.publish_data.vote_id for r in records]


def expected_ids(start: int, stop: int) -> list[str | None]:
    return [f"v{i:04d}" for i in range(start, stop)]


# -- style A through the client ----------------------------------------------------------------


@pytest.mark.anyio
async def test_await_returns_one_typed_page_as_reported(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    server = StyleAServer(votes(45))
    router.get(VOTE).mock(side_effect=server)
    async with make_client() as client:
        page = await client.vote_records("R1", liveid="L1", page=2, page_length=20)
    assert isinstance(page, Page)
    assert (page.number, page.length, page.page_count, page.total) == (2, 20, 3, None)
    assert all(isinstance(item, VoteRecord) for item in page.items)
    assert vote_ids(page.items) == expected_ids(20, 40)
    assert not page.is_last
    assert server.asked == [(2, 20)]


@pytest.mark.anyio
async def test_async_for_yields_every_item_of_every_page(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    server = StyleAServer(votes(45))
    router.get(VOTE).mock(side_effect=server)
    async with make_client() as client:
        records = [record async for record in client.vote_records("R1", page_length=20)]
    assert vote_ids(records) == expected_ids(0, 45)
    assert server.asked == [(1, 20), (2, 20), (3, 20)]


@pytest.mark.anyio
async def test_pages_yields_each_page(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    server = StyleAServer(votes(45))
    router.get(VOTE).mock(side_effect=server)
    async with make_client() as client:
        pages = [page async for page in client.vote_records("R1", page_length=20).pages()]
    assert [(p.number, len(p.items), p.page_count, p.is_last) for p in pages] == [
        (1, 20, 3, False),
        (2, 20, 3, False),
        (3, 5, 3, True),
    ]
    assert vote_ids([i for p in pages for i in p.items]) == expected_ids(0, 45)


@pytest.mark.anyio
async def test_walk_from_a_later_page(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    server = StyleAServer(votes(45))
    router.get(VOTE).mock(side_effect=server)
    async with make_client() as client:
        records = [r async for r in client.vote_records("R1", page=2, page_length=20)]
    assert vote_ids(records) == expected_ids(20, 45)
    assert server.asked == [(2, 20), (3, 20)]


@pytest.mark.anyio
async def test_server_capping_the_page_length(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    server = StyleAServer(votes(95), cap=20)
    router.get(VOTE).mock(side_effect=server)
    async with make_client() as client:
        records = [r async for r in client.vote_records("R1", page_length=100)]
    assert vote_ids(records) == expected_ids(0, 95)
    # Page 1 asked for 100 and got 20 with page_count 5: the walk follows the reply.
    assert server.asked == [(1, 100), (2, 20), (3, 20), (4, 20), (5, 20)]


@pytest.mark.anyio
async def test_capped_walk_from_a_later_page_starts_at_the_right_item(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    server = StyleAServer(votes(95), cap=20)
    router.get(VOTE).mock(side_effect=server)
    async with make_client() as client:
        # Page 2 of 30 per page starts at item 30: under the cap of 20 that is page 2, item 10.
        records = [r async for r in client.vote_records("R1", page=2, page_length=30)]
    assert vote_ids(records) == expected_ids(30, 95)
    assert server.asked[0] == (2, 30)
    assert max(page for page, _ in server.asked) == 5


@pytest.mark.anyio
@pytest.mark.parametrize(("n", "requests"), [(40, 2), (41, 3), (1, 1), (20, 1)])
async def test_never_asks_past_the_last_page(
    n: int, requests: int, router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    server = StyleAServer(votes(n))
    router.get(VOTE).mock(side_effect=server)
    async with make_client() as client:
        records = [r async for r in client.vote_records("R1", page_length=20)]
    assert len(records) == n
    assert [page for page, _ in server.asked] == list(range(1, requests + 1))


@pytest.mark.anyio
async def test_empty_result_is_one_request_and_no_items(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    server = StyleAServer([])
    router.get(VOTE).mock(side_effect=server)
    async with make_client() as client:
        records = [r async for r in client.vote_records("R1", page_length=20)]
        page = await client.vote_records("R1", page_length=20)
    assert records == []
    assert (page.items, page.page_count) == ((), 0)
    assert server.asked == [(1, 20), (1, 20)]


@pytest.mark.anyio
async def test_raw_pages_keep_the_wire_dicts(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    items = votes(3)
    router.get(VOTE).mock(side_effect=StyleAServer(items))
    async with make_client() as client:
        raw = [page async for page in client.vote_records("R1", page_length=2).raw_pages()]
    assert [page.items for page in raw] == [items[:2], items[2:]]


# -- style B (rollcall) through the client -----------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_rollcall_walk(
    method: str, router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    server = RollcallServer(rollcalls(7))
    router.route(path=ROLLCALL).mock(side_effect=server)
    async with make_client() as client:
        paginated = client.rollcall_records("L1", page_num=3, method=method)  # type: ignore[arg-type]
        first = await paginated
        pages = [page async for page in paginated.pages()]
        records = [r async for r in paginated]
    assert (first.number, first.length, first.total, first.page_count) == (1, 3, 7, 3)
    assert [(p.number, len(p.items), p.total) for p in pages] == [(1, 3, 7), (2, 3, 7), (3, 1, 7)]
    assert all(isinstance(r, RollcallRecord) for r in records)
    assert [r.user_id for r in records] == [f"u{i:04d}" for i in range(7)]
    assert {m for m, _, _ in server.asked} == {method}
    # One for the await, three for .pages(), three for async for: never a fourth page.
    assert [(p, n) for _, p, n in server.asked] == [(1, 3)] + [(1, 3), (2, 3), (3, 3)] * 2


@pytest.mark.anyio
async def test_rollcall_capped_page_size(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    server = RollcallServer(rollcalls(450), cap=200)
    router.post(ROLLCALL).mock(side_effect=server)
    async with make_client() as client:
        records = [r async for r in client.rollcall_records("L1")]
    assert [r.user_id for r in records] == [f"u{i:04d}" for i in range(450)]
    assert server.asked == [("POST", 1, 500), ("POST", 2, 200), ("POST", 3, 200)]


@pytest.mark.anyio
@pytest.mark.parametrize("size", [500, 0], ids=["size-echoed", "size-zero"])
async def test_rollcall_empty(
    size: int, router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    data = {"total": 0, "size": size, "current": 1, "data": []}
    route = router.post(ROLLCALL).respond(
        json={"result": "OK", "error": None, "data": data, "errorMsg": ""}
    )
    async with make_client() as client:
        records = [r async for r in client.rollcall_records("L1")]
    assert records == []
    assert route.call_count == 1


# -- walk_pages against a fake fetch -----------------------------------------------------------


class FakeFetch:
    """Pages over ``range(n)`` whose length is chosen by the server: ``lengths[i]`` for the
    i-th request (the last one repeats), whatever length was asked for."""

    def __init__(self, n: int, lengths: list[int]) -> None:
        self.n = n
        self.lengths = lengths
        self.asked: list[tuple[int, int]] = []

    async def __call__(self, page: int, length: int) -> RawPage:
        served = self.lengths[min(len(self.asked), len(self.lengths) - 1)]
        self.asked.append((page, length))
        items = [{"i": i} for i in range(self.n)][(page - 1) * served : page * served]
        return RawPage(items, page, served, math.ceil(self.n / served))


async def walk(fetch: FakeFetch, length: int, page: int = 1) -> list[int]:
    return [
        item["i"] async for raw in walk_pages(fetch, page=page, length=length) for item in raw.items
    ]


@pytest.mark.anyio
async def test_walk_length_shrinks_mid_walk() -> None:
    fetch = FakeFetch(50, [20, 10])
    assert await walk(fetch, 100) == list(range(50))
    # Page 2 of 20 came back as page 2 of 10 (items 10-19, seen): ask for page 3 of 10.
    assert fetch.asked == [(1, 100), (2, 20), (3, 10), (4, 10), (5, 10)]


@pytest.mark.anyio
async def test_walk_length_grows_mid_walk() -> None:
    fetch = FakeFetch(50, [10, 10, 25])
    assert await walk(fetch, 10) == list(range(50))
    # Page 3 of 25 is empty; item 20 lives on page 1 of 25: fetch it, skip 20 items.
    assert fetch.asked == [(1, 10), (2, 10), (3, 10), (1, 25), (2, 25)]


@pytest.mark.anyio
async def test_walk_gives_up_on_a_server_that_keeps_changing_length() -> None:
    fetch = FakeFetch(1000, [10, 7, 10, 7, 10, 7, 10, 7, 10])
    with pytest.raises(DecodeError):
        await walk(fetch, 10)


@pytest.mark.anyio
@pytest.mark.parametrize(("n", "length", "requests"), [(0, 20, 1), (60, 20, 3), (61, 20, 4)])
async def test_walk_request_count(n: int, length: int, requests: int) -> None:
    fetch = FakeFetch(n, [length])
    assert await walk(fetch, length) == list(range(n))
    assert fetch.asked == [(p, length) for p in range(1, requests + 1)]


@pytest.mark.anyio
async def test_walk_stops_on_an_empty_reply_with_zero_length() -> None:
    async def fetch(page: int, length: int) -> RawPage:
        calls.append(page)
        return RawPage([], page, 0, 0)

    calls: list[int] = []
    assert [raw async for raw in walk_pages(fetch, length=20)] == [RawPage([], 1, 0, 0)]
    assert calls == [1]


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(min_value=0, max_value=120),
    asked=st.integers(min_value=1, max_value=60),
    lengths=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=4),
    repeat=st.integers(min_value=1, max_value=3),
)
@pytest.mark.anyio
async def test_property_each_item_once_whatever_the_server_length(
    n: int, asked: int, lengths: list[int], repeat: int
) -> None:
    # The server changes its length at most three times (each length for `repeat` requests).
    fetch = FakeFetch(n, [length for length in lengths for _ in range(repeat)])
    assert await walk(fetch, asked) == list(range(n))
    final = lengths[-1]
    if len(fetch.asked) > len(lengths) * repeat:  # settled on the final length: no overshoot
        assert max(page for page, _ in fetch.asked[len(lengths) * repeat :]) <= max(
            1, math.ceil(n / final)
        )


@pytest.mark.anyio
async def test_a_page_without_its_pagination_fields_is_retried_not_passed_on(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    garbled = {"result": "OK", "data": votes(2), "error_msg": ""}  # no page_size/page_count
    whole = {**garbled, "page_size": 1, "page_length": 20, "page_count": 1}
    route = router.get(VOTE).mock(
        side_effect=[httpx.Response(200, json=garbled), httpx.Response(200, json=whole)]
    )
    async with make_client() as client:
        page = await client.vote_records("R1", liveid="L1")
    assert vote_ids(page.items) == expected_ids(0, 2)
    assert route.call_count == 2


@pytest.mark.anyio
async def test_a_page_that_stays_garbled_fails_as_a_decode_error_with_context(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    garbled = {"result": "OK", "data": votes(2), "error_msg": ""}
    route = router.get(VOTE).mock(return_value=httpx.Response(200, json=garbled))
    async with make_client() as client:
        with pytest.raises(DecodeError) as caught:
            await client.vote_records("R1", liveid="L1")
    assert route.call_count == client.requester.retry.max_attempts
    assert caught.value.attempts == route.call_count
    assert caught.value.endpoint == "vote" and caught.value.params["roomid"] == "R1"
