"""The simulator over in-process ASGI: THQS checks, every endpoint, pagination, limits, faults.

These talk to the simulator with a plain ``httpx.AsyncClient`` and the published signing
function, never with the package's client, so they pin down the simulator on its own.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from cc_collect_async.sim import (
    DATA_KINDS,
    DEMO_API_KEY,
    DEMO_USERID,
    DatasetSpec,
    LiveInfo,
    SimConfig,
    Simulator,
    record_key,
)
from cc_collect_async.thqs import encode_params, sign, signature

pytestmark = pytest.mark.anyio

USERCOUNT = "/collect/live/usercount/"
DURATION = "/collect/live/duration/"
MAX_PARALLEL = "/collect/max_parallel/"
ACCESS = "/collect/live/user/record/"
CHAT = "/collect/live/chat/record/"
LIVES = "/collect/live/record"
BRAINSTORM = "/collect/brainstom/record"
VOTE = "/collect/vote/record"
ANSWERCARD = "/collect/answercard/record"
REWARD = "/collect/reward/record"
GATHER = "/collect/live/gather"
CLIENT_INFO = "/collect/room/client/info"
ROLLCALL = "/openapi/collect/rollcall/get"

SPEC = DatasetSpec(lives=24)
WINDOW = {"start_time": "2026-11-01 00:00", "end_time": "2026-11-03 00:00"}


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@asynccontextmanager
async def connect(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=sim.transport(), base_url="http://sim") as http:
        yield http


async def call(
    http: httpx.AsyncClient,
    path: str,
    params: Mapping[str, object],
    *,
    key: str = DEMO_API_KEY,
    method: str = "GET",
    clock: Callable[[], float] = time.time,
    body: object = None,
) -> httpx.Response:
    url = f"{path}?{sign(params, key, clock=clock)}"
    if method == "GET":
        return await http.get(url)
    return await http.post(url, json=body)


async def ok(http: httpx.AsyncClient, path: str, params: Mapping[str, object]) -> dict[str, Any]:
    response = await call(http, path, params)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    assert reply["result"] == "OK", reply
    return reply


def busy_live(sim: Simulator, kind: str = "chat") -> LiveInfo:
    """A live that has records of ``kind`` (and is not a huge one, to keep replies small)."""
    return next(
        live
        for live in sim.dataset.lives()
        if 0 < sim.dataset.count(live.liveid, kind) < 200
        and sim.dataset.count(live.liveid, "chat") < 500
    )


def empty_live(sim: Simulator) -> LiveInfo:
    return next(
        live
        for live in sim.dataset.lives()
        if all(sim.dataset.count(live.liveid, kind) == 0 for kind in DATA_KINDS)
    )


def huge_live(sim: Simulator) -> LiveInfo:
    return max(sim.dataset.lives(), key=lambda live: sim.dataset.count(live.liveid, "chat"))


def user(live: LiveInfo, **extra: object) -> dict[str, object]:
    return {"userid": DEMO_USERID, "roomid": live.roomid, "liveid": live.liveid, **extra}


# --- THQS -------------------------------------------------------------------------------------


async def test_a_signed_request_is_served() -> None:
    sim = Simulator(SPEC)
    live = busy_live(sim)
    async with connect(sim) as http:
        reply = await ok(http, USERCOUNT, {"userid": DEMO_USERID, "liveid": live.liveid})
    assert reply == {
        "result": "OK",
        "data": {"livecount": sim.dataset.viewer_count(live.liveid)},
        "error_msg": "",
    }
    assert sim.stats.requests == 1
    assert sim.stats.ok == 1


def _auth_fail(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 200
    reply = response.json()
    assert reply["result"] == "FAIL"
    assert reply["data"] is None
    assert reply["error_msg"].startswith(f"AUTH_FAIL: {reason}"), reply


async def test_wrong_hash_is_rejected() -> None:
    sim = Simulator(SPEC)
    params = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
    query = sign(params, DEMO_API_KEY)
    digest = query.rsplit("hash=", 1)[1]
    flipped = ("0" if digest[0] != "0" else "1") + digest[1:]
    async with connect(sim) as http:
        response = await http.get(f"{USERCOUNT}?{query.replace(digest, flipped)}")
    _auth_fail(response, "signature mismatch")
    assert sim.stats.auth_failed == 1
    assert sim.stats.ok == 0


async def test_lower_case_hash_is_rejected() -> None:
    # The vendor specifies upper-case hex; a client that lower-cases it is wrong.
    sim = Simulator(SPEC)
    query = sign({"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}, DEMO_API_KEY)
    head, digest = query.rsplit("hash=", 1)
    async with connect(sim) as http:
        response = await http.get(f"{USERCOUNT}?{head}hash={digest.lower()}")
    _auth_fail(response, "signature mismatch")


async def test_wrong_key_is_rejected() -> None:
    sim = Simulator(SPEC)
    async with connect(sim) as http:
        response = await call(
            http, USERCOUNT, {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}, key="nope"
        )
    _auth_fail(response, "signature mismatch")


async def test_a_parameter_changed_after_signing_is_rejected() -> None:
    sim = Simulator(SPEC)
    first, second = sim.dataset.lives()[:2]
    query = sign({"userid": DEMO_USERID, "liveid": first.liveid}, DEMO_API_KEY)
    async with connect(sim) as http:
        response = await http.get(f"{USERCOUNT}?{query.replace(first.liveid, second.liveid)}")
    _auth_fail(response, "signature mismatch")


async def test_the_hash_covers_the_query_exactly_as_sent() -> None:
    # Same parameters, same hash, but not in the signed (sorted) order: the text differs.
    sim = Simulator(SPEC)
    params = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
    stamp = int(time.time())
    digest = signature(encode_params(params), stamp, DEMO_API_KEY)
    reordered = f"userid={DEMO_USERID}&liveid={params['liveid']}&time={stamp}&hash={digest}"
    in_order = f"liveid={params['liveid']}&userid={DEMO_USERID}&time={stamp}&hash={digest}"
    async with connect(sim) as http:
        _auth_fail(await http.get(f"{USERCOUNT}?{reordered}"), "signature mismatch")
        assert (await http.get(f"{USERCOUNT}?{in_order}")).json()["result"] == "OK"


@pytest.mark.parametrize("drop", ["time", "hash", "both"])
async def test_missing_time_or_hash_is_rejected(drop: str) -> None:
    sim = Simulator(SPEC)
    query = sign({"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}, DEMO_API_KEY)
    kept = [
        pair
        for pair in query.split("&")
        if not (drop in ("time", "both") and pair.startswith("time="))
        and not (drop in ("hash", "both") and pair.startswith("hash="))
    ]
    async with connect(sim) as http:
        response = await http.get(f"{USERCOUNT}?{'&'.join(kept)}")
    _auth_fail(response, "missing time or hash")


async def test_time_that_is_not_unix_seconds_is_rejected() -> None:
    sim = Simulator(SPEC)
    params = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
    digest = signature(encode_params(params), 0, DEMO_API_KEY)
    async with connect(sim) as http:
        response = await http.get(f"{USERCOUNT}?{encode_params(params)}&time=soon&hash={digest}")
    _auth_fail(response, "missing time or hash")


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-301, False), (-250, True), (250, True), (400, False)]
)
async def test_time_outside_the_skew_window_is_rejected(offset: float, accepted: bool) -> None:
    sim = Simulator(SPEC)
    params = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
    async with connect(sim) as http:
        response = await call(http, USERCOUNT, params, clock=lambda: time.time() + offset)
    if accepted:
        assert response.json()["result"] == "OK"
    else:
        _auth_fail(response, "time outside the allowed window")


async def test_skew_window_is_configurable_and_uses_the_configured_clock() -> None:
    now = 2_000_000_000.0
    sim = Simulator(SPEC, SimConfig(skew_seconds=10, clock=lambda: now))
    params = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
    async with connect(sim) as http:
        assert (await call(http, USERCOUNT, params, clock=lambda: now - 9)).json()["result"] == "OK"
        _auth_fail(
            await call(http, USERCOUNT, params, clock=lambda: now - 11),
            "time outside the allowed window",
        )


async def test_unknown_userid_is_rejected() -> None:
    sim = Simulator(SPEC)
    params = {"userid": "NOT-AN-ACCOUNT", "liveid": busy_live(sim).liveid}
    async with connect(sim) as http:
        _auth_fail(await call(http, USERCOUNT, params), "unknown userid")
        _auth_fail(await call(http, USERCOUNT, {"liveid": params["liveid"]}), "unknown userid")


async def test_several_accounts_each_with_its_own_key() -> None:
    accounts = {DEMO_USERID: DEMO_API_KEY, "SECOND0000000001": "second-key"}
    sim = Simulator(SPEC, SimConfig(accounts=accounts))
    live = busy_live(sim)
    async with connect(sim) as http:
        reply = await call(
            http, USERCOUNT, {"userid": "SECOND0000000001", "liveid": live.liveid}, key="second-key"
        )
        assert reply.json()["result"] == "OK"
        crossed = await call(http, USERCOUNT, {"userid": "SECOND0000000001", "liveid": live.liveid})
        _auth_fail(crossed, "signature mismatch")
        lives = await ok(http, LIVES, {"userid": DEMO_USERID, **WINDOW})
        assert {item["userid"] for item in lives["data"]} == {DEMO_USERID}


async def test_the_api_key_never_shows_in_the_config_repr() -> None:
    config = SimConfig(accounts={"A": "very-secret-key"})
    assert "very-secret-key" not in repr(config)
    assert "very-secret-key" not in repr(Simulator(SPEC, config))


async def test_rollcall_identifies_the_account_by_account_id() -> None:
    sim = Simulator(SPEC)
    live = busy_live(sim, "rollcall")
    params = {"account_id": DEMO_USERID, "live_id": live.liveid, "page_index": 1, "page_num": 10}
    async with connect(sim) as http:
        good = await call(http, ROLLCALL, params, method="POST", body=params)
        assert good.json()["result"] == "OK"
        bad = await call(http, ROLLCALL, params, key="wrong", method="POST", body=params)
    assert bad.status_code == 200
    assert bad.json() == {
        "result": "FAIL",
        "error": "AUTH_FAIL",
        "data": None,
        "errorMsg": "AUTH_FAIL: signature mismatch",
    }


async def test_form_post_carries_the_signed_string_in_the_body() -> None:
    sim = Simulator(SPEC)
    params = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
    async with connect(sim) as http:
        response = await http.post(
            USERCOUNT,
            content=sign(params, DEMO_API_KEY),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.json()["result"] == "OK"
        posted = await call(http, USERCOUNT, params, method="POST")
        assert posted.json()["result"] == "OK"


# --- every endpoint -------------------------------------------------------------------------

CHAT_FIELDS = {"id", "timestamp", "username", "content", "chat_userid"}
ACCESS_FIELDS = {"username", "viewerid", "role", "ip", "platform", "enter_time", "exit_time"}
LIVE_FIELDS = {"end_time", "room_type", "userid", "roomid", "class_name", "liveid", "start_time"}
PAGED = {"result", "data", "error_msg", "page_size", "page_length", "page_count"}


async def test_max_parallel_usercount_duration_field_names() -> None:
    sim = Simulator(SPEC)
    live = busy_live(sim)
    single = {"userid": DEMO_USERID, "liveid": live.liveid}
    async with connect(sim) as http:
        peak = await ok(http, MAX_PARALLEL, single)
        count = await ok(http, USERCOUNT, single)
        duration = await ok(http, DURATION, single)
    assert set(peak) == {"result", "data", "error_msg"}
    assert set(peak["data"]) == {"max_parallel", "time"}
    assert peak["data"]["max_parallel"] == sim.dataset.peak(live.liveid)[0]
    assert set(count["data"]) == {"livecount"}
    assert set(duration["data"]) == {"duration", "start_time", "end_time"}
    assert duration["data"]["start_time"] == live.start_time.strftime("%Y-%m-%d %H:%M:%S ")
    hours = (live.end_time - live.start_time).total_seconds() / 3600
    assert duration["data"]["duration"] == pytest.approx(hours, abs=0.01)


async def test_max_parallel_over_days_is_the_highest_peak_of_those_days() -> None:
    sim = Simulator(SPEC)
    async with connect(sim) as http:
        first_day = await ok(
            http,
            MAX_PARALLEL,
            {"userid": DEMO_USERID, "start_time": "2026-11-01", "end_time": "2026-11-01"},
        )
        nothing = await ok(
            http,
            MAX_PARALLEL,
            {"userid": DEMO_USERID, "start_time": "2030-01-01", "end_time": "2030-01-02"},
        )
    day = sim.dataset.lives(datetime(2026, 11, 1), datetime(2026, 11, 2))
    peaks = [sim.dataset.peak(live.liveid) for live in day]
    best = max(peaks, key=lambda peak: peak[0])
    assert first_day["data"]["max_parallel"] == best[0]
    assert first_day["data"]["time"] == best[1].strftime("%Y-%m-%d %H:%M:%S")  # type: ignore[union-attr]
    assert nothing["data"] == {"max_parallel": 0, "time": None}


async def test_chat_and_access_replies() -> None:
    sim = Simulator(SPEC)
    live = busy_live(sim)
    async with connect(sim) as http:
        chat = await ok(http, CHAT, user(live))
        access = await ok(http, ACCESS, user(live))
    for reply in (chat, access):
        assert set(reply) == {"result", "data", "error_msg", "roomid", "liveid"}
        assert reply["roomid"] == live.roomid
        assert reply["liveid"] == live.liveid
    assert chat["data"] and all(set(item) == CHAT_FIELDS for item in chat["data"])
    assert access["data"] and all(set(item) == ACCESS_FIELDS for item in access["data"])
    assert chat["data"] == sim.dataset.records(live.liveid, "chat")
    assert access["data"] == sim.dataset.records(live.liveid, "access")


async def test_access_filters_by_viewerid() -> None:
    sim = Simulator(SPEC)
    live = busy_live(sim, "access")
    everyone = sim.dataset.records(live.liveid, "access")
    viewer = everyone[0]["viewerid"]
    async with connect(sim) as http:
        mine = await ok(http, ACCESS, user(live, viewerid=viewer))
    assert mine["data"] == [item for item in everyone if item["viewerid"] == viewer]
    assert 0 < len(mine["data"]) < len(everyone)


async def test_live_record_items() -> None:
    sim = Simulator(SPEC)
    async with connect(sim) as http:
        reply = await ok(http, LIVES, {"userid": DEMO_USERID, **WINDOW, "page_length": 100})
    assert set(reply) == PAGED
    assert reply["data"]
    assert all(set(item) == LIVE_FIELDS for item in reply["data"])
    assert [item["liveid"] for item in reply["data"]] == [
        live.liveid for live in sim.dataset.lives()
    ]


def _interaction_with_replies(sim: Simulator, kind: str) -> tuple[LiveInfo, dict[str, Any]]:
    for live in sim.dataset.lives():
        for record in sim.dataset.records(live.liveid, kind):
            if record["reply_data"]:
                return live, record
    raise AssertionError(f"no {kind} with replies")


@pytest.mark.parametrize(
    ("path", "kind", "publish", "reply"),
    [
        (
            VOTE,
            "vote",
            {
                "style",
                "choices",
                "publish_time",
                "roomid",
                "vote_id",
                "title",
                "uid",
                "liveid",
                "uname",
            },
            {"uid", "choices", "uname"},
        ),
        (
            ANSWERCARD,
            "answercard",
            {"qvote_id", "uid", "style", "count", "publish_time", "liveid", "correct"},
            {"uid", "choice", "reply_time"},
        ),
        (
            BRAINSTORM,
            "brainstorm",
            {
                "content",
                "brainsstom_id",
                "publish_time",
                "roomid",
                "title",
                "uid",
                "liveid",
                "uname",
            },
            {"content", "uid", "uname"},
        ),
    ],
)
async def test_interaction_records(
    path: str, kind: str, publish: set[str], reply: set[str]
) -> None:
    sim = Simulator(SPEC)
    live, record = _interaction_with_replies(sim, kind)
    async with connect(sim) as http:
        page = await ok(http, path, user(live, page_length=100))
    assert set(page) == PAGED
    assert record in page["data"]
    for item in page["data"]:
        assert set(item) == {"reply_data", "publish_data"}
        assert set(item["publish_data"]) == publish
        assert item["publish_data"]["liveid"] == live.liveid
        assert all(set(answer) == reply for answer in item["reply_data"])


async def test_reward_gather_and_client_info() -> None:
    sim = Simulator(SPEC)
    live = busy_live(sim, "reward")
    async with connect(sim) as http:
        reward = await ok(http, REWARD, user(live))
        gather = await ok(http, GATHER, user(live))
        info = await ok(http, CLIENT_INFO, {"userid": DEMO_USERID, "roomid": live.roomid})
        viewer = info["data"][0]["userid"]
        mine = await ok(
            http, CLIENT_INFO, {"userid": DEMO_USERID, "roomid": live.roomid, "viewerid": viewer}
        )
    assert set(reward) == PAGED
    assert reward["data"] == sim.dataset.records(live.liveid, "reward")
    assert all(
        set(item) == {"reward_time", "uname", "liveid", "type", "uid", "roomid"}
        for item in reward["data"]
    )
    assert set(gather["data"]) == {"locations", "roomid", "platforms", "liveid", "usercount"}
    assert set(gather["data"]["platforms"]) == {"5", "2", "3"}
    assert gather["data"]["usercount"] == sim.dataset.viewer_count(live.liveid)
    assert sum(gather["data"]["locations"].values()) == gather["data"]["usercount"]
    assert info["data"]
    assert all(
        set(item)
        == {
            "camera_enable",
            "submit_time",
            "roomid",
            "browser",
            "browser_kernel",
            "ip",
            "username",
            "micro_enable",
            "system",
            "userid",
            "screen_resolution",
        }
        for item in info["data"]
    )
    assert [item["userid"] for item in mine["data"]] == [viewer]


async def test_rollcall_reply() -> None:
    sim = Simulator(SPEC)
    live = busy_live(sim, "rollcall")
    params = {"account_id": DEMO_USERID, "live_id": live.liveid, "page_index": 1, "page_num": 500}
    async with connect(sim) as http:
        posted = await call(http, ROLLCALL, params, method="POST", body=params)
        got = await call(http, ROLLCALL, params)
    reply = posted.json()
    assert reply == got.json()
    assert set(reply) == {"result", "error", "data", "errorMsg"}
    assert reply["error"] is None
    assert reply["errorMsg"] == ""
    assert set(reply["data"]) == {"total", "size", "current", "data"}
    assert reply["data"]["data"] == sim.dataset.records(live.liveid, "rollcall")
    assert all(
        set(item)
        == {"live_id", "roll_call_id", "user_id", "user_name", "roll_call_status", "confirm_time"}
        for item in reply["data"]["data"]
    )


# --- parameters -------------------------------------------------------------------------------


def _param_fail(response: httpx.Response, *fragments: str) -> None:
    assert response.status_code == 200
    reply = response.json()
    assert reply["result"] == "FAIL", reply
    message = reply.get("error_msg", reply.get("errorMsg"))
    assert message.startswith("PARAM_ERROR: "), reply
    for fragment in fragments:
        assert fragment in message, reply


async def test_missing_and_foreign_parameters_fail_cleanly() -> None:
    sim = Simulator(SPEC)
    rooms = sim.dataset.rooms
    live = busy_live(sim)
    other_room = next(room for room in rooms if room != live.roomid)
    async with connect(sim) as http:
        _param_fail(
            await call(http, USERCOUNT, {"userid": DEMO_USERID}), "missing parameter liveid"
        )
        _param_fail(
            await call(http, CHAT, {"userid": DEMO_USERID, "liveid": live.liveid}), "roomid"
        )
        _param_fail(
            await call(http, USERCOUNT, {"userid": DEMO_USERID, "liveid": "FFFFFFFFFFFFFFFF"}),
            "FFFFFFFFFFFFFFFF",
        )
        _param_fail(await call(http, CHAT, {**user(live), "roomid": other_room}), "does not belong")
        _param_fail(await call(http, CHAT, {**user(live), "roomid": "NOSUCHROOM"}), "roomid")
        _param_fail(
            await call(http, REWARD, {"userid": DEMO_USERID, "roomid": live.roomid}), "liveid"
        )
        _param_fail(await call(http, LIVES, {"userid": DEMO_USERID}), "start_time")
        _param_fail(
            await call(
                http, LIVES, {"userid": DEMO_USERID, "start_time": "2026-11-01", "end_time": "x"}
            ),
            "start_time",
        )
        _param_fail(
            await call(
                http,
                LIVES,
                {
                    "userid": DEMO_USERID,
                    "start_time": "2026-11-02 00:00",
                    "end_time": "2026-11-01 00:00",
                },
            ),
            "end_time",
        )
        _param_fail(await call(http, MAX_PARALLEL, {"userid": DEMO_USERID}), "start_time")
        _param_fail(
            await call(
                http,
                MAX_PARALLEL,
                {"userid": DEMO_USERID, "start_time": "2026-11-01 00:00", "end_time": "2026-11-02"},
            ),
            "start_time must be YYYY-MM-DD",
        )
        for bad in ("0", "-1", "abc", "1.5"):
            _param_fail(await call(http, VOTE, {**user(live), "page_size": bad}), "page_size")
            _param_fail(await call(http, VOTE, {**user(live), "page_length": bad}), "page_length")
    assert sim.stats.param_failed == 19
    assert sim.stats.ok == 0


async def test_duplicate_parameter_fails() -> None:
    sim = Simulator(SPEC)
    live = busy_live(sim)
    query = sign({"userid": DEMO_USERID, "liveid": live.liveid}, DEMO_API_KEY)
    async with connect(sim) as http:
        _param_fail(await http.get(f"{USERCOUNT}?liveid={live.liveid}&{query}"), "duplicate")


@pytest.mark.parametrize("page_num", [0, 501, "ten"])
async def test_rollcall_page_num_outside_1_to_500_is_rejected(page_num: object) -> None:
    sim = Simulator(SPEC)
    live = busy_live(sim, "rollcall")
    params = {
        "account_id": DEMO_USERID,
        "live_id": live.liveid,
        "page_index": 1,
        "page_num": page_num,
    }
    async with connect(sim) as http:
        response = await call(http, ROLLCALL, params, method="POST", body=params)
    _param_fail(response, "page_num must be 1..500")
    assert response.json()["error"] == "PARAM_ERROR"
    assert response.json()["data"] is None


async def test_rollcall_requires_every_parameter() -> None:
    sim = Simulator(SPEC)
    live = busy_live(sim, "rollcall")
    full = {"account_id": DEMO_USERID, "live_id": live.liveid, "page_index": 1, "page_num": 5}
    async with connect(sim) as http:
        for missing in ("live_id", "page_index", "page_num"):
            params = {key: value for key, value in full.items() if key != missing}
            _param_fail(await call(http, ROLLCALL, params, method="POST", body=params), missing)


async def test_rollcall_json_body_must_agree_with_the_signed_query() -> None:
    sim = Simulator(SPEC)
    live = busy_live(sim, "rollcall")
    params = {"account_id": DEMO_USERID, "live_id": live.liveid, "page_index": 1, "page_num": 5}
    async with connect(sim) as http:
        other = {**params, "page_index": 2}
        _param_fail(await call(http, ROLLCALL, params, method="POST", body=other), "page_index")
        url = f"{ROLLCALL}?{sign(params, DEMO_API_KEY)}"
        broken = await http.post(
            url, content=b"{not json", headers={"content-type": "application/json"}
        )
        _param_fail(broken, "JSON")
        bare = await http.post(url)
        assert bare.json()["result"] == "OK"


async def test_unknown_path_is_a_404_with_a_fail_envelope() -> None:
    sim = Simulator(SPEC)
    async with connect(sim) as http:
        response = await call(http, "/collect/nothing/here", {"userid": DEMO_USERID})
    assert response.status_code == 404
    assert response.json()["result"] == "FAIL"
    assert sim.stats.not_found == 1


async def test_path_spellings_are_normalised() -> None:
    sim = Simulator(SPEC)
    live = busy_live(sim, "answercard")
    async with connect(sim) as http:
        double = await http.get(
            f"http://sim//collect/answercard/record?{sign(user(live), DEMO_API_KEY)}"
        )
        assert double.json()["result"] == "OK"
        single = {"userid": DEMO_USERID, "liveid": live.liveid}
        assert (await call(http, "/collect/live/usercount", single)).json()["result"] == "OK"
        assert (
            await call(http, "/collect/live/record/", {"userid": DEMO_USERID, **WINDOW})
        ).json()["result"] == "OK"
    assert sim.stats.by_path[ANSWERCARD] == 1
    assert sim.stats.by_path[USERCOUNT] == 1


async def test_other_methods_are_refused() -> None:
    sim = Simulator(SPEC)
    live = busy_live(sim)
    async with connect(sim) as http:
        response = await http.put(
            f"{USERCOUNT}?{sign({'userid': DEMO_USERID, 'liveid': live.liveid}, DEMO_API_KEY)}"
        )
    assert response.status_code == 405
    assert response.json()["result"] == "FAIL"


# --- pagination -------------------------------------------------------------------------------


async def test_live_record_pages_default_to_20_and_end_with_an_empty_page() -> None:
    sim = Simulator(DatasetSpec(lives=45))
    async with connect(sim) as http:
        pages = [
            await ok(http, LIVES, {"userid": DEMO_USERID, **WINDOW, "page_size": n})
            for n in (1, 2, 3, 4)
        ]
        first_default = await ok(http, LIVES, {"userid": DEMO_USERID, **WINDOW})
    assert first_default == pages[0]
    assert [page["page_size"] for page in pages] == [1, 2, 3, 4]
    assert {page["page_length"] for page in pages} == {20}
    assert {page["page_count"] for page in pages} == {3}
    assert [len(page["data"]) for page in pages] == [20, 20, 5, 0]
    seen = [item["liveid"] for page in pages for item in page["data"]]
    assert seen == [live.liveid for live in sim.dataset.lives()]


async def test_page_length_is_capped_and_the_reply_says_so() -> None:
    sim = Simulator(DatasetSpec(lives=45), SimConfig(max_page_length=7))
    async with connect(sim) as http:
        reply = await ok(http, LIVES, {"userid": DEMO_USERID, **WINDOW, "page_length": 50})
        last = await ok(
            http, LIVES, {"userid": DEMO_USERID, **WINDOW, "page_length": 50, "page_size": 7}
        )
    assert reply["page_length"] == 7
    assert len(reply["data"]) == 7
    assert reply["page_count"] == math.ceil(45 / 7)
    assert len(last["data"]) == 45 - 6 * 7


async def test_page_count_is_zero_when_there_is_nothing() -> None:
    sim = Simulator(SPEC)
    live = empty_live(sim)
    async with connect(sim) as http:
        none = await ok(
            http,
            LIVES,
            {
                "userid": DEMO_USERID,
                "start_time": "2030-01-01 00:00",
                "end_time": "2030-01-02 00:00",
            },
        )
        reward = await ok(http, REWARD, user(live))
        chat = await ok(http, CHAT, user(live))
    assert (none["data"], none["page_count"]) == ([], 0)
    assert (reward["data"], reward["page_count"]) == ([], 0)
    assert chat["data"] == []


async def test_chat_is_not_paginated_even_for_a_huge_live() -> None:
    sim = Simulator(SPEC)
    live = huge_live(sim)
    async with connect(sim) as http:
        reply = await ok(http, CHAT, user(live, page_size=2, page_length=10))
    assert len(reply["data"]) == sim.dataset.count(live.liveid, "chat") >= 1000
    assert "page_count" not in reply


async def test_rollcall_pages_report_total_size_and_current() -> None:
    sim = Simulator(DatasetSpec(lives=3, rollcall_per_live=40, empty_every=0))
    live = sim.dataset.lives()[0]
    everything = sim.dataset.records(live.liveid, "rollcall")
    total = len(everything)
    collected: list[dict[str, Any]] = []
    async with connect(sim) as http:
        for index in range(1, math.ceil(total / 7) + 2):
            params = {
                "account_id": DEMO_USERID,
                "live_id": live.liveid,
                "page_index": index,
                "page_num": 7,
            }
            data = (await call(http, ROLLCALL, params, method="POST", body=params)).json()["data"]
            assert (data["total"], data["size"], data["current"]) == (total, 7, index)
            collected.extend(data["data"])
    assert collected == everything
    assert len(data["data"]) == 0  # the page past the end


async def test_rollcall_page_size_can_be_capped_by_the_server() -> None:
    sim = Simulator(SPEC, SimConfig(max_rollcall_page_num=5))
    live = busy_live(sim, "rollcall")
    params = {"account_id": DEMO_USERID, "live_id": live.liveid, "page_index": 1, "page_num": 500}
    async with connect(sim) as http:
        data = (await call(http, ROLLCALL, params)).json()["data"]
    assert data["size"] == 5
    assert len(data["data"]) == min(5, data["total"])


# --- filters ----------------------------------------------------------------------------------


async def test_live_record_window_and_room_filters() -> None:
    sim = Simulator(DatasetSpec(lives=60, rooms=4))
    room = sim.dataset.rooms[1]
    params = {
        "userid": DEMO_USERID,
        "start_time": "2026-11-01 12:00",
        "end_time": "2026-11-02 06:30",
        "roomid": room,
        "page_length": 100,
    }
    async with connect(sim) as http:
        reply = await ok(http, LIVES, params)
    expected = sim.dataset.lives(datetime(2026, 11, 1, 12), datetime(2026, 11, 2, 6, 30), [room])
    assert expected, "the window should hold some lives of that room"
    assert [item["liveid"] for item in reply["data"]] == [live.liveid for live in expected]
    for item in reply["data"]:
        assert item["roomid"] == room
        assert "2026-11-01 12:00:00" <= item["start_time"] < "2026-11-02 06:30:00"


async def test_live_record_window_includes_its_start_and_excludes_its_end() -> None:
    sim = Simulator(SPEC)
    live = sim.dataset.lives()[3]
    minute = live.start_time.replace(second=0)
    fmt = "%Y-%m-%d %H:%M"
    inside = {
        "start_time": minute.strftime(fmt),
        "end_time": (minute + timedelta(minutes=1)).strftime(fmt),
    }
    before = {
        "start_time": (minute - timedelta(hours=1)).strftime(fmt),
        "end_time": minute.strftime(fmt),
    }
    async with connect(sim) as http:
        hit = await ok(http, LIVES, {"userid": DEMO_USERID, **inside})
        miss = await ok(http, LIVES, {"userid": DEMO_USERID, **before})
    assert live.liveid in {item["liveid"] for item in hit["data"]}
    assert live.liveid not in {item["liveid"] for item in miss["data"]}


@pytest.mark.parametrize(
    ("path", "kind"), [(VOTE, "vote"), (ANSWERCARD, "answercard"), (BRAINSTORM, "brainstorm")]
)
async def test_interactions_cover_the_whole_room_without_liveid(path: str, kind: str) -> None:
    sim = Simulator(SPEC, SimConfig(max_page_length=5))
    room = sim.dataset.rooms[0]
    room_lives = sim.dataset.room_lives(room)
    expected = [record for live in room_lives for record in sim.dataset.records(live.liveid, kind)]
    collected: list[dict[str, Any]] = []
    async with connect(sim) as http:
        first = await ok(http, path, {"userid": DEMO_USERID, "roomid": room, "page_length": 5})
        for page in range(1, first["page_count"] + 1):
            reply = await ok(
                http,
                path,
                {"userid": DEMO_USERID, "roomid": room, "page_length": 5, "page_size": page},
            )
            collected.extend(reply["data"])
        one = room_lives[0]
        single = await ok(http, path, user(one, page_length=100))
    assert len(room_lives) > 1
    assert first["page_count"] == math.ceil(len(expected) / 5)
    assert collected == expected
    assert single["data"] == sim.dataset.records(one.liveid, kind)
    assert len(single["data"]) < len(expected)


# --- ground truth ------------------------------------------------------------------------------


async def _harvest(
    http: httpx.AsyncClient, sim: Simulator, start: str, end: str
) -> dict[str, list[tuple[Any, ...]]]:
    """Pull every record of every kind for a window through the endpoints, page by page."""
    keys: dict[str, list[tuple[Any, ...]]] = {kind: [] for kind in DATA_KINDS}
    lives: list[dict[str, Any]] = []
    page = 1
    while True:
        reply = await ok(
            http,
            LIVES,
            {"userid": DEMO_USERID, "start_time": start, "end_time": end, "page_size": page},
        )
        lives.extend(reply["data"])
        if page >= reply["page_count"]:
            break
        page += 1
    for live in lives:
        liveid, roomid = live["liveid"], live["roomid"]
        base = {"userid": DEMO_USERID, "roomid": roomid, "liveid": liveid}
        for kind, path in (("chat", CHAT), ("access", ACCESS)):
            for record in (await ok(http, path, base))["data"]:
                keys[kind].append(record_key(kind, liveid, record))
        for kind, path in (
            ("vote", VOTE),
            ("answercard", ANSWERCARD),
            ("brainstorm", BRAINSTORM),
            ("reward", REWARD),
        ):
            page = 1
            while True:
                reply = await ok(http, path, {**base, "page_size": page, "page_length": 2})
                keys[kind].extend(record_key(kind, liveid, record) for record in reply["data"])
                if page >= reply["page_count"]:
                    break
                page += 1
        index = 1
        while True:
            params = {
                "account_id": DEMO_USERID,
                "live_id": liveid,
                "page_index": index,
                "page_num": 9,
            }
            data = (await call(http, ROLLCALL, params, method="POST", body=params)).json()["data"]
            keys["rollcall"].extend(
                record_key("rollcall", liveid, record) for record in data["data"]
            )
            if index * data["size"] >= data["total"]:
                break
            index += 1
    return keys


async def test_a_full_harvest_through_the_endpoints_matches_the_ground_truth() -> None:
    sim = Simulator(SPEC)
    start, end = "2026-11-01 06:00", "2026-11-02 18:00"
    async with connect(sim) as http:
        harvested = await _harvest(http, sim, start, end)
    truth = sim.dataset.truth(datetime(2026, 11, 1, 6), datetime(2026, 11, 2, 18))
    assert truth.lives
    for kind in DATA_KINDS:
        assert len(harvested[kind]) == len(set(harvested[kind])), f"{kind} duplicated"
        assert set(harvested[kind]) == truth.keys[kind], kind
    assert sum(len(keys) for keys in harvested.values()) == truth.total()
    assert truth.total() == sim.dataset.total_records(
        datetime(2026, 11, 1, 6), datetime(2026, 11, 2, 18)
    )


# --- rate limits ------------------------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after() -> None:
    sim = Simulator(SPEC, SimConfig(rate=0.01, burst=2))
    params = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
    async with connect(sim) as http:
        statuses = [(await call(http, USERCOUNT, params)) for _ in range(4)]
    assert [response.status_code for response in statuses] == [200, 200, 429, 429]
    limited = statuses[2]
    assert limited.json() == {"result": "FAIL", "data": None, "error_msg": "TOO_MANY_REQUEST"}
    retry_after = int(limited.headers["retry-after"])
    # ~1 token missing at 0.01 tokens/s: about 100 s, rounded up to whole seconds.
    assert 90 <= retry_after <= 100
    assert sim.stats.rate_limited == 2
    assert sim.stats.ok == 2


async def test_retry_after_knob_sets_what_the_429_advertises() -> None:
    sim = Simulator(SPEC, SimConfig(rate=100, burst=1, retry_after=60))
    params = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
    async with connect(sim) as http:
        await call(http, USERCOUNT, params)
        limited = await call(http, USERCOUNT, params)
    # The bucket would have a token within 10 ms; a per-minute quota says a minute.
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "60"


class Blocks:
    """Stands in for ``time.sleep`` as the stall's way of blocking: records, never waits."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


