"""The front door and the hot path: ``GET|HEAD /{code}`` → 302, with the click handed to the
click writer.

``Front`` is the ASGI app uvicorn runs. It answers a redirect itself, before Starlette's
router (which alone costs about half of a bare request), and hands every other request —
and the lifespan — to the Starlette app. Per redirect it does: a cache lookup — on a miss,
the code's tag check (a forged code is a 404 without any store read), its link id, the link
index, and only for a link not in it a primary-key read that stays on the event loop — then
the per-request part of the destination, a fresh click id, a ``submit`` to the click writer,
the 302, and the request's count and time for /metrics. No SQL write, no user-agent parsing,
no JSON: those happen in the writer.

Under ``tracker serve`` most redirects do not come through here as ASGI calls: uvicorn's
HTTP protocol (``tracker.web.protocol``) answers those it can with this class's
``route_now`` and ``click``, and hands the rest to it as an ASGI app (docs/decisions/0012).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from time import perf_counter
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from tracker.codes import CodeBook, new_click_id
from tracker.store.base import StoreError
from tracker.urls import finish_destination
from tracker.web.linkcache import RouteTuple

if TYPE_CHECKING:
    from tracker.web.services import Services

log = logging.getLogger("tracker.redirect")


def _page(title: str, text: str) -> bytes:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width'>"
        f"<title>{title}</title><body style='font-family:system-ui,sans-serif;"
        f"text-align:center;padding:3em 1em'><h1>{title}</h1><p>{text}</p>"
    ).encode()


NOT_FOUND = _page("Link not found", "This link is not valid. Check that it was copied whole.")
GONE = _page("Link expired", "This offer has ended.")
UNAVAILABLE = _page("Try again in a moment", "This link cannot be opened right now.")
_NO_STORE = (b"cache-control", b"no-store")
_HTML = (b"content-type", b"text/html; charset=utf-8")
_EMPTY = (b"content-length", b"0")
# The 302's body message is the same every time: one dict, never mutated by the server.
_NO_BODY = {"type": "http.response.body", "body": b""}


# One-segment paths that belong to Starlette even though they look like codes.
RESERVED = frozenset({"/healthz", "/readyz", "/metrics", "/api", "/dashboard"})


class Front:
    """The ASGI app: answers ``GET|HEAD /{code}`` itself, hands the rest to ``app``."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.services = services
        self._app = app
        self._links = services.links
        self._writer = services.writer
        telemetry = services.telemetry
        self._observe = telemetry.observe_redirect
        self.timed_302 = {m: telemetry.redirect_timings(m, 302).append for m in ("GET", "HEAD")}
        self._trust_forwarded = bool(services.settings.proxy_networks)
        self._codes: CodeBook | None = None  # the store's secret is read at startup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Every step here runs once per redirect, and in the server each costs several times
        # what it does alone (bench/README.md): one coroutine answers the whole redirect;
        # only a code neither cached nor indexed goes through a second one (``_find``).
        # A code path: ``/`` and one run of ASCII letters and digits, not a reserved name.
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        method = scope["method"]
        path = scope["path"]
        code = path[1:]
        if (
            (method != "GET" and method != "HEAD")
            or not (code.isalnum() and code.isascii())
            or path in RESERVED
        ):
            await self._app(scope, receive, send)
            return
        started = perf_counter()
        route = self.route_now(code)
        if route is None:
            found = await self._find(code, scope, send)
            if isinstance(found, int):  # nothing to redirect to: a page was sent
                self._observe(method, found, perf_counter() - started)
                return
            route = found
        click = self.click(
            route, method, scope["query_string"], scope["headers"], scope.get("client")
        )
        if click is None:  # disabled or expired
            fallback = route[8]
            if fallback is None:
                status = await _page_response(scope, send, 410, GONE)
            else:
                status = await _redirect(send, fallback)
            self._observe(method, status, perf_counter() - started)
            return
        location, waiter = click
        if waiter is not None:
            await waiter
        # ``_redirect``, inlined: one coroutine less per request.
        headers = [(b"location", location), _NO_STORE, _EMPTY]
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send(_NO_BODY)
        self.timed_302[method](perf_counter() - started)  # counted later (Telemetry)

    def route_now(self, code: str) -> RouteTuple | None:
        """The route of ``code`` if it is known without the store (cached, or its link in
        the index); ``None`` when the store must be asked, or the code's tag fails."""
        route = self._links.cached(code)
        if route is None:
            codes = self._codes
            if codes is None:
                codes = self._codes = self.services.codes
            link_id = codes.decode(code)  # None unless the code's tag verifies
            if link_id is not None:
                route = self._links.indexed(code, link_id)
        return route

    def click(
        self,
        route: RouteTuple,
        method: str,
        query: bytes,
        headers: Iterable[tuple[bytes, bytes]],
        client: tuple[str, int] | None,
    ) -> tuple[bytes, asyncio.Future[None] | None] | None:
        """A redirect's click, for either door (this ASGI app, or ``tracker.web.protocol``):
        the ``Location`` with a fresh click id, and the waiter ``submit`` gave for the click
        (durable mode: answer once it is done). ``None`` when the link is disabled or
        expired: no click is taken, and the caller answers with its fallback or a 410."""
        (
            link_id,
            campaign_id,
            base,
            click_id_param,
            before_click_id,
            after_click_id,
            disabled,
            expires_at_ms,
            _,
        ) = route
        now_ms = time.time_ns() // 1_000_000
        if disabled or (expires_at_ms is not None and now_ms >= expires_at_ms):
            return None
        click_id = new_click_id(now_ms)
        if before_click_id is not None and after_click_id is not None and not query:
            # finish_destination's result, prepared
            location = before_click_id + click_id + after_click_id
        else:
            location = finish_destination(
                base,
                query.decode("utf-8", "replace") if query else "",
                click_id_param,
                click_id,
            )
        user_agent = referrer = forwarded = None
        for name, value in headers:
            if name == b"user-agent":
                user_agent = value.decode("latin-1")
            elif name == b"referer":
                referrer = value.decode("latin-1")
            elif name == b"x-forwarded-for" and self._trust_forwarded:
                forwarded = value.decode("latin-1")
        # Always ASCII: destinations are stored as ASCII, parameters percent-encoded. Before
        # the submit, which is the last step: once the click is taken, nothing here fails.
        encoded = location.encode("latin-1")
        waiter = self._writer.submit(
            (  # a Click's fields (tracker.models.ClickFields)
                link_id,
                campaign_id,
                now_ms,
                click_id,
                method,
                user_agent or "",
                client[0] if client else None,
                forwarded,
                referrer,
            )
        )
        return encoded, waiter

    async def _find(self, code: str, scope: Scope, send: Send) -> RouteTuple | int:
        """The route of a code neither cached nor indexed, from the store; when there is
        none to follow, the status of the page sent instead (404 for a code whose tag
        fails, or that names no link; 503 when the store failed)."""
        assert self._codes is not None  # route_now read it
        link_id = self._codes.decode(code)
        if link_id is None:
            return await _page_response(scope, send, 404, NOT_FOUND)
        try:
            route = await self._links.route(code, link_id)
        except StoreError:
            log.exception("redirect: store lookup failed for a valid code")
            return await _page_response(scope, send, 503, UNAVAILABLE)
        if route is None:
            return await _page_response(scope, send, 404, NOT_FOUND)
        return route


async def _redirect(send: Send, location: str) -> int:
    headers = [(b"location", location.encode("latin-1")), _NO_STORE, _EMPTY]
    await send({"type": "http.response.start", "status": 302, "headers": headers})
    await send(_NO_BODY)
    return 302


async def _page_response(scope: Scope, send: Send, status: int, page: bytes) -> int:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_HTML, _NO_STORE, (b"content-length", str(len(page)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else page})
    return status
