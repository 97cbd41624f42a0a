"""Reading request bodies: content types, size limits, JSON and NDJSON parsing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request

from tracker.web.errors import ApiError

JSON = "application/json"
NDJSON = "application/x-ndjson"
_NDJSON_ALIASES = frozenset(
    {NDJSON, "application/jsonl", "application/ndjson", "application/jsonlines"}
)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_ndjson(request: Request) -> bool:
    return media_type(request) in _NDJSON_ALIASES


def require_media_type(request: Request, *, ndjson: bool) -> None:
    kind = media_type(request)
    if kind == JSON or (ndjson and kind in _NDJSON_ALIASES):
        return
    accepted = f"{JSON} or {NDJSON}" if ndjson else JSON
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type must be {accepted}, not {kind or 'missing'}",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> Any:
    require_media_type(request, ndjson=False)
    raw = await read_body(request, limit)
    return parse_json(raw)


def parse_json(raw: bytes, field: str | None = None) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ApiError(
            400, "malformed_json", f"the body is not valid JSON: {error}", field
        ) from None


async def ndjson_lines(body: Request | bytes, line_limit: int) -> AsyncIterator[tuple[int, bytes]]:
    """(line number, line) for every non-blank line of the body — streamed from the request,
    or split from a body already read — numbered from 1.

    A line over ``line_limit`` bytes raises a 413 ``ApiError`` naming its line.
    """
    number, pending = 0, b""
    async for chunk in _chunks(body):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            number += 1
            if len(line) > line_limit:
                raise _line_too_long(number, line_limit)
            if line.strip():
                yield number, line
        if len(pending) > line_limit:
            raise _line_too_long(number + 1, line_limit)
    if pending.strip():
        yield number + 1, pending


T = TypeVar("T")


async def ndjson_items(
    body: Request | bytes, line_limit: int, parse: Callable[[Any], T]
) -> AsyncIterator[T | ApiError]:
    """``parse`` of each line's JSON, in order; the first line that cannot be read or
    parsed ends it with its ``ApiError`` (naming the line)."""
    try:
        async for number, line in ndjson_lines(body, line_limit):
            try:
                item = parse(parse_json(line))
            except ApiError as error:
                error.message = f"line {number}: {error.message}"
                error.line = number
                yield error
                return
            yield item
    except ApiError as error:  # a line over the size limit
        yield error


async def _chunks(body: Request | bytes) -> AsyncIterator[bytes]:
    if isinstance(body, bytes):
        yield body
        return
    async for chunk in body.stream():
        yield chunk


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, "body_too_large", f"the body is larger than {limit} bytes; send NDJSON in parts"
    )


def _line_too_long(number: int, limit: int) -> ApiError:
    error = ApiError(413, "line_too_long", f"line {number} is longer than {limit} bytes")
    error.line = number
    return error