async def test_stalls_per_request_block_before_the_rate_check() -> None:
    blocks = Blocks()
    config = SimConfig(stall=0.25, stall_min=0.02, stall_max=0.15, block=blocks, rate=1e6)
    sim = Simulator(SPEC, config)
    params = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
    async with connect(sim) as http:
        for _ in range(200):
            assert (await call(http, USERCOUNT, params)).status_code == 200
        unsigned = await http.get(USERCOUNT)  # turned away before the stall: never stalls
    assert unsigned.json()["result"] == "FAIL"
    assert 25 <= len(blocks.seconds) <= 75  # a quarter of 200, drawn from a seeded RNG
    assert all(0.02 <= s <= 0.15 for s in blocks.seconds)
    assert sim.stats.stalls == len(blocks.seconds)
    assert sim.stats.stalled == pytest.approx(sum(blocks.seconds))
    # The same seed meets the same stalls after a reset.
    again = list(blocks.seconds)
    blocks.seconds.clear()
    sim.reset_behaviour()
    async with connect(sim) as http:
        for _ in range(200):
            await call(http, USERCOUNT, params)
    assert blocks.seconds == again


async def test_stalls_per_live_come_once_per_live() -> None:
    blocks = Blocks()
    sim = Simulator(SPEC, SimConfig(stall_live=1.0, block=blocks))
    lives = sim.dataset.lives()[:5]
    async with connect(sim) as http:
        for _ in range(3):
            for live in lives:
                await call(http, USERCOUNT, {"userid": DEMO_USERID, "liveid": live.liveid})
    assert len(blocks.seconds) == 5
    assert sim.stats.stalls == 5


