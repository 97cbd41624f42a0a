"""JSON responses through orjson: times as RFC 3339 UTC strings, money as decimal strings."""

from __future__ import annotations

from collections.abc import AsyncIterable
from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, default=_default, option=orjson.OPT_UTC_Z)


def json_response(data: Any, status_code: int = 200) -> Response:
    return Response(dumps(data), status_code=status_code, media_type="application/json")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


class StreamResponse(Response):
    """A streamed body that, unlike Starlette's ``StreamingResponse``, does not listen for a
    disconnect while streaming, so the body iterator may still be reading the request body
    (NDJSON in, NDJSON out)."""

    def __init__(self, chunks: AsyncIterable[bytes], media_type: str, status_code: int = 200):
        self.chunks = chunks
        self.status_code = status_code
        self.media_type = media_type
        self.background = None
        self.init_headers()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        async for chunk in self.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
