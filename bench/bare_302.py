"""The ceiling of the redirect benchmark: a bare ASGI app that answers every request 302.

No framework, no routing, no state: the cost of uvicorn (uvloop + httptools) alone for the
answer a redirect gives. Run by ``bench/redirect.py`` as

    python -m uvicorn bench.bare_302:app --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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