def test_stall_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="stall"):
        SimConfig(stall=1.5)
    with pytest.raises(ValueError, match="stall_max"):
        SimConfig(stall_min=0.2, stall_max=0.1)
    with pytest.raises(ValueError, match="retry_after"):
        SimConfig(retry_after=0)


async def test_rate_limit_can_answer_with_a_fail_envelope_instead() -> None:
    sim = Simulator(SPEC, SimConfig(rate=0.01, burst=1, rate_limit_fail_fraction=1.0))
    live = busy_live(sim, "rollcall")
    params = {"userid": DEMO_USERID, "liveid": live.liveid}
    rollcall = {"account_id": DEMO_USERID, "live_id": live.liveid, "page_index": 1, "page_num": 5}
    async with connect(sim) as http:
        await call(http, USERCOUNT, params)
        limited = await call(http, USERCOUNT, params)
        limited_rollcall = await call(http, ROLLCALL, rollcall, method="POST", body=rollcall)
    assert limited.status_code == 200
    assert "retry-after" not in limited.headers
    assert limited.json() == {"result": "FAIL", "data": None, "error_msg": "TOO_MANY_REQUEST"}
    assert limited_rollcall.json() == {
        "result": "FAIL",
        "error": "TOO_MANY_REQUEST",
        "data": None,
        "errorMsg": "TOO_MANY_REQUEST",
    }


