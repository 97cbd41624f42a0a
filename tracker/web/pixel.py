"""The shop's side of the browser: ``GET /p.gif`` (the conversion pixel) and ``GET /t.js``.

The pixel always answers 200 with a 1x1 GIF and ``Cache-Control: no-store``, whatever it is
sent and whatever happens behind it: a shop page must never show a broken image because of
us. What it made of the request is counted in ``tracker_pixel_hits`` by outcome.

A pixel carries no key, so its workspace is the one of the click it names (``tclid``); a
pixel without a known click id has nowhere to be stored and is only counted.
"""

from __future__ import annotations

import base64
import logging
import time
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from tracker.web.api.conversions import parse_conversion
from tracker.web.errors import ApiError
from tracker.web.services import Services, services_of

log = logging.getLogger("tracker.pixel")

# The classic 43-byte transparent 1x1 GIF89a.
GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
SCRIPT = resources.files("tracker.web").joinpath("static/t.js").read_bytes()
_QUERY_FIELDS = {"event", "value", "currency", "order_id"}  # and tclid, src


async def get_pixel(request: Request) -> Response:
    services = services_of(request)
    if request.method == "GET":  # a HEAD is a prefetch or a check, not a conversion
        outcome = await _record(request, services)
        services.telemetry.pixel.labels(outcome).inc()
    return Response(GIF, media_type="image/gif", headers={"Cache-Control": "no-store"})


async def get_script(request: Request) -> Response:
    return Response(
        SCRIPT,
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


async def _record(request: Request, services: Services) -> str:
    # A parameter given twice counts once: its first value (as most web frameworks read it).
    query = {key: value for key, value in reversed(request.query_params.multi_items()) if value}
    source = "snippet" if query.get("src") == "snippet" else "pixel"
    item = {key: query[key] for key in _QUERY_FIELDS if key in query}
    if "tclid" in query:
        item["click_id"] = query["tclid"]
    try:
        conversion = parse_conversion(
            item, "", source, int(time.time() * 1000), default_event="purchase"
        )
        if conversion.click_id is None:
            return "unknown_click"
        workspace_id = await services.store.click_workspace(conversion.click_id)
        if workspace_id is None:
            return "unknown_click"
        (result,) = await services.store.record_conversions(workspace_id, [conversion])
    except ApiError:
        return "invalid"
    except Exception:  # the pixel is served whatever fails behind it
        log.exception("pixel: conversion not recorded")
        return "error"
    services.telemetry.count_conversions([result])
    return "duplicate" if result.duplicate else "recorded"
