"""The ceiling of the redirect benchmark: a bare ASGI app that answers every request 302.

No framework, no routing, no state: the cost of uvicorn (uvloop + httptools) alone for the
answer a redirect gives. Run by ``bench/redirect.py`` as

    python -m uvicorn bench.bare_302:app --loop uvloop --http httptools --no-access-log

``Protocol`` is the same 302 answered in uvicorn's HTTP protocol, before ASGI, as tracker's
``RedirectProtocol`` answers most redirects (docs/decisions/0012): the ceiling of that path,
for ``bench/redirect.py --ceiling protocol`` (``--http bench.bare_302:Protocol``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tracker.web.protocol import ANSWERED

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

_START = {
    "type": "http.response.start",
    "status": 302,
    "headers": [
        (b"location", b"https://shop.example/"),
        (b"cache-control", b"no-store"),
        (b"content-length", b"0"),
    ],
}
_BODY = {"type": "http.response.body", "body": b""}


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(_START)
    await send(_BODY)


_RESPONSE_TAIL = b"".join(name + b": " + value + b"\r\n" for name, value in _START["headers"])


class Protocol(HttpToolsProtocol):
    """The fixed 302 written as soon as a keep-alive GET's headers are parsed."""

    _defaults: object = None
    _response = b""

    def on_headers_complete(self) -> None:
        if (
            (self.cycle is None or self.cycle.response_complete)
            and self.parser.get_method() == b"GET"
            and self.parser.should_keep_alive()
        ):
            defaults = self.server_state.default_headers
            if defaults is not self._defaults:
                self._defaults = defaults
                self._response = (
                    b"HTTP/1.1 302 Found\r\n"
                    + b"".join(name + b": " + value + b"\r\n" for name, value in defaults)
                    + _RESPONSE_TAIL
                    + b"\r\n"
                )
            self.cycle = ANSWERED  # type: ignore[assignment]  # tracker's stand-in cycle
            self.transport.write(self._response)
            self.on_response_complete()
            return
        super().on_headers_complete()