async def test_rate_limit_mix_of_429_and_fail() -> None:
    sim = Simulator(SPEC, SimConfig(rate=0.01, burst=1, rate_limit_fail_fraction=0.5, fault_seed=3))
    params = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
    async with connect(sim) as http:
        replies = [await call(http, USERCOUNT, params) for _ in range(41)]
    limited = replies[1:]
    statuses = [response.status_code for response in limited]
    assert all(response.json()["error_msg"] == "TOO_MANY_REQUEST" for response in limited)
    assert 5 <= statuses.count(200) <= 35
    assert statuses.count(200) + statuses.count(429) == 40


async def test_rate_limit_is_per_account() -> None:
    accounts = {DEMO_USERID: DEMO_API_KEY, "SECOND0000000001": "second-key"}
    sim = Simulator(SPEC, SimConfig(accounts=accounts, rate=0.01, burst=1))
    liveid = busy_live(sim).liveid
    async with connect(sim) as http:
        assert (
            await call(http, USERCOUNT, {"userid": DEMO_USERID, "liveid": liveid})
        ).status_code == 200
        assert (
            await call(http, USERCOUNT, {"userid": DEMO_USERID, "liveid": liveid})
        ).status_code == 429
        other = await call(
            http, USERCOUNT, {"userid": "SECOND0000000001", "liveid": liveid}, key="second-key"
        )
        assert other.status_code == 200


