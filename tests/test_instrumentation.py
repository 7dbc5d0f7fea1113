"""The instrumentation hooks on the request path and the harvest, a hook that raises, and
the OpenTelemetry adapter read back through the SDK's in-memory reader."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio
import httpx
import pytest
import respx
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from cc_collect_async import (
    AttemptEvent,
    CacheEvent,
    CallEvent,
    CollectClient,
    Instrumentation,
    ResponseCache,
    RetryPolicy,
    ServerError,
    UnitEvent,
)
from cc_collect_async.harvest import Harvester, MemorySink, Window
from cc_collect_async.metrics import HTTP_DURATION_BUCKETS
from cc_collect_async.metrics.otel import OpenTelemetryInstrumentation
from cc_collect_async.sim import DEMO_API_KEY, DEMO_USERID, DatasetSpec, Simulator

pytestmark = pytest.mark.anyio

GATHER = "/collect/live/gather"
OK = {"result": "OK", "data": {"liveid": "L1", "roomid": "R1", "usercount": 3}}


class Recorder(Instrumentation):
    def __init__(self) -> None:
        self.events: list[object] = []

    def on_attempt(self, event: AttemptEvent) -> None:
        self.events.append(event)

    def on_call(self, event: CallEvent) -> None:
        self.events.append(event)

    def on_cache(self, event: CacheEvent) -> None:
        self.events.append(event)

    def on_unit(self, event: UnitEvent) -> None:
        self.events.append(event)


async def test_attempts_and_calls_are_reported(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    router.get(GATHER).mock(side_effect=[httpx.Response(503), httpx.Response(200, json=OK)])
    recorder = Recorder()
    async with make_client(instrumentation=recorder) as client:
        await client.summary("R1", "L1")
    first, second, call = recorder.events
    assert isinstance(first, AttemptEvent) and isinstance(second, AttemptEvent)
    assert (first.endpoint, first.path, first.method) == ("summary", GATHER, "GET")
    assert (first.server_address, first.server_port) == ("ccapi.csslcloud.net", None)
    assert (first.attempt, first.status, first.error_type) == (1, 503, "ServerError")
    assert (second.attempt, second.status, second.error_type) == (2, 200, None)
    assert first.duration >= 0 and first.limiter_wait >= 0
    assert call == CallEvent(endpoint="summary", attempts=2, outcome="ok", duration=call.duration)


async def test_a_failed_call_and_a_transport_error_are_reported(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    router.get(GATHER).mock(side_effect=httpx.ConnectError("refused"))
    recorder = Recorder()
    async with make_client(instrumentation=[recorder], retry=RetryPolicy(max_attempts=2)) as c:
        with pytest.raises(Exception, match="refused"):
            await c.summary("R1", "L1")
    attempts = [e for e in recorder.events if isinstance(e, AttemptEvent)]
    assert [(a.status, a.error_type) for a in attempts] == [(None, "TransportError")] * 2
    call = recorder.events[-1]
    assert isinstance(call, CallEvent)
    assert (call.endpoint, call.attempts, call.outcome) == ("summary", 2, "TransportError")


async def test_a_call_cancelled_on_the_wire_is_reported(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    # A visitor who leaves cancels the call: the vendor still counted the attempt, and a
    # dashboard of attempts and calls must say so (by one name on asyncio and trio).
    async def hang(request: httpx.Request) -> httpx.Response:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    router.get(GATHER).mock(side_effect=[httpx.Response(503), hang])
    recorder = Recorder()
    async with make_client(instrumentation=recorder) as client:
        with anyio.move_on_after(0.2):
            await client.summary("R1", "L1")
    first, second, call = recorder.events
    assert isinstance(first, AttemptEvent) and isinstance(second, AttemptEvent)
    assert (first.attempt, first.error_type) == (1, "ServerError")
    assert (second.attempt, second.status, second.error_type) == (2, None, "Cancelled")
    assert isinstance(call, CallEvent)
    assert (call.attempts, call.outcome) == (2, "Cancelled")
    assert client.stats.requests == 2


async def test_a_hook_that_raises_is_logged_once_and_ignored(
    router: respx.Router,
    make_client: Callable[..., CollectClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    router.get(GATHER).mock(return_value=httpx.Response(200, json=OK))

    class Broken(Instrumentation):
        def on_attempt(self, event: AttemptEvent) -> None:
            raise RuntimeError("dashboard down")

    recorder = Recorder()
    caplog.set_level(logging.ERROR, logger="cc_collect_async.instrumentation")
    async with make_client(instrumentation=[Broken(), recorder]) as client:
        for _ in range(3):
            assert (await client.summary("R1", "L1")).usercount == 3
    logged = [r for r in caplog.records if "Broken.on_attempt" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None
    # The instrument after the broken one still hears everything.
    assert sum(isinstance(e, AttemptEvent) for e in recorder.events) == 3


async def test_cache_lookups_reach_the_hooks(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    router.get(GATHER).mock(return_value=httpx.Response(200, json=OK))
    recorder = Recorder()
    async with make_client(instrumentation=recorder, cache=ResponseCache()) as client:
        await client.summary("R1", "L1")
        await client.summary("R1", "L1")
    outcomes = [e.outcome for e in recorder.events if isinstance(e, CacheEvent)]
    assert outcomes == ["miss", "hit"]
    assert sum(isinstance(e, AttemptEvent) for e in recorder.events) == 1


async def test_each_harvest_unit_is_reported() -> None:
    sim = Simulator(DatasetSpec(lives=3, rooms=1))
    recorder = Recorder()
    async with CollectClient(
        DEMO_USERID,
        DEMO_API_KEY,
        base_url="http://sim",
        transport=sim.transport(),
        instrumentation=recorder,
    ) as client:
        harvester = Harvester(
            client,
            window=Window(datetime(2026, 11, 1), datetime(2026, 11, 3)),
            kinds=["chat", "vote"],
        )
        await harvester.run(MemorySink())
    units = [e for e in recorder.events if isinstance(e, UnitEvent)]
    assert len(units) == 6 and {u.outcome for u in units} == {"ok"}
    truth = sim.truth()
    for kind in ("chat", "vote"):
        assert sum(u.records for u in units if u.kind == kind) == len(truth.keys[kind])
    assert all(u.pages >= 1 for u in units if u.kind == "vote")
    # The harvest's own requests are reported too, through its derived client.
    assert {e.endpoint for e in recorder.events if isinstance(e, CallEvent)} == {
        "lives",
        "chat",
        "vote",
    }


def _points(reader: InMemoryMetricReader) -> dict[str, tuple[Any, list[Any]]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, tuple[Any, list[Any]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "cc_collect_async"
            for metric in scope.metrics:
                found[metric.name] = (metric, list(metric.data.data_points))
    return found


async def test_opentelemetry_follows_the_http_client_conventions(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    router.get(GATHER).mock(side_effect=[httpx.Response(429), httpx.Response(200, json=OK)])
    reader = InMemoryMetricReader()
    otel = OpenTelemetryInstrumentation(MeterProvider(metric_readers=[reader]))
    async with make_client(instrumentation=otel, cache=ResponseCache()) as client:
        await client.summary("R1", "L1")
        await client.summary("R1", "L1")
    found = _points(reader)
    metric, points = found["http.client.request.duration"]
    assert metric.unit == "s"
    assert all(isinstance(p, HistogramDataPoint) for p in points)
    assert all(tuple(p.explicit_bounds) == HTTP_DURATION_BUCKETS for p in points)
    by_status = {p.attributes["http.response.status_code"]: dict(p.attributes) for p in points}
    assert by_status[429] == {
        "http.request.method": "GET",
        "server.address": "ccapi.csslcloud.net",
        "url.template": GATHER,
        "http.response.status_code": 429,
        "error.type": "RateLimitedError",
    }
    assert "error.type" not in by_status[200]
    _, calls = found["cc_collect.calls"]
    assert [(dict(p.attributes), p.value) for p in calls] == [
        ({"cc_collect.endpoint": "summary", "cc_collect.outcome": "ok"}, 1)
    ]
    _, lookups = found["cc_collect.cache.lookups"]
    assert sorted(p.attributes["cc_collect.outcome"] for p in lookups) == ["hit", "miss"]
    # No live or room id anywhere among the attributes.
    values = {str(v) for _, (_, pts) in found.items() for p in pts for v in p.attributes.values()}
    assert not values & {"L1", "R1"}


async def test_opentelemetry_without_an_sdk_is_a_no_op(
    router: respx.Router, make_client: Callable[..., CollectClient]
) -> None:
    router.get(GATHER).mock(return_value=httpx.Response(200, json=OK))
    async with make_client(instrumentation=OpenTelemetryInstrumentation()) as client:
        assert (await client.summary("R1", "L1")).usercount == 3


async def test_unit_counters_in_opentelemetry() -> None:
    reader = InMemoryMetricReader()
    otel = OpenTelemetryInstrumentation(MeterProvider(metric_readers=[reader]))
    otel.on_unit(UnitEvent(kind="chat", outcome="ok", records=7, pages=1))
    otel.on_unit(UnitEvent(kind="chat", outcome="failed", records=0, pages=0))
    found = _points(reader)
    assert found["cc_collect.harvest.records"][0].unit == "{record}"
    assert sorted(
        (p.attributes["cc_collect.outcome"], p.value) for p in found["cc_collect.harvest.units"][1]
    ) == [("failed", 1), ("ok", 1)]
    assert found["cc_collect.harvest.records"][1][0].value == 7


def test_server_errors_keep_their_class_name() -> None:
    # error.type is the class name: low-cardinality and stable across messages.
    assert type(ServerError("x")).__name__ == "ServerError"
