"""The uvicorn server ``tracker serve`` runs with one worker: uvicorn's, except that a new
connection brings in every connection waiting behind it at once (docs/decisions/0013).

Under uvloop, libuv accepts one connection each time the event loop finds the listening
socket readable: one per turn of the loop (libuv 1.45 and later; asyncio's own loop takes
up to the backlog in one go). A turn also serves every connection with a request waiting,
so when many connections open at once on a busy server, the k-th is accepted only k turns
later, each turn as long as the requests served in it. In the redirect benchmark, the 64
connections wrk opens at the start of a run waited up to 180 ms that way, while the first
ones were answered again and again; steady, no request waited over 15 ms.

``Server`` keeps a duplicate of each listening socket, and each connection the protocol
sees opening (``accept_waiting``, from ``RedirectProtocol.connection_made``) accepts the
connections already waiting — up to the backlog, as asyncio does — and hands each to the
loop with ``connect_accepted_socket``. They are then served from the next turn on, beside
the others. libuv's own accept finds the queue empty, or takes the next one.

With several workers (``TRACKER_WORKERS``), uvicorn starts its own servers, which keep
libuv's way: there, taking a whole burst would leave it to one worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState


@dataclass(slots=True)
class _Accepting:
    listeners: list[socket.socket]  # duplicates of the server's listening sockets
    most: int  # connections taken from one listener in one go: uvicorn's backlog
    starting: set[asyncio.Task[None]] = field(default_factory=set)


STARTING_S = 1.0  # how long a shutdown waits for connections taken to be started


class _State(ServerState):
    """uvicorn's state shared by a server's connections, with what they accept for it:
    ``None`` before startup, after shutdown, and over TLS."""

    def __init__(self) -> None:
        super().__init__()
        self.accepting: _Accepting | None = None


class Server(uvicorn.Server):
    """``uvicorn.Server``, with the waiting connections accepted together."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.server_state = self._state = _State()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # Over TLS, a connection taken here would have to be wrapped as uvicorn's listener
        # wraps it; tracker serve has no TLS (a proxy in front terminates it).
        if not self.started or self.config.is_ssl:
            return
        listeners = []
        for server in self.servers:
            for listening in server.sockets or ():
                listener = socket.socket(fileno=os.dup(listening.fileno()))
                listener.setblocking(False)
                listeners.append(listener)
        self._state.accepting = _Accepting(listeners, self.config.backlog)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        accepting, self._state.accepting = self._state.accepting, None
        if accepting is not None:
            for listener in accepting.listeners:
                listener.close()
            for server in self.servers:  # uvicorn's first step, taken early: none accepted
                server.close()  # while the ones taken start
            # Connections already taken become the server's, for it to shut down with the
            # others: none is left out of the graceful shutdown.
            if accepting.starting:  # a turn of the loop or two
                await asyncio.wait(accepting.starting, timeout=STARTING_S)
        await super().shutdown(sockets)


def accept_waiting(protocol: HttpToolsProtocol) -> None:
    """Accept the connections waiting on the listening sockets of ``protocol``'s server
    and start each with a protocol like it; none unless a ``Server`` runs it."""
    state = protocol.server_state
    accepting = state.accepting if isinstance(state, _State) else None
    if accepting is None:
        return
    taken = [
        connection
        for listener in accepting.listeners
        for connection in take_waiting(listener, accepting.most)
    ]
    if not taken:  # the usual case: one accept() a listener, and nothing else
        return
    loop = protocol.loop
    factory = partial(
        type(protocol),
        config=protocol.config,
        server_state=state,
        app_state=protocol.app_state,
        _loop=loop,
    )
    for connection in taken:
        task = loop.create_task(_start(loop, factory, connection))
        accepting.starting.add(task)
        task.add_done_callback(accepting.starting.discard)


def take_waiting(listener: socket.socket, most: int) -> list[socket.socket]:
    """Up to ``most`` connections waiting on ``listener`` (non-blocking), in their order.

    Stops at the first error: none waiting (``BlockingIOError``), or one that libuv's own
    accept will meet and report in its turn (out of file descriptors, say)."""
    taken = []
    while len(taken) < most:
        try:
            connection, _ = listener.accept()
        except OSError:
            break
        connection.setblocking(False)
        taken.append(connection)
    return taken


async def _start(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.Protocol],
    connection: socket.socket,
) -> None:
    try:
        await loop.connect_accepted_socket(factory, connection)
    except BaseException as error:
        # Once the loop owns the socket it has detached it, and this does nothing.
        with contextlib.suppress(OSError):
            connection.close()
        if isinstance(error, OSError):  # gone before it could be started: nothing was read
            return
        if not isinstance(error, Exception):  # cancelled (the loop is closing), or exiting
            raise
        loop.call_exception_handler(
            {"message": "a connection taken could not be started", "exception": error}
        )
