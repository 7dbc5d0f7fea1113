"""examples/fastapi_app.py under a real uvicorn in a subprocess, against the simulator over
loopback: many page views of one live make one vendor call; a failing vendor is answered
from the cache; the Prometheus scrape parses and carries no live or room id."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cc_collect_async.metrics import HTTP_DURATION_BUCKETS
from cc_collect_async.sim import (
    DEMO_API_KEY,
    DEMO_USERID,
    DatasetSpec,
    SimConfig,
    Simulator,
    serve,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SPEC = DatasetSpec(lives=4)


class SwitchableVendor:
    """An ASGI app that forwards to whichever simulator is current, so a test can make the
    vendor start failing while the web app keeps its connections and its cache."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.sim(scope, receive, send)


class WebApp:
    def __init__(self, url: str, vendor: SwitchableVendor) -> None:
        self.url = url
        self.vendor = vendor


@pytest.fixture
def latency() -> float:
    return 0.3


@pytest.fixture
def web_app(latency: float) -> Iterator[WebApp]:
    vendor = SwitchableVendor(Simulator(SPEC, SimConfig(latency=latency)))
    with serve(vendor) as sim_url:  # type: ignore[arg-type]
        # uvicorn gets an already listening socket, so the port is known before it starts.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        env = {
            **os.environ,
            "CC_USERID": DEMO_USERID,
            "CC_API_KEY": DEMO_API_KEY,
            "CC_BASE_URL": sim_url,
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "fastapi_app:app",
                "--app-dir",
                str(EXAMPLES),
                "--fd",
                str(sock.fileno()),
                "--log-level",
                "warning",
            ],
            env=env,
            pass_fds=[sock.fileno()],
            stdin=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/metrics", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, "the web app exited during startup"
                assert time.monotonic() < deadline, "the web app did not start in 30 s"
                time.sleep(0.05)
            yield WebApp(url, vendor)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            sock.close()


def _a_live(sim: Simulator) -> tuple[str, str]:
    live = sim.dataset.lives(None, None, None)[0]
    return live.roomid, live.liveid


async def _get_many(url: str, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        responses: list[httpx.Response] = []

        async def one() -> None:
            responses.append(await http.get(url))

        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(one)
    return responses


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_a_hundred_page_views_of_one_live_make_one_vendor_call(web_app: WebApp) -> None:
    sim = web_app.vendor.sim
    roomid, liveid = _a_live(sim)
    sim.reset_stats()
    responses = anyio.run(_get_many, f"{web_app.url}/lives/{roomid}/{liveid}/summary", 100)
    assert [r.status_code for r in responses] == [200] * 100
    bodies = {r.text for r in responses}
    assert len(bodies) == 1
    assert (sim.stats.requests, sim.stats.by_path) == (1, {"/collect/live/gather": 1})
    expected = sim.dataset.gather(liveid)
    assert responses[0].json()["usercount"] == expected["usercount"]

    scrape = httpx.get(f"{web_app.url}/metrics")
    samples = _samples(scrape.text)
    lookups = {
        dict(labels)["outcome"]: value
        for (name, labels), value in samples.items()
        if name == "cc_collect_cache_lookups_total" and dict(labels)["endpoint"] == "summary"
    }
    assert lookups.get("miss") == 1
    assert lookups.get("joined", 0) + lookups.get("hit", 0) == 99
    sent = ("endpoint", "summary"), ("error_type", ""), ("method", "GET"), ("status", "200")
    assert samples[("cc_collect_requests_total", sent)] == 1
    assert samples[("cc_collect_calls_total", (("endpoint", "summary"), ("outcome", "ok")))] == 1
    bounds = {
        float(dict(labels)["le"])
        for name, labels in samples
        if name == "cc_collect_request_duration_seconds_bucket"
    }
    assert bounds == {*HTTP_DURATION_BUCKETS, math.inf}
    label_values = {value for _name, labels in samples for _key, value in labels}
    assert roomid not in label_values and liveid not in label_values


def test_a_failing_vendor_is_answered_from_the_cache(web_app: WebApp) -> None:
    roomid, liveid = _a_live(web_app.vendor.sim)
    other = web_app.vendor.sim.dataset.lives(None, None, None)[1]
    url = f"{web_app.url}/lives/{roomid}/{liveid}/summary"
    first = httpx.get(url, timeout=30)
    assert first.status_code == 200

    # From now on every request fails: HTTP 503 on every attempt, however often retried.
    failing = Simulator(
        SPEC,
        SimConfig(fault_rate=1.0, fault_kinds=("http503",), max_faults_per_request=1_000_000),
    )
    web_app.vendor.sim = failing
    again = httpx.get(f"{url}?refresh=true", timeout=30)
    assert failing.stats.requests == 3  # the interactive policy's attempts, all refused
    assert again.status_code == 200 and again.json() == first.json()

    uncached = httpx.get(f"{web_app.url}/lives/{other.roomid}/{other.liveid}/summary", timeout=30)
    assert uncached.status_code == 503  # nothing to fall back on


async def _leader_gone(web_app: WebApp, url: str) -> list[httpx.Response]:
    sim = web_app.vendor.sim
    others: list[httpx.Response] = []
    async with httpx.AsyncClient(timeout=30) as http:

        async def joined() -> float:
            scrape = (await http.get(f"{web_app.url}/metrics")).text
            return _samples(scrape).get(
                (
                    "cc_collect_cache_lookups_total",
                    (("endpoint", "summary"), ("outcome", "joined")),
                ),
                0.0,
            )

        async def other() -> None:
            others.append(await http.get(url))

        async with anyio.create_task_group() as tg:
            first = anyio.CancelScope()

            async def leader() -> None:
                with first:
                    await http.get(url)
                    raise AssertionError("the first visitor was to leave before the answer")

            tg.start_soon(leader)
            with anyio.fail_after(20):
                while sim.stats.requests == 0:  # noqa: ASYNC110 (the sim runs in a thread)
                    await anyio.sleep(0.02)  # until the first visitor's call is at the vendor
                for _ in range(4):
                    tg.start_soon(other)
                while await joined() < 4:  # noqa: ASYNC110 (state of another process)
                    await anyio.sleep(0.02)
            first.cancel()  # the visitor closes the connection mid-flight
    return others


@pytest.mark.parametrize("latency", [2.0])
def test_a_visitor_leaving_mid_flight_hands_the_call_to_the_others(web_app: WebApp) -> None:
    sim = web_app.vendor.sim
    roomid, liveid = _a_live(sim)
    sim.reset_stats()
    url = f"{web_app.url}/lives/{roomid}/{liveid}/summary"
    others = anyio.run(_leader_gone, web_app, url)
    assert [r.status_code for r in others] == [200] * 4
    assert {r.json()["usercount"] for r in others} == {sim.dataset.gather(liveid)["usercount"]}
    # The first call was abandoned at the vendor; one of the others made it again.
    assert sim.stats.by_path == {"/collect/live/gather": 2}
