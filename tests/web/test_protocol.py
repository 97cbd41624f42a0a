"""``RedirectProtocol``: which requests it answers itself, and that HTTP stays right when it
does — keep-alive, pipelining, a durable answer that waits, a client that leaves, a
shutdown, a paused socket. Raw HTTP over a real socket to uvicorn in this process; the
redirect's behaviour itself is tested through both doors in test_redirect.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.web.doors import Served, serving
from tracker.app import create_app
from tracker.config import Settings
from tracker.models import LinkRequest
from tracker.store.sqlite import SqliteStore
from tracker.web.protocol import RedirectProtocol
from tracker.web.redirect import Front

Response = tuple[int, dict[str, str], bytes]


async def read_response(reader: asyncio.StreamReader) -> Response:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = dict(line.lower().split(": ", 1) for line in lines)
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def get(code: str, version: str = "1.1", extra: str = "", method: str = "GET") -> bytes:
    return f"{method} /{code} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode()


@pytest.fixture
async def app(settings: Settings, store: SqliteStore) -> AsyncIterator[Front]:
    app = create_app(settings, store=store)
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


async def test_redirects_on_a_kept_alive_connection_are_answered_by_the_protocol(
    app: Front, code: str, asgi_calls: list[str]
) -> None:
    async with serving(app) as served:
        reader, writer = await connect(served)
        writer.write(get(code))  # the first open reads the store: the ASGI way
        first = await read_response(reader)
        answers = []
        for method in ("GET", "HEAD", "GET"):
            writer.write(get(code, method=method))
            answers.append(await read_response(reader))
        writer.close()
    assert asgi_calls == [f"/{code}"]
    assert [status for status, _, _ in [first, *answers]] == [302] * 4
    for _, headers, body in answers:
        assert set(headers) == {"date", "location", "cache-control", "content-length"}
        assert headers["cache-control"] == "no-store" and body == b""
        assert headers["location"].startswith("https://x.example/?tclid=")
    assert len({headers["location"] for _, headers, _ in [first, *answers]}) == 4
    assert app.services.writer.recorded + app.services.writer.queued >= 4


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /%s HTTP/1.0\r\nHost: t\r\n\r\n", 302),  # HTTP/1.0
        (b"GET /%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 302),
        (b"GET /%s?utm_source=x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 302),
        (b"GET http://t/%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 302),
        (b"POST /%s HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 404),
        (b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 200),
        (b"GET /zzzzzzzz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 404),
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
        closed = await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert answer[0] == status
    assert len(asgi_calls) == 1
    assert closed  # each asked for the connection to close, or was HTTP/1.0
    if status == 302:
        assert answer[1]["connection"] == "close"


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


async def test_pipelined_requests_are_answered_in_order(app: Front, code: str, held: Held) -> None:
    """A durable redirect waits for its commit; what is pipelined behind it waits its turn
    (uvicorn's queue), even a redirect the protocol could answer, whose click is taken only
    then."""
    async with serving(app) as served:
        reader, writer = await connect(served)
        writer.write(get(code))  # cache the link (its click is held too)
        await held.release(1)
        await read_response(reader)
        writer.write(get(code) + get(code) + get("healthz") + get(code))
        await asyncio.sleep(0.1)
        assert len(held.futures) == 2  # only the first of the four has been taken
        answers = []
        for count, responses in ((2, 1), (3, 2), (4, 1)):  # 302; 302 and /healthz; 302
            await held.release(count)
            answers += [await read_response(reader) for _ in range(responses)]
        writer.close()
    assert [status for status, _, _ in answers] == [302, 302, 200, 302]
    assert len({headers.get("location") for _, headers, _ in answers}) == 4


async def test_a_client_that_left_before_its_commit_is_not_written_to(
    app: Front, code: str, held: Held, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(app) as served:
        reader, writer = await connect(served)
        writer.write(get(code))
        await held.release(1)
        await read_response(reader)
        (protocol,) = served.server.server_state.connections
        written: list[bytes] = []
        transport = protocol.transport
        protocol.transport = _Spy(transport, written)  # type: ignore[attr-defined]
        writer.write(get(code))
        await held.taken(2)
        writer.close()
        await asyncio.sleep(0.1)
        assert not served.server.server_state.connections  # the server saw it go
        held.futures[1].set_result(None)
        await asyncio.sleep(0.05)
        reader, writer = await connect(served)  # the server goes on
        writer.write(get(code))
        await held.release(3)
        assert (await read_response(reader))[0] == 302
        writer.close()
    assert written == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


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


async def test_a_shutdown_answers_a_waiting_redirect_then_closes(
    app: Front, code: str, held: Held
) -> None:
    async with serving(app) as served:
        reader, writer = await connect(served)
        writer.write(get(code))
        await held.release(1)
        await read_response(reader)
        writer.write(get(code))
        await held.taken(2)
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
        await asyncio.sleep(0.2)
        assert asgi_calls == [f"/{code}"] and len(reader._buffer) == 0  # type: ignore[attr-defined]
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
