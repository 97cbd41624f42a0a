"""``take_waiting``: the connections queued on a listening socket, taken in one go."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

from tracker.web.server import take_waiting


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
