"""Start the real ``tracker serve`` as a subprocess on a free loopback port, and stop it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

TRACKER = str(Path(sys.executable).with_name("tracker"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    output: list[str]

    @property
    def first_key(self) -> str | None:
        for line in self.output:
            match = re.search(r"\btrk_[0-9a-f]{12}_[A-Za-z0-9_-]+", line)
            if match:
                return match.group(0)
        return None


@contextmanager
def running_server(
    database: Path, *extra: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[Server]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            TRACKER,
            "serve",
            "--db",
            str(database),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    output: list[str] = []
    reader = threading.Thread(target=_collect, args=(process, output), daemon=True)
    reader.start()
    try:
        _wait_until_up(process, url, output)
        yield Server(process, url, output)
    finally:
        stop(process)
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM, and SIGKILL if it is not gone within 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _collect(process: subprocess.Popen[str], output: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line.rstrip("\n"))


def _wait_until_up(process: subprocess.Popen[str], url: str, output: list[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("tracker serve exited early:\n" + "\n".join(output))
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                time.sleep(0.05)  # let the reader thread catch up with the banner
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("tracker serve did not come up in 30 s:\n" + "\n".join(output))


class RawClient:
    """A minimal keep-alive HTTP/1.1 client over asyncio streams, for load in tests
    (httpx's async pool manages ≈ 200 requests/s here, too slow to load a server)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, dict[str, str]]:
        """(status, lower-cased headers); raises ``ConnectionError`` when the server is gone."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        try:
            await self._writer.drain()
            head = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, OSError) as error:
            raise ConnectionError(str(error)) from error
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length:
            await self._reader.readexactly(length)
        return status, headers

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
