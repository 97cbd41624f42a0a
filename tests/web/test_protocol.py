"""``RedirectProtocol``: which requests it answers itself, and that HTTP stays right when it
does — keep-alive, pipelining, a durable answer that waits, a client that leaves, a
shutdown, a paused socket. Raw HTTP over a real socket to uvicorn in this process; the
redirect's behaviour itself is tested through both doors in test_redirect.py."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import BASE_URL as BASE
from tests.web.doors import Served, serving
from tests.web.stored import clicks
from tracker.app import create_app
from tracker.config import Settings
from tracker.models import LinkRequest
from tracker.store.sqlite import SqliteStore
from tracker.web import server
from tracker.web.protocol import RedirectProtocol
from tracker.web.redirect import Front

Response = tuple[int, dict[str, str], bytes]


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    return "asyncio", {"use_uvloop": True}  # as tracker serve runs (uvicorn's "auto")


async def until(condition: Callable[[], object], seconds: float = 5) -> None:
    """Wait until ``condition()`` holds (a state of the server, seen from the test)."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def read_response(reader: asyncio.StreamReader) -> Response:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = dict(line.lower().split(": ", 1) for line in lines)
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def get(code: str, version: str = "1.1", extra: str = "", method: str = "GET") -> bytes:
    return f"{method} /{code} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode()


@pytest.fixture(params=["durable", "fast"])
def durability(request: pytest.FixtureRequest) -> str:
    """The click durability: the protocol answers at once (fast) or from a callback."""
    return str(request.param)


@pytest.fixture
async def app(settings: Settings, store: SqliteStore, durability: str) -> AsyncIterator[Front]:
    chosen = Settings(
        database_url=settings.database_url, base_url=settings.base_url, click_durability=durability
    )
    app = create_app(chosen, store=store)
    yield app
    await app.services.writer.close()


@pytest.fixture
async def code(app: Front, store: SqliteStore) -> str:
    """A link outside any campaign (the LRU's kind: its first open reads the store)."""
    workspace = await store.ensure_workspace("w")
    (link,) = await store.issue_links(
        workspace.id,
        None,
        [LinkRequest("r", destination="https://x.example/")],
        app.services.codes.encode,
    )
    return link.code


@pytest.fixture
def asgi_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests that reached the ASGI app."""
    calls: list[str] = []
    original = Front.__call__

    async def counted(self: Front, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            calls.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(Front, "__call__", counted)
    return calls


# Tests whose clicks are ``Held``: the protocol waits on the future either way.
DURABLE_ONLY = pytest.mark.parametrize("durability", ["durable"])


class Held:
    """Durable clicks that commit only when the test says so (nothing is written)."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[None]] = []
        self._taken = asyncio.Event()

    def submit(self, click: object) -> asyncio.Future[None]:
        self.futures.append(asyncio.get_running_loop().create_future())
        self._taken.set()
        return self.futures[-1]

    async def taken(self, count: int) -> None:
        """Wait until ``count`` clicks were submitted."""
        async with asyncio.timeout(5):
            while len(self.futures) < count:
                self._taken.clear()
                await self._taken.wait()

    async def release(self, count: int) -> None:
        """Wait until ``count`` clicks were submitted, then let all of them commit."""
        await self.taken(count)
        await asyncio.sleep(0.05)  # nothing is answered before its commit
        for future in self.futures:
            if not future.done():
                future.set_result(None)


@pytest.fixture
def held(app: Front) -> Held:
    held = Held()
    app.services.writer.submit = held.submit  # type: ignore[method-assign]
    return held


async def connect(served: Served) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(served.host, served.port)