async def test_rate_limit_per_path_adds_to_the_account_bucket() -> None:
    config = SimConfig(rate=1000.0, burst=100, path_rates={"/collect/live/usercount": (0.01, 1)})
    sim = Simulator(SPEC, config)
    single = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
    async with connect(sim) as http:
        assert (await call(http, USERCOUNT, single)).status_code == 200
        assert (await call(http, USERCOUNT, single)).status_code == 429
        assert (await call(http, DURATION, single)).status_code == 200


async def test_rejected_requests_spend_no_token() -> None:
    # A token bucket on a hand-driven clock: rejections must not push admission further away.
    from cc_collect_async.sim.behaviour import AccountBuckets

    now = [100.0]
    limiter = AccountBuckets(2.0, 1, {}, clock=lambda: now[0])
    assert limiter.acquire("a", "/p") == 0.0
    waits = [limiter.acquire("a", "/p") for _ in range(5)]
    assert waits == [pytest.approx(0.5)] * 5
    now[0] += 0.5
    assert limiter.acquire("a", "/p") == 0.0
    assert limiter.acquire("a", "/p") == pytest.approx(0.5)
    now[0] += 10  # refills up to the burst only
    assert limiter.acquire("a", "/p") == 0.0
    assert limiter.acquire("a", "/p") > 0.0


