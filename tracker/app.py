"""``create_app(settings)``: the routes, the middleware and the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from tracker.config import Settings
from tracker.store import open_store
from tracker.store.base import Store
from tracker.web import ops
from tracker.web.api import campaigns, links, workspace
from tracker.web.api.auth import AuthMiddleware
from tracker.web.errors import ApiError, handle_api_error, handle_http_exception, handle_unexpected
from tracker.web.services import Services
from tracker.web.telemetry import TelemetryMiddleware

API_ROUTES: list[BaseRoute] = [
    Route("/v1/campaigns", campaigns.create_campaign, methods=["POST"]),
    Route("/v1/campaigns", campaigns.list_campaigns, methods=["GET"]),
    Route("/v1/campaigns/{campaign_id}", campaigns.get_campaign, methods=["GET"]),
    Route("/v1/campaigns/{campaign_id}", campaigns.update_campaign, methods=["PATCH"]),
    Route("/v1/campaigns/{campaign_id}/links", links.issue_links, methods=["POST"]),
    Route("/v1/links", links.create_link, methods=["POST"]),
    Route("/v1/workspace", workspace.get_workspace, methods=["GET"]),
    Route("/v1/workspace", workspace.update_workspace, methods=["PATCH"]),
]

ROUTES: list[BaseRoute] = [
    Route("/healthz", ops.get_health, methods=["GET"]),
    Route("/readyz", ops.get_ready, methods=["GET"]),
    Route("/metrics", ops.get_metrics, methods=["GET"]),
    Route("/openapi.json", ops.get_openapi, methods=["GET"]),
    Mount("/api", routes=API_ROUTES, middleware=[Middleware(AuthMiddleware)]),
]


def create_app(settings: Settings, store: Store | None = None) -> ASGIApp:
    """The whole service as one ASGI app.

    Without ``store``, the lifespan opens (and migrates) the store named by
    ``settings.database_url`` and closes it on shutdown. A ``store`` passed in must already
    be open; its owner closes it (tests do this, as httpx's ASGITransport runs no lifespan).
    """
    services = Services(settings, store or open_store(settings.database_url))
    if store is not None:
        services.load_codes()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if store is not None:
            yield
            return
        await services.start()
        try:
            yield
        finally:
            await services.store.close()

    app = Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={
            ApiError: handle_api_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
    )
    app.state.services = services
    return TelemetryMiddleware(app, services.telemetry)


def create_app_from_env() -> ASGIApp:
    """The app with settings from ``TRACKER_*`` (uvicorn's factory, in each worker)."""
    return create_app(Settings.from_env())
