"""All 13 endpoints: exact method, path and signed parameters on the wire, and the vendor
document's example replies parsed into the models.

The replies in ``tests/data/vendor_replies/`` are the seed document's examples turned into
JSON (its Python-ish quotes, comments and missing commas fixed; its "..." entries left out;
the answer card's placeholders given concrete values). The signature is checked by the
independent verifier in conftest, from the raw query of the request as sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from cc_collect_async import (
    BEIJING,
    ENDPOINTS,
    AccessRecord,
    AnswerCardRecord,
    BrainstormRecord,
    ChatRecord,
    ClientInfo,
    CollectClient,
    InvalidRequestError,
    LiveDuration,
    LiveRecord,
    LiveSummary,
    LiveUserCount,
    MaxParallel,
    Page,
    Platform,
    RewardRecord,
    RollcallRecord,
    VoteRecord,
)

Verify = Callable[..., tuple[dict[str, str], int]]

#: The seed document's example replies, one file each (see the module docstring).
REPLIES = Path(__file__).parent / "data" / "vendor_replies"


def _reply(name: str) -> str:
    return (REPLIES / f"{name}.json").read_text(encoding="utf-8")


MAX_PARALLEL_REPLY = _reply("max_parallel")
USER_COUNT_REPLY = _reply("user_count")
DURATION_REPLY = _reply("duration")
ACCESS_REPLY = _reply("access")
CHAT_REPLY = _reply("chat")
LIVES_REPLY = _reply("lives")
BRAINSTORM_REPLY = _reply("brainstorm")
VOTE_REPLY = _reply("vote")
ANSWERCARD_REPLY = _reply("answercard")
REWARD_REPLY = _reply("reward")
SUMMARY_REPLY = _reply("summary")
CLIENT_INFO_REPLY = _reply("client_info")
ROLLCALL_REPLY = _reply("rollcall")


def bj(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone(timedelta(hours=8)))  # type: ignore[misc]


def serve(router: respx.Router, reply: str) -> respx.Route:
    """Answer every request with ``reply``; the test then checks what was asked."""
    return router.route().respond(
        200, content=reply.encode(), headers={"Content-Type": "application/json"}
    )


def sent(
    route: respx.Route, verify_query: Verify, method: str, path: str
) -> tuple[httpx.Request, dict[str, str]]:
    """The one request ``route`` saw, after checking its method, exact path and signature."""
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.method == method
    raw_path = request.url.raw_path.split(b"?", 1)[0].decode()
    assert raw_path == path
    assert request.url.host == "ccapi.csslcloud.net"
    params, _ = verify_query(request.url.query)
    return request, params


def test_the_table_has_the_vendors_thirteen_paths() -> None:
    expected = {
        "max_parallel": ("GET", "/collect/max_parallel/"),
        "user_count": ("GET", "/collect/live/usercount/"),
        "duration": ("GET", "/collect/live/duration/"),
        "access": ("GET", "/collect/live/user/record/"),
        "chat": ("GET", "/collect/live/chat/record/"),
        "lives": ("GET", "/collect/live/record"),
        "brainstorm": ("GET", "/collect/brainstom/record"),
        "vote": ("GET", "/collect/vote/record"),
        "answercard": ("GET", "/collect/answercard/record"),
        "reward": ("GET", "/collect/reward/record"),
        "summary": ("GET", "/collect/live/gather"),
        "client_info": ("GET", "/collect/room/client/info"),
        "rollcall": ("POST", "/openapi/collect/rollcall/get"),
    }
    assert {name: (e.method, e.path) for name, e in ENDPOINTS.items()} == expected


class _Record(Mapping[str, Any]):
    """A record that is a Mapping but not a dict, as a caller's own decoder might give."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        return _Record(value) if isinstance(value, dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@pytest.mark.parametrize(
    ("name", "record", "key"),
    [
        ("chat", {"id": 7, "content": "hi"}, (7,)),
        (
            "access",
            {"viewerid": "v1", "enter_time": "t", "x": 1},
            ("v1", "t", None, None, None),
        ),
        ("vote", {"publish_data": {"vote_id": "q9"}, "vote_data": []}, ("q9",)),
        ("vote", {"publish_data": "not an object"}, (None,)),
        ("rollcall", {"roll_call_id": "r", "user_id": 3}, ("r", 3)),
        ("reward", {"uid": 1}, (1, None, None)),
    ],
)
def test_natural_keys_of_dicts_and_other_mappings(
    name: str, record: dict[str, Any], key: tuple[Any, ...]
) -> None:
    endpoint = ENDPOINTS[name]
    assert endpoint.record_key(record) == key
    assert endpoint.record_key(_Record(record)) == key
    # A page's keys: record_key's tuples, or the one field's values where it has one.
    page_key = key[0] if len(key) == 1 else key
    assert endpoint.page_keys([record, record]) == [page_key, page_key]
    assert endpoint.page_keys([record, _Record(record), record]) == [page_key] * 3


