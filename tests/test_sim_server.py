"""The simulator on real loopback TCP: uvicorn in a thread, in a subprocess, and its CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from cc_collect_async.sim import (
    DEMO_API_KEY,
    DEMO_USERID,
    Dataset,
    DatasetSpec,
    SimConfig,
    Simulator,
    serve,
    spawn,
)
from cc_collect_async.sim.options import parse_args, to_argv
from cc_collect_async.thqs import sign

USERCOUNT = "/collect/live/usercount/"
CHAT = "/collect/live/chat/record/"
SPEC = DatasetSpec(lives=10)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def signed(path: str, params: Mapping[str, object], key: str = DEMO_API_KEY) -> str:
    return f"{path}?{sign(params, key)}"


def test_serve_answers_over_tcp_and_stops() -> None:
    sim = Simulator(SPEC)
    live = sim.dataset.lives()[0]
    with serve(sim) as url:
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url) as http:
            reply = http.get(signed(USERCOUNT, {"userid": DEMO_USERID, "liveid": live.liveid}))
            assert reply.json() == {
                "result": "OK",
                "data": {"livecount": sim.dataset.viewer_count(live.liveid)},
                "error_msg": "",
            }
            assert http.get("/_sim/stats").json()["ok"] == 1
    assert sim.stats.ok == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_sim/stats", timeout=2)


@pytest.mark.anyio
async def test_faults_over_tcp_look_like_network_failures() -> None:
    sim = Simulator(
        SPEC,
        SimConfig(
            fault_rate=1.0, fault_kinds=("drop", "truncate", "http502"), max_faults_per_request=3
        ),
    )
    live = next(live for live in sim.dataset.lives() if sim.dataset.count(live.liveid, "chat"))
    params = {"userid": DEMO_USERID, "roomid": live.roomid, "liveid": live.liveid}
    seen: set[str] = set()
    with serve(sim) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            # Three faults then a clean answer, in an order fixed by the fault seed.
            for _ in range(4):
                try:
                    response = await http.get(signed(CHAT, params))
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    seen.add("drop")
                    continue
                if response.status_code == 502:
                    assert response.headers["content-type"].startswith("text/html")
                    seen.add("http502")
                    continue
                try:
                    body = response.json()
                except json.JSONDecodeError:
                    assert int(response.headers["content-length"]) == len(response.content)
                    seen.add("truncate")
                    continue
                assert body["result"] == "OK"
                assert body["data"] == sim.dataset.records(live.liveid, "chat")
                seen.add("ok")
    assert sum(sim.stats.faults.values()) == 3
    assert seen == set(sim.stats.faults) | {"ok"}


@pytest.mark.anyio
async def test_drop_over_tcp_is_a_protocol_error_not_a_500() -> None:
    sim = Simulator(SPEC, SimConfig(fault_rate=1.0, fault_kinds=("drop",)))
    live = sim.dataset.lives()[0]
    with serve(sim) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                await http.get(signed(USERCOUNT, {"userid": DEMO_USERID, "liveid": live.liveid}))
            # The pool recovers: the next request opens a fresh connection.
            second = await http.get("/_sim/stats")
            assert second.json()["faults"] == {"drop": 1}


def test_options_round_trip_through_argv() -> None:
    spec = DatasetSpec(seed=3, lives=50, rooms=5, chat_per_live=7, huge_every=0)
    config = SimConfig(
        accounts={"A": "key-a", "B": "key-b"},
        rate=2.5,
        burst=4,
        path_rates={"/collect/live/chat/record/": (1.0, 2)},
        rate_limit_fail_fraction=0.25,
        fault_rate=0.1,
        fault_kinds=("drop", "slow"),
        latency=0.02,
        max_page_length=30,
        retry_after=60,
        stall=0.01,
        stall_live=0.5,
        stall_min=0.03,
        stall_max=0.2,
    )
    options = parse_args(["--port", "0", *to_argv(spec, config)])
    assert options.spec == spec
    assert options.config == config
    assert to_argv(None, None) == []
    defaults = parse_args([])
    assert (defaults.spec, defaults.config) == (DatasetSpec(), SimConfig())


def test_options_refuse_a_non_loopback_host() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--host", "0.0.0.0"])


def test_spawn_runs_the_same_simulator_in_another_process() -> None:
    spec = DatasetSpec(seed=11, lives=6)
    expected = Dataset(spec)
    live = expected.lives()[0]
    with spawn(spec, SimConfig(rate=0.01, burst=1)) as url, httpx.Client(base_url=url) as http:
        first = http.get(signed(USERCOUNT, {"userid": DEMO_USERID, "liveid": live.liveid}))
        second = http.get(signed(USERCOUNT, {"userid": DEMO_USERID, "liveid": live.liveid}))
        truth = http.get("/_sim/truth").json()
    assert first.json()["data"] == {"livecount": expected.viewer_count(live.liveid)}
    assert second.status_code == 429
    assert truth == expected.truth().to_json()


def test_command_line_prints_url_and_accounts_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "cc_collect_async.sim", "--port", "0", "--lives", "4"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url_line = process.stdout.readline()
        account_line = process.stdout.readline()
        assert url_line.startswith("URL http://127.0.0.1:")
        assert account_line.split() == ["ACCOUNT", DEMO_USERID, DEMO_API_KEY]
        url = url_line.split()[1]
        lives = httpx.get(
            url
            + signed(
                "/collect/live/record",
                {
                    "userid": DEMO_USERID,
                    "start_time": "2026-11-01 00:00",
                    "end_time": "2026-11-03 00:00",
                },
            ),
            timeout=10,
        ).json()
        assert len(lives["data"]) == 4
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_serve_picks_distinct_free_ports() -> None:
    with serve(Simulator(SPEC)) as one, serve(Simulator(SPEC)) as two:
        assert one != two
        assert httpx.get(f"{one}/_sim/stats").status_code == 200
        assert httpx.get(f"{two}/_sim/stats").status_code == 200


def test_listening_socket_is_tcp_so_replies_are_not_delayed_by_nagle() -> None:
    # asyncio sets TCP_NODELAY only on accepted sockets whose proto is TCP; a socket made
    # with proto 0 made every reply wait ~40 ms for a delayed ACK.
    from cc_collect_async.sim.server import _bind

    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
