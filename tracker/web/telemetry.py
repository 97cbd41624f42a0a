"""Prometheus metrics: request counts and latencies by route class.

Each app has its own registry (no global state, so tests can build many apps). With several
workers, each process reports its own numbers; scrape them per process or run one worker
per container.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ROUTE_CLASSES = ("redirect", "api", "pixel", "dashboard", "ops")
_OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
_PIXEL_PATHS = frozenset({"/p.gif", "/t.js"})


def route_class(path: str) -> str:
    if path.startswith("/api/"):
        return "api"
    if path in _OPS_PATHS:
        return "ops"
    if path in _PIXEL_PATHS:
        return "pixel"
    if path == "/dashboard" or path.startswith("/dashboard/"):
        return "dashboard"
    return "redirect"


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tracker_http_requests",
            "HTTP requests answered, by route class, method and status code.",
            ("route_class", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "tracker_http_request_duration_seconds",
            "Time from request start to the end of the response, by route class.",
            ("route_class",),
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.links_issued = Counter(
            "tracker_links_issued", "Links returned by the issue endpoints.", registry=self.registry
        )


class TelemetryMiddleware:
    """Counts and times every HTTP request; pure ASGI, so it adds about a microsecond."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            kind = route_class(scope["path"])
            self.telemetry.requests.labels(kind, scope["method"], str(status)).inc()
            self.telemetry.latency.labels(kind).observe(time.perf_counter() - started)
