"""OpenTelemetry metrics from the instrumentation hooks (extra ``otel``).

Follows the HTTP client semantic conventions for the requests themselves:
``http.client.request.duration`` in seconds with the convention's buckets and the attributes
``http.request.method``, ``server.address``, ``server.port``, ``url.template`` (the vendor's
path, which holds no id), ``http.response.status_code`` and ``error.type``. The rest is under
``cc_collect.*``. Only ``opentelemetry-api`` is needed: with no SDK configured every
instrument is a no-op, and the application's own ``MeterProvider`` decides where the
figures go.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics

from .. import __version__
from ..instrumentation import AttemptEvent, CacheEvent, CallEvent, Instrumentation, UnitEvent
from . import HTTP_DURATION_BUCKETS

__all__ = ["OpenTelemetryInstrumentation"]


class OpenTelemetryInstrumentation(Instrumentation):
    """Records every hook as OpenTelemetry metrics.

    ``meter_provider`` defaults to the global one (``metrics.set_meter_provider``).
    """

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = metrics.get_meter("cc_collect_async", __version__, meter_provider=meter_provider)
        self.request_duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=HTTP_DURATION_BUCKETS,
        )
        self.limiter_wait = meter.create_histogram(
            "cc_collect.limiter.wait",
            unit="s",
            description="Time a request waited for the rate limiters and the concurrency cap.",
            explicit_bucket_boundaries_advisory=HTTP_DURATION_BUCKETS,
        )
        self.calls = meter.create_counter(
            "cc_collect.calls", unit="{call}", description="Endpoint calls, by outcome."
        )
        self.call_attempts = meter.create_histogram(
            "cc_collect.call.attempts",
            unit="{attempt}",
            description="Attempts one endpoint call took.",
            explicit_bucket_boundaries_advisory=(1, 2, 3, 4, 5, 6, 8, 10),
        )
        self.cache_lookups = meter.create_counter(
            "cc_collect.cache.lookups",
            unit="{lookup}",
            description="Response cache lookups, by outcome.",
        )
        self.units = meter.create_counter(
            "cc_collect.harvest.units", unit="{unit}", description="Harvest units that ended."
        )
        self.records = meter.create_counter(
            "cc_collect.harvest.records", unit="{record}", description="Records harvested."
        )
        self.pages = meter.create_counter(
            "cc_collect.harvest.pages", unit="{page}", description="Pages harvested."
        )

    def on_attempt(self, event: AttemptEvent) -> None:
        attributes: dict[str, Any] = {
            "http.request.method": event.method,
            "server.address": event.server_address,
            "url.template": event.path,
        }
        if event.server_port is not None:
            attributes["server.port"] = event.server_port
        if event.status is not None:
            attributes["http.response.status_code"] = event.status
        if event.error_type is not None:
            attributes["error.type"] = event.error_type
        self.request_duration.record(event.duration, attributes)
        self.limiter_wait.record(event.limiter_wait, {"cc_collect.endpoint": event.endpoint})

    def on_call(self, event: CallEvent) -> None:
        attributes = {"cc_collect.endpoint": event.endpoint, "cc_collect.outcome": event.outcome}
        self.calls.add(1, attributes)
        self.call_attempts.record(event.attempts, {"cc_collect.endpoint": event.endpoint})

    def on_cache(self, event: CacheEvent) -> None:
        self.cache_lookups.add(
            1, {"cc_collect.endpoint": event.endpoint, "cc_collect.outcome": event.outcome}
        )

    def on_unit(self, event: UnitEvent) -> None:
        kind = {"cc_collect.kind": event.kind}
        self.units.add(1, {**kind, "cc_collect.outcome": event.outcome})
        self.records.add(event.records, kind)
        self.pages.add(event.pages, kind)
