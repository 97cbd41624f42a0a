"""The redirect answered inside uvicorn's HTTP protocol, before any ASGI machinery
(``tracker serve`` runs uvicorn with ``RedirectProtocol``; docs/decisions/0012).

Per request, uvicorn's httptools protocol builds an ASGI scope, a request-response cycle
with an ``asyncio.Event``, a task to run the app, and then checks each response header
against two regular expressions as the app sends it; for a 302 that is more Python than
the redirect's own. ``RedirectProtocol`` answers a plain redirect itself, as soon as the
request's headers are parsed: the route from ``Front.route_now`` (cache or link index, no
I/O), the click from ``Front.click`` (the same function the ASGI door uses), and the 302
written to the socket — at once in fast mode, from the click's commit callback in durable
mode. Anything else goes the ASGI way, unchanged: another method or path, a code that
needs the store (a miss, a 404, a 503), a disabled or expired link, a request that is not
HTTP/1.1 keep-alive, one pipelined behind an unanswered request, a connection whose
writes are paused, an upgrade; and every request when the access log is on, when uvicorn
wraps the app (its proxy headers, its trace log) or when it has a root path.

It still lets uvicorn parse the request: ``on_message_begin`` builds the ASGI scope before
the path is known. It relies on uvicorn's protocol internals — ``app``, ``access_log``,
``root_path``, ``parser``, ``url``, ``headers``, ``client``, ``transport``, ``flow``,
``cycle``, ``pipeline``, ``server_state``, ``timeout_keep_alive_task``,
``_unset_keepalive_if_required`` and ``on_response_complete`` — so pyproject pins the
uvicorn releases it is tested with.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from time import perf_counter
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tracker.web.redirect import RESERVED, Front
from tracker.web.server import accept_waiting

log = logging.getLogger("tracker.redirect")

_STATUS = b"HTTP/1.1 302 Found\r\n"
_TAIL = b"\r\ncache-control: no-store\r\ncontent-length: 0\r\n\r\n"
_RESERVED = frozenset(path.encode() for path in RESERVED)


class _NoEvent:
    """Stands in for the cycle's ``message_event``: nothing waits on it here."""

    __slots__ = ()

    def set(self) -> None:
        pass


_NO_EVENT = _NoEvent()


class _Answered:
    """The protocol's ``cycle`` after a redirect answered at once (``ANSWERED``): complete
    (uvicorn sets its ``message_event`` when the connection is lost)."""

    __slots__ = ()
    response_complete = True
    message_event = _NO_EVENT


class _Waiting:
    """The protocol's ``cycle`` while a durable redirect waits for its click's commit: the
    attributes uvicorn's protocol reads or sets on a cycle (a request pipelined behind it
    is queued; a disconnect or a shutdown is noted)."""

    __slots__ = (
        "body",
        "disconnected",
        "keep_alive",
        "message_event",
        "more_body",
        "response_complete",
    )

    def __init__(self) -> None:
        self.response_complete = False
        self.disconnected = False
        self.keep_alive = True
        self.more_body = True
        self.body = bytearray()  # a GET's body, if one came: ignored, as the ASGI door does
        self.message_event = _NO_EVENT


ANSWERED = _Answered()  # one for all: it holds no state


class RedirectProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering plain redirects of a ``Front`` itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app = self.app
        # Only a bare Front at the root: a wrapper (uvicorn's proxy headers, its trace
        # logging) or a root path would change what the ASGI way does; and uvicorn logs a
        # request (--access-log) only where the ASGI app answers it.
        answers = isinstance(app, Front) and not self.root_path and not self.access_log
        self._front = app if answers else None
        self._defaults: object = None  # the server's default headers _head was made from
        self._head = b""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # The connections that opened with this one are served from the next turn of the
        # loop, not one a turn (tracker.web.server).
        accept_waiting(self)

    def on_headers_complete(self) -> None:
        if self.timeout_keep_alive_task is not None:
            # Armed by a redirect answered earlier in this same read: this request is not
            # an idle connection (uvicorn disarms it only when data arrives).
            self._unset_keepalive_if_required()
        front = self._front
        cycle = self.cycle
        if (
            front is not None
            and (cycle is None or cycle.response_complete)
            and not self.pipeline
            and not self.flow.write_paused
        ):
            parser = self.parser
            method = parser.get_method()
            if (
                (method == b"GET" or method == b"HEAD")
                and parser.should_keep_alive()
                and parser.get_http_version() == "1.1"
                and not parser.should_upgrade()
            ):
                path, _, query = self.url.partition(b"?")
                code = path[1:]
                if (
                    path[:1] == b"/"
                    and code.isalnum()  # bytes: ASCII letters and digits only
                    and path not in _RESERVED
                    and b"#" not in query
                ):
                    name = "GET" if method == b"GET" else "HEAD"
                    started = perf_counter()
                    try:
                        click = self._click(front, name, code, query)
                    except Exception:  # a bug, before any click was taken (Front.click)
                        log.exception("redirect: the protocol could not answer; the app will")
                        self._front = None  # this connection's requests all go the ASGI way
                        click = None
                    if click is not None:
                        try:
                            self._respond(front, name, started, *click)
                        except Exception:  # a bug, after the click: never a second answer
                            log.exception("redirect: answering failed; closing the connection")
                            self.transport.close()
                        return
        super().on_headers_complete()

    def _click(
        self, front: Front, method: str, code: bytes, query: bytes
    ) -> tuple[bytes, asyncio.Future[None] | None] | None:
        """``Front.click`` for a code whose route is known without the store and open;
        ``None`` (no click taken) when the ASGI way must answer."""
        route = front.route_now(code.decode("ascii"))
        if route is None:
            return None
        return front.click(route, method, query, self.headers, self.client)

    def _respond(
        self,
        front: Front,
        method: str,
        started: float,
        location: bytes,
        waiter: asyncio.Future[None] | None,
    ) -> None:
        defaults = self.server_state.default_headers  # a new list each second (the date)
        if defaults is not self._defaults:
            self._defaults = defaults
            self._head = (
                _STATUS
                + b"".join(name + b": " + value + b"\r\n" for name, value in defaults)
                + b"location: "
            )
        response = self._head + location + _TAIL
        if waiter is None:
            self.cycle = ANSWERED  # type: ignore[assignment]
            self.transport.write(response)
            self.on_response_complete()
            front.timed_302[method](perf_counter() - started)
        else:
            waiting = _Waiting()
            self.cycle = waiting  # type: ignore[assignment]
            waiter.add_done_callback(
                partial(self._committed, front, waiting, response, method, started)
            )

    def _committed(
        self,
        front: Front,
        waiting: _Waiting,
        response: bytes,
        method: str,
        started: float,
        _: object,
    ) -> None:
        """A durable redirect's answer, once its click is committed or given up on: the
        click writer only ever completes the future (a recipient never sees an error
        because analytics failed)."""
        if waiting.disconnected:  # the click is stored all the same
            return
        if not waiting.keep_alive:  # the server is shutting down: say so, then close
            response = response[:-2] + b"connection: close\r\n\r\n"
        try:
            self.transport.write(response)
            waiting.response_complete = True
            if not waiting.keep_alive:
                self.transport.close()
            self.on_response_complete()
            front.timed_302[method](perf_counter() - started)
        except Exception:  # a bug: as in on_headers_complete, never a second answer
            log.exception("redirect: answering failed; closing the connection")
            self.transport.close()