async def answered_once(
    served: Served, code: str, held: Held
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that has had ``code`` answered once (through the ASGI app, which caches
    the link), its click let commit."""
    reader, writer = await connect(served)
    writer.write(get(code))
    await held.release(1)
    await read_response(reader)
    return reader, writer


async def one_waiting(
    served: Served, code: str, held: Held
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``answered_once``, then a second request of ``code`` waiting for its commit (the
    protocol's: the link is cached)."""
    reader, writer = await answered_once(served, code, held)
    writer.write(get(code))
    await held.taken(2)
    return reader, writer


async def test_redirects_on_a_kept_alive_connection_are_answered_by_the_protocol(
    app: Front, code: str, asgi_calls: list[str], store: SqliteStore
) -> None:
    async with serving(app) as served:
        reader, writer = await connect(served)
        writer.write(get(code))  # the first open reads the store: the ASGI way
        first = await read_response(reader)
        answers = []
        for method in ("GET", "HEAD", "GET"):
            writer.write(get(code, method=method))
            answers.append(await read_response(reader))
        writer.close()  # the client leaves an answered connection: nothing to report
        await until(lambda: not served.server.server_state.connections)
    await app.services.writer.close()  # fast mode: written now
    assert [click["method"] for click in await clicks(store)] == ["GET", "GET", "HEAD", "GET"]
    assert asgi_calls == [f"/{code}"]
    assert [status for status, _, _ in [first, *answers]] == [302] * 4
    for _, headers, body in answers:
        assert set(headers) == {"date", "location", "cache-control", "content-length"}
        assert set(headers) == set(first[1])  # as the ASGI door answered
        assert headers["cache-control"] == "no-store" and body == b""
        assert headers["location"].startswith("https://x.example/?tclid=")
    assert len({headers["location"] for _, headers, _ in [first, *answers]}) == 4


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /%s HTTP/1.0\r\nHost: t\r\n\r\n", 302),  # HTTP/1.0: closes after
        (b"GET /%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 302),
        (b"GET /%s?utm_source=x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 302),
        # kept alive
        (b"GET http://t/%s HTTP/1.1\r\nHost: t\r\n\r\n", 302),  # absolute form
        (b"POST /%s HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 404),
        (b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", 200),
        (b"GET /zzzzzzzz HTTP/1.1\r\nHost: t\r\n\r\n", 404),  # its tag fails
        (b"GET /%s/x HTTP/1.1\r\nHost: t\r\n\r\n", 404),
        (b"GET /%61%s HTTP/1.1\r\nHost: t\r\n\r\n", 404),  # percent-encoded: /a + code
    ],
)
async def test_what_the_protocol_leaves_to_the_asgi_app(
    app: Front, code: str, asgi_calls: list[str], request_bytes: bytes, status: int
) -> None:
    """Everything but a keep-alive HTTP/1.1 GET or HEAD of a known code goes the ASGI way,
    and gets the answer it always got (here with the link already cached)."""
    async with serving(app) as served:
        reader, writer = await connect(served)
        writer.write(get(code))
        await read_response(reader)  # caches the link
        asgi_calls.clear()
        request = request_bytes.replace(b"%s", code.encode())
        writer.write(request)
        answer = await read_response(reader)
        keeps_alive = answer[1].get("connection") != "close"
        if keeps_alive:  # the connection still serves
            writer.write(get(code))
            assert (await read_response(reader))[0] == 302
        else:
            assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert answer[0] == status
    assert len(asgi_calls) == 1
    assert keeps_alive == (b"close" not in request and b"HTTP/1.0" not in request)


async def test_with_the_access_log_on_every_request_goes_the_asgi_way(
    app: Front, code: str, asgi_calls: list[str]
) -> None:
    """uvicorn logs a request where the ASGI app answers it, so with ``--access-log`` the
    protocol answers nothing itself."""
    async with serving(app, access_log=True) as served:
        reader, writer = await connect(served)
        for _ in range(2):
            writer.write(get(code))
            assert (await read_response(reader))[0] == 302
        writer.close()
    assert asgi_calls == [f"/{code}"] * 2


@DURABLE_ONLY
async def test_pipelined_requests_are_answered_in_order(app: Front, code: str, held: Held) -> None:
    """A durable redirect waits for its commit; what is pipelined behind it waits its turn
    (uvicorn's queue), even a redirect the protocol could answer, whose click is taken only
    then."""
    async with serving(app) as served:
        reader, writer = await answered_once(served, code, held)
        (protocol,) = served.server.server_state.connections
        writer.write(get(code) + get(code) + get("healthz") + get(code))
        await until(lambda: len(protocol.pipeline) == 3)  # type: ignore[attr-defined]
        assert len(held.futures) == 2  # only the first of the four has been taken
        answers = []
        for count, responses in ((2, 1), (3, 2), (4, 1)):  # 302; 302 and /healthz; 302
            await held.release(count)
            answers += [await read_response(reader) for _ in range(responses)]
        writer.close()
    assert [status for status, _, _ in answers] == [302, 302, 200, 302]
    assert len({headers.get("location") for _, headers, _ in answers}) == 4


@DURABLE_ONLY
async def test_a_client_that_left_before_its_commit_is_not_written_to(
    app: Front, code: str, held: Held
) -> None:
    async with serving(app) as served:
        written: list[bytes] = []
        reader, writer = await one_waiting(served, code, held)
        (protocol,) = served.server.server_state.connections
        protocol.transport = _Spy(protocol.transport, written)  # type: ignore[attr-defined]
        writer.close()
        await until(lambda: not served.server.server_state.connections)  # the server saw it go
        held.futures[1].set_result(None)
        await asyncio.sleep(0.05)  # the callback has run
        reader, writer = await connect(served)  # the server goes on
        writer.write(get(code))
        await held.release(3)
        assert (await read_response(reader))[0] == 302
        writer.close()
    assert written == []  # and serving() found no error logged


class _Spy:
    """A transport that notes what is written to it."""

    def __init__(self, transport: Any, written: list[bytes]) -> None:
        self._transport = transport
        self._written = written

    def write(self, data: bytes) -> None:
        self._written.append(data)
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


@DURABLE_ONLY
async def test_a_shutdown_answers_a_waiting_redirect_then_closes(
    app: Front, code: str, held: Held
) -> None:
    async with serving(app) as served:
        reader, writer = await one_waiting(served, code, held)
        served.server.should_exit = True  # as SIGTERM does: uvicorn waits for the answer
        await asyncio.sleep(0.3)
        assert len(reader._buffer) == 0  # type: ignore[attr-defined]
        held.futures[1].set_result(None)
        status, headers, _ = await read_response(reader)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert status == 302 and headers["connection"] == "close"


async def test_while_writes_are_paused_a_redirect_goes_the_asgi_way_and_waits(
    app: Front, code: str, asgi_calls: list[str]
) -> None:
    """A client that does not read its answers gets no more written than uvicorn allows."""
    async with serving(app) as served:
        reader, writer = await connect(served)
        writer.write(get(code))
        await read_response(reader)
        (protocol,) = served.server.server_state.connections
        assert isinstance(protocol, RedirectProtocol)
        protocol.pause_writing()  # as the transport does when its buffer is full
        asgi_calls.clear()
        writer.write(get(code))
        await until(lambda: asgi_calls == [f"/{code}"])
        await asyncio.sleep(0.1)  # the app's send waits for the writes to resume
        assert len(reader._buffer) == 0  # type: ignore[attr-defined]
        protocol.resume_writing()
        assert (await read_response(reader))[0] == 302
        writer.close()


async def test_the_protocol_serves_any_app_that_is_no_front(store: SqliteStore) -> None:
    """Run on an app without a ``Front`` (no redirect to answer), it is uvicorn's protocol."""

    async def plain(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with serving(plain) as served:
        reader, writer = await connect(served)
        writer.write(get("abc123"))
        assert (await read_response(reader))[0] == 204
        writer.close()


async def test_a_redirect_answered_ahead_leaves_no_idle_timer_on_the_next_request(
    store: SqliteStore, settings: Settings, asgi_calls: list[str]
) -> None:
    """An answer made while the rest of the read is still being parsed arms uvicorn's
    keep-alive timer; a slow request pipelined behind it must not be cut off by it."""

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(1.5)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    fast = Settings(database_url=settings.database_url, base_url=BASE, click_durability="fast")
    services = create_app(fast, store=store).services
    front = Front(slow, services)
    workspace = await store.ensure_workspace("w")
    (link,) = await store.issue_links(
        workspace.id,
        None,
        [LinkRequest("r", destination="https://x.example/")],
        services.codes.encode,
    )
    async with serving(front, timeout_keep_alive=1) as served:
        reader, writer = await connect(served)
        writer.write(get(link.code))  # the ASGI way: a store read
        await read_response(reader)
        asgi_calls.clear()
        writer.write(get(link.code) + get("api/slow"))
        answers = [await read_response(reader) for _ in range(2)]
        writer.close()
    await services.writer.close()
    assert [status for status, _, _ in answers] == [302, 200]
    assert asgi_calls == ["/api/slow"]  # the redirect was the protocol's


async def test_an_error_in_the_protocol_leaves_the_request_to_the_asgi_app(
    app: Front,
    code: str,
    asgi_calls: list[str],
    store: SqliteStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serving(app) as served:
        reader, writer = await connect(served)
        writer.write(get(code))
        await read_response(reader)
        asgi_calls.clear()
        route_now = Front.route_now
        failures = iter([True])

        def failing_once(self: Front, code: str) -> Any:
            if next(failures, False):
                raise RuntimeError("a bug")
            return route_now(self, code)

        monkeypatch.setattr(Front, "route_now", failing_once)
        writer.write(get(code))
        assert (await read_response(reader))[0] == 302
        writer.close()
    await app.services.writer.close()
    assert asgi_calls == [f"/{code}"]
    assert len(await clicks(store)) == 2  # one click each, none twice


@pytest.mark.parametrize("config", [{"root_path": "/r"}, {"proxy_headers": True}])
async def test_behind_a_root_path_or_a_wrapper_the_asgi_app_answers_all(
    app: Front, code: str, asgi_calls: list[str], config: dict[str, object]
) -> None:
    async with serving(app) as served:  # the link cached: the protocol could answer it
        reader, writer = await connect(served)
        writer.write(get(code))
        await read_response(reader)
        writer.close()
    asgi_calls.clear()
    async with serving(app, **config) as served:
        reader, writer = await connect(served)
        for _ in range(2):
            writer.write(get(code))
            await read_response(reader)
        writer.close()
    assert len(asgi_calls) == 2


async def test_an_error_after_the_click_closes_the_connection_after_one_answer(
    app: Front, code: str, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the click is taken the request is the protocol's: a failure then (here the
    metrics) gives no second answer and no second click; the connection closes."""
    async with serving(app) as served:
        reader, writer = await connect(served)
        writer.write(get(code))
        await read_response(reader)  # the ASGI way, caching the link

        def broken(seconds: float) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setitem(app.timed_302, "GET", broken)
        writer.write(get(code))
        assert (await read_response(reader))[0] == 302
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    await app.services.writer.close()
    assert len(await clicks(store)) == 2


async def test_connections_waiting_together_are_accepted_together(
    app: Front, code: str, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections queued on the listening socket at once: the first one's opening accepts
    all the others (tracker.web.server), not one a turn of the loop; each is served like
    any other, its click stored; the server's duplicate listening socket closes with it."""
    taken: list[int] = []
    take = server.take_waiting

    def counted(listener: socket.socket, most: int) -> list[socket.socket]:
        connections = take(listener, most)
        taken.append(len(connections))
        return connections

    monkeypatch.setattr(server, "take_waiting", counted)
    async with serving(app) as served:
        reader, writer = await connect(served)
        writer.write(get(code))  # the first open reads the store
        await read_response(reader)
        writer.close()
        accepting = served.server.server_state.accepting
        # Nothing here awaits: the loop is held, the kernel queues the connections.
        sockets = [socket.create_connection((served.host, served.port)) for _ in range(20)]
        for sock in sockets:
            sock.sendall(get(code))
        answers, writers = [], []
        for sock in sockets:
            reader, writer = await asyncio.open_connection(sock=sock)
            answers.append(await read_response(reader))
            writers.append(writer)
        # As libuv's own: no Nagle delay on the answers (uvloop sets it on any transport).
        nodelay = [
            protocol.transport.get_extra_info("socket").getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY
            )
            for protocol in served.server.server_state.connections
        ]
        for writer in writers:
            writer.close()
    await app.services.writer.close()
    assert [count for count in taken if count] == [19]
    assert [status for status, _, _ in answers] == [302] * 20
    assert len(nodelay) == 20 and all(nodelay)
    assert len(await clicks(store)) == 21
    assert served.server.server_state.accepting is None
    assert [listener.fileno() for listener in accepting.listeners] == [-1]
