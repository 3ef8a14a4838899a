"""The server's Prometheus metrics: one registry per service, label values bounded by construction."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServeMetrics:
    """Requests by endpoint (a route template, never a raw path) and status; latency; batch sizes;
    onnxruntime call time; queue depth per model."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cifar_pack_requests",
            "Requests by endpoint, status and protocol (http, grpc)",
            ["endpoint", "status", "protocol"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cifar_pack_request_seconds", "Request latency, seconds", ["endpoint", "protocol"], registry=self.registry
        )
        self.batch_sizes = Histogram(
            "cifar_pack_batch_size",
            "Images per onnxruntime call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.infer_seconds = Histogram(
            "cifar_pack_inference_seconds", "onnxruntime call, seconds", registry=self.registry
        )
        self.depth = Gauge("cifar_pack_queue_depth", "Images waiting for a batch", ["model"], registry=self.registry)

    def on_batch(self, size: int, seconds: float) -> None:
        """Called by each batcher after every onnxruntime call."""
        self.batch_sizes.observe(size)
        self.infer_seconds.observe(seconds)

    def watch_queue(self, model: str, waiting: Callable[[], float]) -> None:
        self.depth.labels(model).set_function(waiting)

    def count_request(
        self, endpoint: str, status: int | str, seconds: float | None = None, protocol: str = "http"
    ) -> None:
        """``endpoint``: a route template or a gRPC method name (never raw input: labels stay bounded)."""
        self.requests.labels(endpoint, str(status), protocol).inc()
        if seconds is not None:
            self.latency.labels(endpoint, protocol).observe(seconds)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)
