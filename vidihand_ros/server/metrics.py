"""`GET /metrics`: Prometheus metrics of one app, in a registry of its own.

A registry per app (not prometheus-client's global one) so several apps in one process (tests,
Ray replicas) never share or double-register series. Route labels are the app's route templates,
anything else is "other", so a scanner probing random paths cannot grow the label set.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "ServerMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class _DeviceMemory(Collector):
    """CUDA memory per device, read at scrape time, only where torch is already loaded (a CPU
    server never imports torch for this)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "vidihand_device_memory_bytes", "CUDA memory allocated by torch, per device", labels=["device"]
        )
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                family.add_metric([f"cuda:{i}"], float(torch.cuda.memory_allocated(i)))
        yield family


class ServerMetrics:
    """The series the server exports, and the hooks that feed them."""

    def __init__(
        self,
        queue_depth: Callable[[], float],
        ready: Callable[[], float],
        worker_restarts: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vidihand_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vidihand_request_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "vidihand_batch_windows",
            "windows per estimator call",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.windows = Counter("vidihand_windows", "windows handed to the estimator", registry=self.registry)
        self.frames = Counter("vidihand_frames", "frames handed to the estimator", registry=self.registry)
        restarts = Gauge(
            "vidihand_worker_restarts", "worker processes replaced after they stopped", registry=self.registry
        )
        restarts.set_function(worker_restarts)
        depth = Gauge("vidihand_queue_depth", "windows waiting for an estimator", registry=self.registry)
        depth.set_function(queue_depth)
        up = Gauge("vidihand_ready", "1 once the estimator is loaded and warmed up", registry=self.registry)
        up.set_function(ready)
        self.registry.register(_DeviceMemory())

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, windows: int, frames: int) -> None:
        self.batch_size.observe(windows)
        self.windows.inc(windows)
        self.frames.inc(frames)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
