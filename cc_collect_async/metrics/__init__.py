"""Adapters from the :mod:`~cc_collect_async.instrumentation` hooks to metrics libraries.

Each lives in its own module and extra, so the library itself depends on neither:
``cc_collect_async.metrics.otel`` (extra ``otel``: ``opentelemetry-api`` only; you bring the
SDK and exporter) and ``cc_collect_async.metrics.prometheus`` (extra ``prometheus``).
"""

from __future__ import annotations

__all__ = ["HTTP_DURATION_BUCKETS"]

#: The bucket boundaries OpenTelemetry's HTTP semantic conventions give for
#: ``http.client.request.duration`` (seconds); the Prometheus adapter uses them too, so the
#: two views of the same requests line up.
HTTP_DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