# -- one test per endpoint -------------------------------------------------------------------


@pytest.mark.anyio
async def test_max_parallel_of_a_live(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, MAX_PARALLEL_REPLY)
    async with make_client() as client:
        result = await client.max_parallel("2273B106A25921C9")
    _, params = sent(route, verify_query, "GET", "/collect/max_parallel/")
    assert params == {"userid": userid, "liveid": "2273B106A25921C9"}
    assert result == MaxParallel(max_parallel=2132, time=bj(2018, 9, 2, 12, 30, 22))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("start", "end", "start_text", "end_text"),
    [
        (date(2019, 1, 2), date(2019, 1, 3), "2019-01-02", "2019-01-03"),
        ("2019-01-02", "2019-01-03", "2019-01-02", "2019-01-03"),
        # 17:00 UTC is 01:00 the next day in Beijing; 15:59 UTC is 23:59 the same day.
        (
            datetime(2019, 1, 1, 17, 0, tzinfo=timezone.utc),
            datetime(2019, 1, 2, 15, 59, tzinfo=timezone.utc),
            "2019-01-02",
            "2019-01-02",
        ),
        (datetime(2019, 1, 2, 23, 59), datetime(2019, 1, 3, 0, 1), "2019-01-02", "2019-01-03"),
        ("2019-01-02 10:00", "2019-01-03 23:59:59", "2019-01-02", "2019-01-03"),
    ],
    ids=["date", "text", "aware-datetime", "naive-datetime", "text-with-time"],
)
async def test_max_parallel_over_days(
    start: Any,
    end: Any,
    start_text: str,
    end_text: str,
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, MAX_PARALLEL_REPLY)
    async with make_client() as client:
        result = await client.max_parallel(start_date=start, end_date=end)
    _, params = sent(route, verify_query, "GET", "/collect/max_parallel/")
    assert params == {"userid": userid, "start_time": start_text, "end_time": end_text}
    assert result.max_parallel == 2132