# --- faults -----------------------------------------------------------------------------------


def faulty(kind: str, cap: int = 1, **extra: Any) -> Simulator:
    config = SimConfig(fault_rate=1.0, fault_kinds=(kind,), max_faults_per_request=cap, **extra)
    return Simulator(SPEC, config)


@pytest.mark.parametrize(("kind", "status"), [("http500", 500), ("http502", 502), ("http503", 503)])
async def test_http_error_faults_have_an_html_body(kind: str, status: int) -> None:
    sim = faulty(kind)
    params = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
    async with connect(sim) as http:
        failed = await call(http, USERCOUNT, params)
        # A retry re-signs with another timestamp: still the same request for the fault cap.
        retried = await call(http, USERCOUNT, params, clock=lambda: time.time() + 1)
    assert failed.status_code == status
    assert failed.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        json.loads(failed.content)
    assert retried.status_code == 200
    assert retried.json()["result"] == "OK"
    assert sim.stats.faults == {kind: 1}
    assert sim.stats.ok == 1


async def test_drop_fault_is_a_remote_protocol_error() -> None:
    sim = faulty("drop")
    params = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
    async with connect(sim) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await call(http, USERCOUNT, params)
        assert (await call(http, USERCOUNT, params)).json()["result"] == "OK"
    assert sim.stats.faults == {"drop": 1}


