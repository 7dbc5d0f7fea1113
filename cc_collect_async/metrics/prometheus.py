"""Prometheus metrics from the instrumentation hooks (extra ``prometheus``).

Counters and histograms under ``cc_collect_``; labels are endpoint names, methods, status
codes, error class names, cache outcomes and harvest kinds: a few dozen values in all, never
a live or room id. Expose them the usual way (``prometheus_client.make_asgi_app`` or
``generate_latest``); the web example serves them at ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from ..instrumentation import AttemptEvent, CacheEvent, CallEvent, Instrumentation, UnitEvent
from . import HTTP_DURATION_BUCKETS

__all__ = ["PrometheusInstrumentation"]


class PrometheusInstrumentation(Instrumentation):
    """Registers its metrics in ``registry`` (the default registry unless given): make one
    per registry and process, as prometheus-client refuses duplicate names."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.requests = Counter(
            "cc_collect_requests",
            "HTTP attempts sent to the vendor, by reply status and error class",
            ["endpoint", "method", "status", "error_type"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "cc_collect_request_duration_seconds",
            "Duration of HTTP attempts, from sending to classifying the reply",
            ["endpoint", "method"],
            buckets=HTTP_DURATION_BUCKETS,
            registry=registry,
        )
        self.limiter_wait = Histogram(
            "cc_collect_limiter_wait_seconds",
            "Time a request waited for the rate limiters and the concurrency cap",
            ["endpoint"],
            buckets=HTTP_DURATION_BUCKETS,
            registry=registry,
        )
        self.calls = Counter(
            "cc_collect_calls",
            "Endpoint calls, by outcome (ok or the error class)",
            ["endpoint", "outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "cc_collect_retries",
            "Attempts beyond the first of each call",
            ["endpoint"],
            registry=registry,
        )
        self.cache_lookups = Counter(
            "cc_collect_cache_lookups",
            "Response cache lookups, by outcome (hit, miss, joined, stale, ...)",
            ["endpoint", "outcome"],
            registry=registry,
        )
        self.units = Counter(
            "cc_collect_units",
            "Harvest units that ended, by kind and outcome",
            ["kind", "outcome"],
            registry=registry,
        )
        self.records = Counter(
            "cc_collect_records", "Records harvested, by kind", ["kind"], registry=registry
        )
        self.pages = Counter(
            "cc_collect_pages", "Pages harvested, by kind", ["kind"], registry=registry
        )

    def on_attempt(self, event: AttemptEvent) -> None:
        status = "" if event.status is None else str(event.status)
        self.requests.labels(event.endpoint, event.method, status, event.error_type or "").inc()
        self.request_duration.labels(event.endpoint, event.method).observe(event.duration)
        self.limiter_wait.labels(event.endpoint).observe(event.limiter_wait)

    def on_call(self, event: CallEvent) -> None:
        self.calls.labels(event.endpoint, event.outcome).inc()
        if event.attempts > 1:
            self.retries.labels(event.endpoint).inc(event.attempts - 1)

    def on_cache(self, event: CacheEvent) -> None:
        self.cache_lookups.labels(event.endpoint, event.outcome).inc()

    def on_unit(self, event: UnitEvent) -> None:
        self.units.labels(event.kind, event.outcome).inc()
        self.records.labels(event.kind).inc(event.records)
        self.pages.labels(event.kind).inc(event.pages)