@pytest.mark.anyio
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"start_date": date(2019, 1, 2)}, {"end_date": date(2019, 1, 3)}, {"liveid": ""}],
    ids=["nothing", "start-only", "end-only", "empty-liveid"],
)
async def test_max_parallel_needs_a_live_or_both_days(
    kwargs: dict[str, Any], router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    route = serve(router, MAX_PARALLEL_REPLY)
    async with make_client() as client:
        with pytest.raises(InvalidRequestError) as info:
            await client.max_parallel(**kwargs)
    assert route.call_count == 0
    assert info.value.endpoint == "max_parallel"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("param", "value"),
    [("start_time", "2026-13-01"), ("start_time", "yesterday"), ("end_time", "2026-02-30")],
)
async def test_a_bad_date_names_its_endpoint_and_parameters(
    param: str, value: str, router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    """Like a missing parameter: the error says which call, and keeps what it was given."""
    route = serve(router, MAX_PARALLEL_REPLY)
    times = {"start_time": "2026-11-01", "end_time": "2026-11-03", param: value}
    async with make_client() as client:
        with pytest.raises(InvalidRequestError) as info:
            await client.lives(times["start_time"], times["end_time"])
    assert route.call_count == 0
    assert info.value.endpoint == "lives" and info.value.params[param] == value
    assert str(info.value).endswith("[lives]") and repr(value) in str(info.value)


@pytest.mark.anyio
async def test_user_count(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, USER_COUNT_REPLY)
    async with make_client() as client:
        result = await client.user_count("2273B106A25921C9")
    _, params = sent(route, verify_query, "GET", "/collect/live/usercount/")
    assert params == {"userid": userid, "liveid": "2273B106A25921C9"}
    assert result == LiveUserCount(livecount=2132)
    assert isinstance(result, LiveUserCount)


@pytest.mark.anyio
async def test_duration(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, DURATION_REPLY)
    async with make_client() as client:
        result = await client.duration("2273B106A25921C9")
    _, params = sent(route, verify_query, "GET", "/collect/live/duration/")
    assert params == {"userid": userid, "liveid": "2273B106A25921C9"}
    assert result == LiveDuration(
        duration=2.0, start_time=bj(2018, 5, 9, 10, 0, 0), end_time=bj(2018, 5, 9, 12, 0, 0)
    )


@pytest.mark.anyio
async def test_access_records(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, ACCESS_REPLY)
    async with make_client() as client:
        records = await client.access_records(
            "4C05DAC8965BE2029C33DC5901307461", "2273B106A25921C9"
        )
    _, params = sent(route, verify_query, "GET", "/collect/live/user/record/")
    assert params == {
        "userid": userid,
        "roomid": "4C05DAC8965BE2029C33DC5901307461",
        "liveid": "2273B106A25921C9",
    }
    assert records == [
        AccessRecord(
            username="guojia",
            viewerid="ea5e26c98df94e49bb399c477438d7f7",
            role="talker",
            ip="116.226.32.202",
            platform="web",
            enter_time=bj(2017, 9, 12, 16, 22, 43),
            exit_time=bj(2017, 9, 12, 17, 22, 43),
        )
    ]


@pytest.mark.anyio
async def test_access_records_of_one_viewer(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, ACCESS_REPLY)
    async with make_client() as client:
        await client.access_records("R1", "L1", viewerid="V 1")
    request, params = sent(route, verify_query, "GET", "/collect/live/user/record/")
    assert params == {"userid": userid, "roomid": "R1", "liveid": "L1", "viewerid": "V 1"}
    assert b"viewerid=V+1" in request.url.query


@pytest.mark.anyio
async def test_chat_records(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, CHAT_REPLY)
    async with make_client() as client:
        records = await client.chat_records("4C05DAC8965BE2029C33DC5901307461", "2273B106A25921C9")
    _, params = sent(route, verify_query, "GET", "/collect/live/chat/record/")
    assert params == {
        "userid": userid,
        "roomid": "4C05DAC8965BE2029C33DC5901307461",
        "liveid": "2273B106A25921C9",
    }
    assert records == [
        ChatRecord(
            id=123,
            timestamp=bj(2019, 2, 18, 17, 22, 50),
            username="sss",
            content="sdffs",
            chat_userid="81d5a1f1bbcb4edb9e1c52e9d75417f4",
        )
    ]


@pytest.mark.anyio
async def test_lives(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, LIVES_REPLY)
    async with make_client() as client:
        page = await client.lives(
            datetime(2019, 1, 2, 0, 0), datetime(2019, 1, 3, 0, 0), page=2, page_length=20
        )
    _, params = sent(route, verify_query, "GET", "/collect/live/record")
    assert params == {
        "userid": userid,
        "start_time": "2019-01-02 00:00",
        "end_time": "2019-01-03 00:00",
        "page_size": "2",
        "page_length": "20",
    }
    assert isinstance(page, Page)
    assert (page.number, page.length, page.page_count, page.total) == (2, 20, 2, None)
    assert page.items == (
        LiveRecord(
            liveid="C40FD4FA8D9B07C6",
            roomid="3BDDBEB6C2269ABE9C33DC5901307461",
            userid="9DC1A878A164F696",
            class_name="wang-double-test5",
            room_type=3,
            start_time=bj(2019, 2, 26, 16, 44, 4),
            end_time=bj(2019, 2, 27, 10, 51, 38),
        ),
        LiveRecord(
            liveid="B3CA023FB07A5375",
            roomid="6944167A1D980FD89C33DC5901307461",
            userid="9DC1A878A164F696",
            class_name="wang-double-test-assistant",
            room_type=2,
            start_time=bj(2019, 2, 26, 20, 10, 18),
            end_time=bj(2019, 2, 27, 10, 51, 38),
        ),
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("start", "end", "start_text", "end_text"),
    [
        (date(2019, 1, 2), date(2019, 1, 3), "2019-01-02 00:00", "2019-01-03 00:00"),
        (
            datetime(2019, 1, 2, 8, 30, 45),
            datetime(2019, 1, 2, 9, 5),
            "2019-01-02 08:30",
            "2019-01-02 09:05",
        ),
        (
            datetime(2019, 1, 1, 16, 30, tzinfo=timezone.utc),
            datetime(2019, 1, 1, 11, 30, tzinfo=timezone(timedelta(hours=-5))),
            "2019-01-02 00:30",
            "2019-01-02 00:30",
        ),
        (
            datetime(2019, 1, 2, 8, 0, tzinfo=BEIJING),
            "2019-01-03 00:00",
            "2019-01-02 08:00",
            "2019-01-03 00:00",
        ),
    ],
    ids=["dates", "naive", "aware-converted-to-beijing", "beijing-and-text"],
)
async def test_lives_renders_minutes_in_beijing_time(
    start: Any,
    end: Any,
    start_text: str,
    end_text: str,
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
) -> None:
    route = serve(router, LIVES_REPLY)
    async with make_client() as client:
        await client.lives(start, end, roomid="R1")
    _, params = sent(route, verify_query, "GET", "/collect/live/record")
    assert (params["start_time"], params["end_time"]) == (start_text, end_text)
    assert params["roomid"] == "R1"


@pytest.mark.anyio
async def test_brainstorm_records(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, BRAINSTORM_REPLY)
    async with make_client() as client:
        page = await client.brainstorm_records(
            "4C05DAC8965BE2029C33DC5901307461", liveid="96AC5FB6817E01DC", page_length=20
        )
    _, params = sent(route, verify_query, "GET", "/collect/brainstom/record")
    assert params == {
        "userid": userid,
        "roomid": "4C05DAC8965BE2029C33DC5901307461",
        "liveid": "96AC5FB6817E01DC",
        "page_size": "1",
        "page_length": "20",
    }
    assert (page.number, page.length, page.page_count) == (1, 20, 1)
    (record,) = page.items
    assert isinstance(record, BrainstormRecord)
    assert record.publish_data.brainsstom_id == "f80894a2114c3304f5aed16ea10854d3"
    assert record.publish_data.title == "wefw"
    assert record.publish_data.publish_time == bj(2019, 1, 30, 14, 5, 54)
    assert record.publish_data.liveid == "96AC5FB6817E01DC"
    assert [(r.uid, r.uname, r.content) for r in record.reply_data] == [
        ("d44fda4f15a14b92a733b237d957611f", "ddd", "werwerwe")
    ]


@pytest.mark.anyio
async def test_brainstorm_of_a_whole_room_sends_no_liveid(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, BRAINSTORM_REPLY)
    async with make_client() as client:
        await client.brainstorm_records("R1")
    _, params = sent(route, verify_query, "GET", "/collect/brainstom/record")
    assert set(params) == {"userid", "roomid", "page_size", "page_length"}


@pytest.mark.anyio
async def test_vote_records(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, VOTE_REPLY)
    async with make_client() as client:
        page = await client.vote_records(
            "4C05DAC8965BE2029C33DC5901307461", liveid="96AC5FB6817E01DC", page_length=20
        )
    _, params = sent(route, verify_query, "GET", "/collect/vote/record")
    assert params == {
        "userid": userid,
        "roomid": "4C05DAC8965BE2029C33DC5901307461",
        "liveid": "96AC5FB6817E01DC",
        "page_size": "1",
        "page_length": "20",
    }
    (record,) = page.items
    assert isinstance(record, VoteRecord)
    assert record.publish_data.vote_id == "9d84f73d05bd4d930d97b01840796c5c"
    assert record.publish_data.choices == ("fdg", "fsdf", "wef")
    assert record.publish_data.style == 0
    assert record.publish_data.publish_time == bj(2019, 1, 30, 15, 53, 40)
    assert [(r.uid, r.choices, r.uname) for r in record.reply_data] == [
        ("d44fda4f15a14b92a733b237d957611f", (1,), "ddd")
    ]


@pytest.mark.anyio
async def test_answercard_records(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, ANSWERCARD_REPLY)
    async with make_client() as client:
        page = await client.answercard_records("R1", liveid="feee", page=2, page_length=20)
    # Single slash: the seed's "//collect/answercard/record" is a typo.
    _, params = sent(route, verify_query, "GET", "/collect/answercard/record")
    assert params == {
        "userid": userid,
        "roomid": "R1",
        "liveid": "feee",
        "page_size": "2",
        "page_length": "20",
    }
    assert (page.number, page.length, page.page_count) == (2, 20, 4)
    first, second = page.items
    assert isinstance(first, AnswerCardRecord)
    assert first.publish_data.qvote_id == "123444422"
    assert first.publish_data.style == 1
    assert first.publish_data.count == 4
    assert first.publish_data.correct == (0, 1)
    assert first.publish_data.publish_time == bj(2018, 5, 3, 22, 9, 0)
    assert [(r.uid, r.choice, r.reply_time) for r in first.reply_data] == [
        ("sdeew", (0, 1), bj(2018, 5, 3, 22, 10, 20))
    ]
    assert second.publish_data.style == 0  # sent as the string "0"
    assert second.publish_data.correct == (-1,)  # no answer published
    assert second.publish_data.publish_time == bj(2018, 5, 3, 22, 15, 0)
    assert second.reply_data == ()


@pytest.mark.anyio
async def test_reward_records(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, REWARD_REPLY)
    async with make_client() as client:
        page = await client.reward_records(
            "4C05DAC8965BE2029C33DC5901307461", "EA0A5DF952F42A0C", page_length=20
        )
    _, params = sent(route, verify_query, "GET", "/collect/reward/record")
    assert params == {
        "userid": userid,
        "roomid": "4C05DAC8965BE2029C33DC5901307461",
        "liveid": "EA0A5DF952F42A0C",
        "page_size": "1",
        "page_length": "20",
    }
    assert page.items == (
        RewardRecord(
            reward_time=bj(2019, 2, 19, 11, 56, 3),
            uname="ddd",
            liveid="EA0A5DF952F42A0C",
            type="cup",
            uid="bf20806bfecc4955adb6050ecfdb77d0",
            roomid="4C05DAC8965BE2029C33DC5901307461",
        ),
    )


@pytest.mark.anyio
async def test_summary(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, SUMMARY_REPLY)
    async with make_client() as client:
        result = await client.summary("B89BF8C8D7F1838C9C33DC5901307461", "DEB0441AFEBB36E7")
    _, params = sent(route, verify_query, "GET", "/collect/live/gather")
    assert params == {
        "userid": userid,
        "roomid": "B89BF8C8D7F1838C9C33DC5901307461",
        "liveid": "DEB0441AFEBB36E7",
    }
    assert isinstance(result, LiveSummary)
    assert result.locations == {"其他": 1, "上海": 2}
    assert result.platforms == {5: 1, 2: 2, 3: 3}
    assert result.by_platform() == {Platform.WEB: 1, Platform.ANDROID: 2, Platform.IOS: 3}
    assert (result.roomid, result.liveid, result.usercount) == (
        "B89BF8C8D7F1838C9C33DC5901307461",
        "DEB0441AFEBB36E7",
        1,
    )


@pytest.mark.anyio
async def test_client_info(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, CLIENT_INFO_REPLY)
    async with make_client() as client:
        records = await client.client_info(
            "88DA9C48C2DC6DCB9C33DC5901307461", viewerid="9647e539551d44a5819b756df800ed24"
        )
    _, params = sent(route, verify_query, "GET", "/collect/room/client/info")
    assert params == {
        "userid": userid,
        "roomid": "88DA9C48C2DC6DCB9C33DC5901307461",
        "viewerid": "9647e539551d44a5819b756df800ed24",
    }
    assert records == [
        ClientInfo(
            camera_enable=1,
            submit_time=bj(2019, 3, 28, 16, 32, 29),
            roomid="88DA9C48C2DC6DCB9C33DC5901307461",
            browser="Chrome_71.0",
            browser_kernel="gecko",
            ip="192.168.1.33",
            username="sss",
            micro_enable=1,
            system="Window7",
            userid="9647e539551d44a5819b756df800ed24",
            screen_resolution="1680*1050",
        )
    ]


ROLLCALL_ITEMS = (
    RollcallRecord(
        live_id="435FD0F38E66EE6A",
        roll_call_id="1591856163000",
        user_id="a10b241e28b44ab88a640539a09e681b",
        user_name="123",
        roll_call_status=1,
        confirm_time=bj(2020, 6, 11, 14, 16, 12),
    ),
    RollcallRecord(
        live_id="435FD0F38E66EE6A",
        roll_call_id="1591856163000",
        user_id="Z803hxkfgI65dwwC",
        user_name="学生",
        roll_call_status=1,
        confirm_time=bj(2020, 6, 11, 14, 16, 15),
    ),
)


@pytest.mark.anyio
async def test_rollcall_posts_json_by_default(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, ROLLCALL_REPLY)
    async with make_client() as client:
        page = await client.rollcall_records("435FD0F38E66EE6A", page_num=100)
    request, params = sent(route, verify_query, "POST", "/openapi/collect/rollcall/get")
    expected = {
        "account_id": userid,
        "live_id": "435FD0F38E66EE6A",
        "page_index": 1,
        "page_num": 100,
    }
    assert params == {k: str(v) for k, v in expected.items()}
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == expected
    assert (page.number, page.length, page.total, page.page_count) == (1, 100, 2, 1)
    assert page.items == ROLLCALL_ITEMS


@pytest.mark.anyio
async def test_rollcall_defaults_to_the_largest_page(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
) -> None:
    route = serve(router, ROLLCALL_REPLY)
    async with make_client() as client:
        await client.rollcall_records("435FD0F38E66EE6A")
    request, params = sent(route, verify_query, "POST", "/openapi/collect/rollcall/get")
    assert params["page_num"] == "500"
    assert json.loads(request.content)["page_num"] == 500


@pytest.mark.anyio
async def test_rollcall_get_sends_no_body(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, ROLLCALL_REPLY)
    async with make_client() as client:
        page = await client.rollcall_records("435FD0F38E66EE6A", page=3, method="GET")
    request, params = sent(route, verify_query, "GET", "/openapi/collect/rollcall/get")
    assert params == {
        "account_id": userid,
        "live_id": "435FD0F38E66EE6A",
        "page_index": "3",
        "page_num": "500",
    }
    assert request.content == b""
    assert "application/json" not in request.headers.get("Content-Type", "")
    assert page.items == ROLLCALL_ITEMS


# -- client-side validation: nothing is sent -------------------------------------------------

# Complete parameter sets, written from the seed document's tables ("必须" = required).
COMPLETE: dict[str, dict[str, Any]] = {
    "user_count": {"liveid": "L1"},
    "duration": {"liveid": "L1"},
    "access": {"roomid": "R1", "liveid": "L1"},
    "chat": {"roomid": "R1", "liveid": "L1"},
    "lives": {"start_time": "2019-01-02 00:00", "end_time": "2019-01-03 00:00"},
    "brainstorm": {"roomid": "R1"},
    "vote": {"roomid": "R1"},
    "answercard": {"roomid": "R1"},
    "reward": {"roomid": "R1", "liveid": "L1"},
    "summary": {"roomid": "R1", "liveid": "L1"},
    "client_info": {"roomid": "R1"},
    "rollcall": {"live_id": "L1", "page_index": 1, "page_num": 20},
    "max_parallel": {"liveid": "L1"},
}
MISSING = [
    (name, param) for name, params in COMPLETE.items() if name != "max_parallel" for param in params
]


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "param"), MISSING, ids=[f"{n}-{p}" for n, p in MISSING])
@pytest.mark.parametrize("how", ["absent", "none", "empty"])
async def test_missing_required_parameter_is_refused_before_sending(
    name: str,
    param: str,
    how: str,
    router: respx.Router,
    make_client: Callable[..., CollectClient],
) -> None:
    route = serve(router, USER_COUNT_REPLY)
    params = dict(COMPLETE[name])
    if how == "absent":
        del params[param]
    else:
        params[param] = None if how == "none" else ""
    async with make_client() as client:
        with pytest.raises(InvalidRequestError) as info:
            await client.call(name, **params)
    assert route.call_count == 0
    assert info.value.endpoint == name
    assert param in str(info.value)
    assert info.value.attempts == 0


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(COMPLETE))
async def test_complete_parameters_are_enough(
    name: str,
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    verify_query: Verify,
    userid: str,
) -> None:
    route = serve(router, '{"result": "OK", "data": [], "error_msg": ""}')
    async with make_client() as client:
        envelope = await client.call(name, **COMPLETE[name])
    assert envelope["result"] == "OK"
    assert route.call_count == 1
    params, _ = verify_query(route.calls.last.request.url.query)
    account = "account_id" if name == "rollcall" else "userid"
    assert params == {account: userid, **{k: str(v) for k, v in COMPLETE[name].items()}}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.rollcall_records("L1", page_num=501),
        lambda c: c.rollcall_records("L1", page_num=0),
        lambda c: c.rollcall_records("L1", page=0),
        lambda c: c.vote_records("R1", page_length=0),
        lambda c: c.vote_records("R1", page=-1),
        lambda c: c.call("vote", roomid="R1", page_length="many"),
        lambda c: c.call("vote", roomid="R1", page_size=True),
        lambda c: c.call("chat", roomid="R1", liveid="L1", colour="red"),
        lambda c: c.call("no_such_endpoint"),
        lambda c: c.max_parallel(start_date="tomorrow", end_date="2019-01-03"),
        lambda c: c.lives("2019/01/02", "2019-01-03 00:00"),
    ],
    ids=[
        "page_num-501",
        "page_num-0",
        "page_index-0",
        "page_length-0",
        "page_size-negative",
        "page_length-not-a-number",
        "page_size-bool",
        "unknown-parameter",
        "unknown-endpoint",
        "date-not-a-date",
        "time-in-another-format",
    ],
)
async def test_invalid_requests_are_refused_before_sending(
    call: Callable[[CollectClient], Any],
    router: respx.Router,
    make_client: Callable[..., CollectClient],
) -> None:
    route = serve(router, ROLLCALL_REPLY)
    async with make_client() as client:
        with pytest.raises(InvalidRequestError):
            await call(client)
    assert route.call_count == 0


@pytest.mark.anyio
async def test_page_num_500_is_allowed(
    router: respx.Router, make_client: Callable[..., CollectClient], verify_query: Verify
) -> None:
    route = serve(router, ROLLCALL_REPLY)
    async with make_client() as client:
        await client.rollcall_records("L1", page_num=500)
    params, _ = verify_query(route.calls.last.request.url.query)
    assert params["page_num"] == "500"
