"""The hot path: ``GET|HEAD /{code}`` → 302, with the click handed to the click writer.

Dispatched before Starlette's router (see ``tracker.app.Front``). Per request it does: a
cache lookup — on a miss, the code's tag check (a forged code is a 404 without any store
read), its link id, the link index, and only for a link not in it a primary-key read that
stays on the event loop — then the
per-request part of the destination, a fresh click id, and a ``submit`` to the click
writer. No SQL write, no user-agent parsing, no JSON: those happen in the writer.
"""

from __future__ import annotations

import logging
import time

from starlette.types import Receive, Scope, Send

from tracker.clickwriter import ClickWriter
from tracker.codes import CodeBook, new_click_id
from tracker.store.base import StoreError
from tracker.urls import finish_destination
from tracker.web.linkcache import LinkCache

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


class Redirector:
    def __init__(
        self, codes: CodeBook, links: LinkCache, writer: ClickWriter, trust_forwarded: bool
    ) -> None:
        self._codes = codes
        self._links = links
        self._writer = writer
        self._trust_forwarded = trust_forwarded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Answer the request; returns the status sent (for the caller's metrics)."""
        code = scope["path"][1:]
        route = self._links.cached(code)
        if route is None:
            link_id = self._codes.decode(code)  # None unless the code's tag verifies
            if link_id is None:
                return await _page_response(scope, send, 404, NOT_FOUND)
            route = self._links.indexed(code, link_id)
            if route is None:
                try:
                    route = await self._links.route(code, link_id)
                except StoreError:
                    log.exception("redirect: store lookup failed for a valid code")
                    return await _page_response(scope, send, 503, UNAVAILABLE)
                if route is None:
                    return await _page_response(scope, send, 404, NOT_FOUND)
        (
            link_id,
            campaign_id,
            base,
            click_id_param,
            before_click_id,
            after_click_id,
            disabled,
            expires_at_ms,
            fallback,
        ) = route
        now_ms = int(time.time() * 1000)
        if disabled or (expires_at_ms is not None and now_ms >= expires_at_ms):
            if fallback is None:
                return await _page_response(scope, send, 410, GONE)
            return await _redirect(send, fallback)
        click_id = new_click_id(now_ms)
        query = scope["query_string"]
        if before_click_id is not None and not query:
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
        for name, value in scope["headers"]:
            if name == b"user-agent":
                user_agent = value.decode("latin-1")
            elif name == b"referer":
                referrer = value.decode("latin-1")
            elif name == b"x-forwarded-for" and self._trust_forwarded:
                forwarded = value.decode("latin-1")
        client = scope.get("client")
        waiter = self._writer.submit(
            (  # a Click's fields (tracker.models.ClickFields)
                link_id,
                campaign_id,
                now_ms,
                click_id,
                scope["method"],
                user_agent or "",
                client[0] if client else None,
                forwarded,
                referrer,
            )
        )
        if waiter is not None:
            await waiter
        # ``_redirect``, inlined: one coroutine less per request.
        headers = [(b"location", location.encode("latin-1")), _NO_STORE, _EMPTY]
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send(_NO_BODY)
        return 302


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
