"""A streaming NDJSON client for the benchmarks: it sends recipients with chunked encoding
while it reads the answer, as a real sender would (see docs/decisions/0002)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable


async def post_recipients(
    url: str, path: str, key: str, lines: int, consume: Callable[[bytes], None]
) -> float:
    """POST ``lines`` recipients ``{"ref": "r00000000"}``…; see ``post_lines``."""
    refs = (b'{"ref":"r%08d"}\n' % n for n in range(lines))
    return await post_lines(url, path, key, refs, consume)


async def post_lines(
    url: str, path: str, key: str, lines: Iterable[bytes], consume: Callable[[bytes], None]
) -> float:
    """POST NDJSON ``lines`` (each ending in a newline) with chunked encoding while reading
    the answer; every chunk of the raw response (head and body, chunk framing included)
    goes to ``consume``. Returns the seconds taken."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    ).encode()

    async def send() -> None:
        writer.write(head)
        batch: list[bytes] = []
        for line in lines:
            batch.append(line)
            if len(batch) == 2000:
                body = b"".join(batch)
                writer.write(b"%x\r\n%s\r\n" % (len(body), body))
                batch = []
                await writer.drain()
        if batch:
            body = b"".join(batch)
            writer.write(b"%x\r\n%s\r\n" % (len(body), body))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def receive() -> None:
        while chunk := await reader.read(1 << 20):
            consume(chunk)

    started = time.perf_counter()
    await asyncio.gather(send(), receive())
    elapsed = time.perf_counter() - started
    writer.close()
    return elapsed