async def test_truncate_fault_cuts_the_json_with_a_matching_content_length() -> None:
    sim = faulty("truncate")
    live = busy_live(sim)
    async with connect(sim) as http:
        cut = await call(http, CHAT, user(live))
        whole = await call(http, CHAT, user(live))
    assert cut.status_code == 200
    assert int(cut.headers["content-length"]) == len(cut.content)
    assert whole.content.startswith(cut.content)
    assert len(cut.content) == len(whole.content) // 2
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)
    assert whole.json()["result"] == "OK"


async def test_slow_fault_still_answers() -> None:
    sim = faulty("slow", slow_seconds=0.01)
    params = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
    async with connect(sim) as http:
        reply = await call(http, USERCOUNT, params)
    assert reply.json()["result"] == "OK"
    assert sim.stats.faults == {"slow": 1}
    assert sim.stats.ok == 1


async def test_process_fail_fault_is_a_fail_envelope() -> None:
    sim = faulty("process_fail")
    live = busy_live(sim, "rollcall")
    rollcall = {"account_id": DEMO_USERID, "live_id": live.liveid, "page_index": 1, "page_num": 5}
    async with connect(sim) as http:
        plain = await call(http, USERCOUNT, {"userid": DEMO_USERID, "liveid": live.liveid})
        styled = await call(http, ROLLCALL, rollcall, method="POST", body=rollcall)
    assert plain.status_code == 200
    assert plain.json() == {"result": "FAIL", "data": None, "error_msg": "PROCESS_FAIL"}
    assert styled.json() == {
        "result": "FAIL",
        "error": "PROCESS_FAIL",
        "data": None,
        "errorMsg": "PROCESS_FAIL",
    }


