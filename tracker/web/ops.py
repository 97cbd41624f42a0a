"""Operations endpoints: ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json``."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from tracker.store.base import StoreError
from tracker.web.errors import ApiError, error_response
from tracker.web.openapi import spec
from tracker.web.responses import json_response
from tracker.web.services import services_of


async def get_health(request: Request) -> Response:
    """The process is up and serving HTTP (nothing else is checked)."""
    return json_response({"status": "ok"})


async def get_ready(request: Request) -> Response:
    """The store answers: ready to serve traffic."""
    try:
        await services_of(request).store.ping()
    except StoreError as error:
        return error_response(ApiError(503, "store_unavailable", str(error)))
    return json_response({"status": "ready"})


async def get_metrics(request: Request) -> Response:
    registry = services_of(request).telemetry.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def get_openapi(request: Request) -> Response:
    return json_response(spec(services_of(request).settings.base_url))
