"""The two doors a request can come through, for tests that must hold for both: the ASGI
app called directly (httpx's ASGI transport), and uvicorn with ``RedirectProtocol``, as
``tracker serve`` runs it, in this process on a free loopback port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import httpx
import uvicorn

from tracker.cli import UVICORN_OPTIONS
from tracker.web.server import Server

DOORS = ["asgi", "protocol"]


class Served(NamedTuple):
    host: str
    port: int
    server: Server


@asynccontextmanager
async def serving(app: Any, **config: Any) -> AsyncIterator[Served]:
    """Run ``app`` under uvicorn as ``tracker serve`` does (``UVICORN_OPTIONS``), on
    127.0.0.1 and a free port, with ``config`` on top (no lifespan: the tests open the store
    themselves); yield its address and the server, then stop it."""
    options = {
        **UVICORN_OPTIONS,
        "access_log": False,
        "lifespan": "off",
        "timeout_graceful_shutdown": 5,  # a test that failed leaves no request hanging
        **config,
    }
    server = Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **options))
    errors = _Errors()
    for name in _WATCHED:
        logging.getLogger(name).addHandler(errors)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                await asyncio.sleep(0.01)
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        yield Served(host, port, server)
    finally:
        server.should_exit = True
        await task  # a test may have stopped it already
        for name in _WATCHED:
            logging.getLogger(name).removeHandler(errors)
    # An exception in a protocol callback is only logged: fail on it.
    assert not errors.records, [record.getMessage() for record in errors.records]


# Where uvicorn and the event loop report what went wrong in a connection.
_WATCHED = ("asyncio", "uvicorn.error")


class _Errors(logging.Handler):
    def __init__(self) -> None:
        # uvicorn's warning "Invalid HTTP request received." is how an exception raised in
        # a protocol callback ends (httptools turns it into a parser error).
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@asynccontextmanager
async def http_client(app: Any, door: str) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client that reaches ``app`` through ``door`` (one of ``DOORS``)."""
    if door == "asgi":
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
        return
    async with (
        serving(app) as served,
        httpx.AsyncClient(base_url=f"http://{served.host}:{served.port}") as client,
    ):
        yield client
