"""``Server``: ``take_waiting`` (the connections queued on a listening socket, taken in one
go), no taking over TLS, and a shutdown in the turn connections are taken. The taking
itself is tested through the protocol, in test_protocol.py."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from tests.web.doors import serving
from tracker.cli import UVICORN_OPTIONS
from tracker.web import server
from tracker.web.server import take_waiting


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    return "asyncio", {"use_uvloop": True}  # libuv accepts one connection a turn


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        yield listener


def test_takes_what_waits_in_order_up_to_most(listener: socket.socket) -> None:
    clients = [socket.create_connection(listener.getsockname()) for _ in range(5)]
    first = take_waiting(listener, 3)
    rest = take_waiting(listener, 10)
    empty = take_waiting(listener, 10)  # none waiting: no wait either
    taken = first + rest
    with contextlib.ExitStack() as stack:
        for sock in [*clients, *taken]:
            stack.enter_context(sock)
        assert [len(first), len(rest), len(empty)] == [3, 2, 0]
        assert [sock.getpeername() for sock in taken] == [c.getsockname() for c in clients]
        assert all(sock.gettimeout() == 0.0 for sock in taken)  # non-blocking, for the loop
        for sock, client in zip(taken, clients, strict=True):
            client.sendall(b"ping")
            assert sock.recv(4) == b"ping"  # connected to its client


def test_a_closed_listener_yields_nothing(listener: socket.socket) -> None:
    listener.close()
    assert take_waiting(listener, 10) == []


async def test_over_tls_no_connection_is_taken_beside_uvicorn() -> None:
    """A connection taken here would skip the TLS wrapping of uvicorn's listener."""

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("no request expected")

    def context(config: uvicorn.Config, default: object) -> ssl.SSLContext:
        return ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)

    async with serving(app, ssl_context_factory=context) as served:
        assert served.server.config.is_ssl
        assert served.server.server_state.accepting is None
    async with serving(app) as served:  # the same without TLS: taken
        assert served.server.server_state.accepting is not None


async def test_connections_taken_as_the_server_shuts_down_are_shut_down_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shutdown that begins in the very turn connections are taken waits for them to
    start, so uvicorn shuts them down with the others (not left open past it)."""

    async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    config = uvicorn.Config(
        hello, host="127.0.0.1", port=0, lifespan="off", timeout_graceful_shutdown=2,
        log_level="warning", **UVICORN_OPTIONS,
    )  # fmt: skip
    served = server.Server(config)
    config.load()  # what uvicorn's Server.serve does before its startup
    served.lifespan = config.lifespan_class(config)
    await served.startup()
    shutting: asyncio.Future[asyncio.Task[None]] = asyncio.get_running_loop().create_future()
    take = server.take_waiting

    def then_shut_down(listener: socket.socket, most: int) -> list[socket.socket]:
        connections = take(listener, most)
        if connections and not shutting.done():
            shutting.set_result(asyncio.create_task(served.shutdown()))
        return connections

    monkeypatch.setattr(server, "take_waiting", then_shut_down)
    host, port = served.servers[0].sockets[0].getsockname()[:2]
    clients = [socket.create_connection((host, port)) for _ in range(10)]
    for client in clients:
        client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    await asyncio.wait_for(await asyncio.wait_for(shutting, 5), 10)
    left = len(served.server_state.connections)
    answers = []
    for client in clients:
        reader, writer = await asyncio.open_connection(sock=client)
        answers.append(await asyncio.wait_for(reader.read(), 5))  # until the server closes
        writer.close()
    assert left == 0
    assert all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers)