async def test_fault_cap_per_distinct_request() -> None:
    sim = faulty("http503", cap=3)
    first, second = (live.liveid for live in sim.dataset.lives()[:2])
    async with connect(sim) as http:
        one = [
            (await call(http, USERCOUNT, {"userid": DEMO_USERID, "liveid": first})).status_code
            for _ in range(5)
        ]
        two = [
            (await call(http, USERCOUNT, {"userid": DEMO_USERID, "liveid": second})).status_code
            for _ in range(5)
        ]
    assert one == [503, 503, 503, 200, 200]
    assert two == [503, 503, 503, 200, 200]
    assert sim.stats.faults == {"http503": 6}


async def test_no_faults_when_the_cap_is_zero_or_the_rate_is_zero() -> None:
    for config in (
        SimConfig(fault_rate=1.0, max_faults_per_request=0),
        SimConfig(fault_rate=0.0),
    ):
        sim = Simulator(SPEC, config)
        params = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
        async with connect(sim) as http:
            for _ in range(20):
                assert (await call(http, USERCOUNT, params)).status_code == 200
        assert sim.stats.faults == {}


async def test_fault_draws_are_reproducible_from_the_fault_seed() -> None:
    async def pattern(seed: int) -> list[str]:
        sim = Simulator(
            SPEC,
            SimConfig(
                fault_rate=0.5,
                fault_kinds=("http500", "http503", "process_fail"),
                fault_seed=seed,
                max_faults_per_request=100,
            ),
        )
        outcome = []
        async with connect(sim) as http:
            for live in sim.dataset.lives():
                response = await call(
                    http, USERCOUNT, {"userid": DEMO_USERID, "liveid": live.liveid}
                )
                outcome.append(f"{response.status_code}:{response.text[:40]}")
        return outcome

    first = await pattern(1)
    assert first == await pattern(1)
    assert first != await pattern(2)
    assert any(entry.startswith("200:") for entry in first)
    assert any(not entry.startswith('200:{"result":"OK"') for entry in first)


async def test_latency_and_jitter_still_answer() -> None:
    sim = Simulator(SPEC, SimConfig(latency=0.001, jitter=0.002))
    params = {"userid": DEMO_USERID, "liveid": busy_live(sim).liveid}
    async with connect(sim) as http:
        assert (await call(http, USERCOUNT, params)).json()["result"] == "OK"


async def test_counters_and_reset() -> None:
    sim = Simulator(SPEC, SimConfig(rate=0.01, burst=2))
    live = busy_live(sim)
    async with connect(sim) as http:
        await call(http, USERCOUNT, {"userid": DEMO_USERID, "liveid": live.liveid})
        await call(http, USERCOUNT, {"userid": DEMO_USERID, "liveid": live.liveid}, key="bad")
        await call(http, DURATION, {"userid": DEMO_USERID})
        await call(http, DURATION, {"userid": DEMO_USERID, "liveid": live.liveid})
        await http.get("/nowhere")
        stats = (await http.get("/_sim/stats")).json()
    assert sim.stats.as_dict() == stats
    # The three requests that passed authentication reached the rate check (when depends on
    # how fast this machine runs them).
    assert sum(stats.pop("arrivals_per_100ms")) == 3
    assert sum(stats.pop("refusals_per_100ms")) == 1
    assert stats == {
        "requests": 5,
        "ok": 1,
        "rate_limited": 1,
        "auth_failed": 1,
        "param_failed": 1,
        "not_found": 1,
        "stalls": 0,
        "stalled": 0.0,
        "faults": {},
        "by_path": {USERCOUNT: 2, DURATION: 2},
    }
    sim.reset_stats()
    assert sim.stats.requests == 0
    async with connect(sim) as http:
        # Buckets survive reset_stats; the control route resets them too.
        assert (
            await call(http, USERCOUNT, {"userid": DEMO_USERID, "liveid": live.liveid})
        ).status_code == 429
        assert (await http.post("/_sim/reset")).json() == {"reset": True}
        assert (
            await call(http, USERCOUNT, {"userid": DEMO_USERID, "liveid": live.liveid})
        ).status_code == 200
    assert sim.stats.requests == 1


# --- control routes -------------------------------------------------------------------------


async def test_truth_control_route_matches_the_python_api() -> None:
    sim = Simulator(SPEC)
    room = sim.dataset.rooms[2]
    async with connect(sim) as http:
        everything = (await http.get("/_sim/truth")).json()
        window = (
            await http.get(
                "/_sim/truth",
                params={"start": "2026-11-01 10:00", "end": "2026-11-02 10:00", "roomid": room},
            )
        ).json()
        bad = await http.get("/_sim/truth", params={"start": "yesterday"})
        missing = await http.get("/_sim/nothing")
    assert everything == sim.dataset.truth().to_json()
    expected = sim.dataset.truth(datetime(2026, 11, 1, 10), datetime(2026, 11, 2, 10), [room])
    assert window == expected.to_json()
    assert [live["liveid"] for live in window["lives"]] == [live.liveid for live in expected.lives]
    assert {kind: len(keys) for kind, keys in window["keys"].items()} == {
        kind: len(keys) for kind, keys in expected.keys.items()
    }
    assert {tuple(key) for key in window["keys"]["chat"]} == expected.keys["chat"]
    assert bad.status_code == 400
    assert missing.status_code == 404
    assert sim.stats.requests == 0  # control traffic is not client traffic


def test_a_path_rate_without_an_account_rate_limits_that_path_only() -> None:
    """``--path-rate`` alone: every other path went to max() of no buckets (HTTP 500)."""
    from cc_collect_async.sim.behaviour import AccountBuckets

    now = [100.0]
    limiter = AccountBuckets(None, 1, {"/limited": (1.0, 1)}, clock=lambda: now[0])
    assert [limiter.acquire("a", "/other") for _ in range(50)] == [0.0] * 50
    assert limiter.acquire("a", "/limited") == 0.0
    assert limiter.acquire("a", "/limited") == pytest.approx(1.0)
