"""``take_waiting``: the connections queued on a listening socket, taken in one go; and when
``Server`` takes none (the rest is tested through the protocol, in test_protocol.py)."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator

import pytest
import uvicorn

from tests.web.doors import serving
from tracker.web.server import _accepting, take_waiting


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
        assert served.server.server_state not in _accepting
    async with serving(app) as served:  # the same without TLS: taken
        assert served.server.server_state in _accepting
