"""``create_app(settings)``: the front door, the routes, the middleware and the lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route

from tracker.config import Settings
from tracker.store import open_store
from tracker.store.base import Store, StoreError
from tracker.store.clickprocess import Preparation
from tracker.web import ops, pixel
from tracker.web.api import campaigns, conversions, events, links, stats, workspace
from tracker.web.api.auth import AuthMiddleware
from tracker.web.dashboard import DASHBOARD
from tracker.web.errors import (
    ApiError,
    handle_api_error,
    handle_http_exception,
    handle_store_error,
    handle_unexpected,
)
from tracker.web.redirect import Front
from tracker.web.services import Services
from tracker.web.telemetry import TelemetryMiddleware

API_ROUTES: list[BaseRoute] = [
    Route("/v1/campaigns", campaigns.create_campaign, methods=["POST"]),
    Route("/v1/campaigns", campaigns.list_campaigns, methods=["GET"]),
    Route("/v1/campaigns/{campaign_id}", campaigns.get_campaign, methods=["GET"]),
    Route("/v1/campaigns/{campaign_id}", campaigns.update_campaign, methods=["PATCH"]),
    Route("/v1/campaigns/{campaign_id}/links", links.issue_links, methods=["POST"]),
    Route("/v1/campaigns/{campaign_id}/events", events.post_events, methods=["POST"]),
    Route("/v1/campaigns/{campaign_id}/stats", stats.get_stats, methods=["GET"]),
    Route("/v1/campaigns/{campaign_id}/recipients.csv", stats.get_recipients_csv, methods=["GET"]),
    Route("/v1/links", links.create_link, methods=["POST"]),
    Route("/v1/conversions", conversions.post_conversions, methods=["POST"]),
    Route("/v1/workspace", workspace.get_workspace, methods=["GET"]),
    Route("/v1/workspace", workspace.update_workspace, methods=["PATCH"]),
    Route("/v1/workspace/webhook-secrets", workspace.list_webhook_secrets, methods=["GET"]),
    Route("/v1/workspace/webhook-secrets", workspace.rotate_webhook_secret, methods=["POST"]),
]

ROUTES: list[BaseRoute] = [
    Route("/healthz", ops.get_health, methods=["GET"]),
    Route("/readyz", ops.get_ready, methods=["GET"]),
    Route("/metrics", ops.get_metrics, methods=["GET"]),
    Route("/openapi.json", ops.get_openapi, methods=["GET"]),
    Route("/p.gif", pixel.get_pixel, methods=["GET"]),
    Route("/t.js", pixel.get_script, methods=["GET"]),
    Mount("/api", routes=API_ROUTES, middleware=[Middleware(AuthMiddleware)]),
    DASHBOARD,
]


def create_app(settings: Settings, store: Store | None = None) -> Front:
    """The whole service as one ASGI app.

    Without ``store``, the lifespan opens (and migrates) the store named by
    ``settings.database_url``, and on shutdown drains the click writer and closes the store.
    A ``store`` passed in must already be open; its owner drains the writer
    (``app.services.writer.close()``) and closes the store — tests do this, as httpx's
    ASGITransport runs no lifespan.
    """
    owned = store is None
    if store is None:
        store = open_store(
            settings.database_url,
            settings.rollup_seconds,
            Preparation(settings.trusted_proxies, settings.ip_storage)
            if settings.click_writer == "process"
            else None,
        )
    services = Services(settings, store)
    if not owned:  # a store passed in is open already
        services.load_codes()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not owned:
            yield
            return
        await services.start()
        # Everything made so far (modules, the app, the store) lives as long as the process:
        # moved out of the collector's reach, a full collection no longer walks it each time.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await services.stop()

    app = Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={
            ApiError: handle_api_error,
            StoreError: handle_store_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
    )
    app.state.services = services
    return Front(TelemetryMiddleware(app, services.telemetry), services)


def create_app_from_env() -> Front:
    """The app with settings from ``TRACKER_*`` (uvicorn's factory, in each worker)."""
    return create_app(Settings.from_env())
