"""The service's Prometheus metrics, in a registry of its own (no global state: two apps in one
process count apart): requests by route and status, request latency, batch sizes, queue depth, and
the process's own collector (``process_resident_memory_bytes``, CPU seconds, open files). Under Ray
Serve, ``FrontMetrics`` counts what the front answers by itself (no replica saw those requests)."""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

ROUTES = ("/v1/detect", "/", "/healthz", "/readyz", "/metrics")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServeMetrics:
    """Counters and histograms of one app; ``render()`` is the ``/metrics`` body."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, max_batch: int, queue_depth: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "sparse_rcnn_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "sparse_rcnn_request_seconds",
            "Time from a detect request's arrival to its answer",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "sparse_rcnn_batch_size",
            "Images per forward of the model",
            buckets=tuple(float(b) for b in range(1, max_batch + 1)),
            registry=self.registry,
        )
        self.queue = Gauge("sparse_rcnn_queue_depth", "Requests waiting for the model", registry=self.registry)
        self.queue.set_function(queue_depth)

    def count(self, path: str, status: int, seconds: float) -> None:
        route = path if path in ROUTES else "other"
        self.requests.labels(route=route, status=str(status)).inc()
        if route == "/v1/detect":
            self.latency.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class FrontMetrics:
    """The refusals a Ray Serve front makes without a model replica (413, 503, 504, 500), by route
    and status; the front appends ``render()`` to the replica's ``/metrics`` answer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.refusals = Counter(
            "sparse_rcnn_front_refusals",
            "Answers the Ray Serve front gave itself, without a model replica, by route and status",
            ["route", "status"],
            registry=self.registry,
        )

    def count(self, path: str, status: int) -> None:
        self.refusals.labels(route=path if path in ROUTES else "other", status=str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
