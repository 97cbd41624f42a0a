"""Clicks written to SQLite by a process of their own (``TRACKER_CLICK_WRITER=process``, the
default).

In the server's process every Python step of a write — classifying a batch's clicks,
binding their values, the aiosqlite thread's hand-offs — holds the interpreter lock that
the redirect's event loop needs, so a click's write slowed redirects even though SQLite
itself runs on the other core. Here the server serialises the batch's raw clicks (orjson,
one C call) into a pipe, and a child process — ``python -P -m tracker.store.clickprocess
DB TRUSTED_PROXIES IP_STORAGE FOLD_SECONDS`` — classifies them (``tracker.clicks.to_rows``:
user agent, bot rules, address), inserts them in one transaction and answers when it has
committed; between batches it keeps the click rollup current (``serve``). A never-seen
User-Agent's parse (about a millisecond) happens there, not on the event loop.
``SqliteStore.record_hits`` holds the store's write lock around each batch, shared with the
batches in flight beside it (``tracker.store.writelock``), so clicks never wait on SQLite's
busy timeout for the server's own writes (and the other way round).

The pipe's frames: the server sends ``<u32 length><JSON array of clicks>``; the child
answers ``\\x00`` (committed) or ``\\x01<u32 length><message>`` (nothing written). The child
ignores SIGINT and SIGTERM: it stops when its stdin closes (the server closing the store, or
the server dying — a ``kill -9`` loses no committed batch, and no batch was answered
uncommitted). A child that died is started again at the next batch; the batch that found it
dead fails with ``StoreError`` and the click writer retries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import sqlite3
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, cast

import orjson

from tracker.addresses import IpStorage, parse_networks
from tracker.clicks import to_rows
from tracker.models import ClickFields
from tracker.store.base import StoreError

log = logging.getLogger("tracker.store")

_LENGTH = struct.Struct("<I")
_OK = b"\x00"
_FAILED = b"\x01"


@dataclass(frozen=True, slots=True)
class Preparation:
    """How the child turns a click into its row (``tracker.clicks.to_rows``'s settings)."""

    trusted_proxies: str = ""  # TRACKER_TRUSTED_PROXIES
    ip_storage: str = "truncated"  # TRACKER_IP_STORAGE


class ClickProcess:
    """The server's end: ``record`` sends a batch and returns once the child committed it.

    Batches may be handed over while earlier ones are still being written: the child takes
    them in order from its pipe and answers in the same order, so the next batch is ready
    when the last one commits (in durable mode the click writer keeps two in flight)."""

    def __init__(self, path: str, preparation: Preparation, fold_seconds: float = 0) -> None:
        self.path = path
        self.preparation = preparation
        self.fold_seconds = fold_seconds  # the child keeps the click rollup current (0: no)
        self._child: asyncio.SubprocessTransport | None = None
        self._answers: _Answers | None = None
        self._restarting = asyncio.Lock()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._child, self._answers = await loop.subprocess_exec(
            _Answers,
            sys.executable,
            # Without -P, ``-m`` puts the working directory first on the child's path: a
            # ``tracker`` folder where the server was started would stand in for the
            # package the server runs.
            "-P",
            "-m",
            __name__,
            self.path,
            self.preparation.trusted_proxies,
            self.preparation.ip_storage,
            str(self.fold_seconds),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,
        )

    async def record(
        self, clicks: Sequence[ClickFields], committed: Callable[[], None] | None = None
    ) -> None:
        """Classify and write ``clicks`` in one transaction (a click id already stored is
        skipped). Raises ``StoreError`` when the child could not, or is gone.

        ``committed`` is called when the child's answer says so, in the callback that reads
        it: the durable redirects it releases then answer in this turn of the event loop,
        not the next, after this coroutine has resumed (decision 0011)."""
        if self._answers is None or self._answers.gone:
            async with self._restarting:  # one restart for all the batches that found it
                if self._answers is None or self._answers.gone:
                    await self._restart()
        child, answers = self._child, self._answers
        assert child is not None and answers is not None
        try:
            payload = orjson.dumps(clicks, default=tuple)  # a Click: a tuple subclass
        except orjson.JSONEncodeError as error:  # e.g. a lone surrogate: never from a redirect
            raise StoreError(f"clicks not serialisable: {error}") from error
        stdin = cast(asyncio.WriteTransport, child.get_pipe_transport(0))
        answer = asyncio.get_running_loop().create_future()
        answers.waiting.append((answer, committed))
        stdin.write(_LENGTH.pack(len(payload)) + payload)
        # Cancelled, this leaves its answer to be read and dropped in its turn: the answers
        # of the batches behind it stay theirs.
        message = await answer
        if message is not None:
            raise StoreError(f"clicks not written: {message}")

    async def close(self) -> None:
        """Close the child's stdin and wait for it to finish its batches and exit."""
        child, answers = self._child, self._answers
        self._child = self._answers = None
        if child is None or answers is None:
            return
        cast(asyncio.WriteTransport, child.get_pipe_transport(0)).close()
        try:
            await asyncio.wait_for(asyncio.shield(answers.exited), 10)
        except TimeoutError:
            await self._end(child, answers)
        child.close()

    async def _restart(self) -> None:
        child, answers = self._child, self._answers
        if child is not None and answers is not None:
            code = child.get_returncode()
            log.warning("click writer process stopped (%s); starting it again", code)
            await self._end(child, answers)
        self._child = self._answers = None
        try:
            await self.start()
        except OSError as error:
            raise StoreError(f"cannot start the click writer process: {error}") from error

    @staticmethod
    async def _end(child: asyncio.SubprocessTransport, answers: _Answers) -> None:
        if child.get_returncode() is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
        await asyncio.shield(answers.exited)
        child.close()


class _Answers(asyncio.SubprocessProtocol):
    """The child's answers, matched in order to the batches waiting for them."""

    def __init__(self) -> None:
        self.waiting: deque[tuple[asyncio.Future[str | None], Callable[[], None] | None]] = deque()
        self.gone = False  # the child takes no more batches
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if fd != 1:
            return
        buffer = self._buffer
        buffer += cast(bytes, data)
        while buffer:
            if buffer[0] == _OK[0]:
                del buffer[:1]
                self._answer(None)
                continue
            end = 1 + _LENGTH.size
            if len(buffer) < end:
                return
            end += _LENGTH.unpack_from(buffer, 1)[0]
            if len(buffer) < end:
                return
            self._answer(bytes(buffer[1 + _LENGTH.size : end]).decode("utf-8", "replace"))
            del buffer[:end]

    def _answer(self, message: str | None) -> None:
        if not self.waiting:
            log.error("click writer process: an answer for no batch")
            return
        waiting, committed = self.waiting.popleft()
        if message is None and committed is not None:
            try:
                committed()
            except Exception:  # the caller's; the batch is committed all the same
                log.exception("click writer process: the commit callback failed")
        if not waiting.done():  # else its ``record`` was cancelled
            waiting.set_result(message)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._stop(f"its output closed ({exc!r})")

    def process_exited(self) -> None:
        self._stop("it exited")
        if not self.exited.done():
            self.exited.set_result(None)

    def _stop(self, why: str) -> None:
        # Whether the batches in flight committed is unknown: they fail and are retried (a
        # click id already stored is skipped).
        self.gone = True
        while self.waiting:
            waiting, _ = self.waiting.popleft()
            if not waiting.done():
                waiting.set_exception(StoreError(f"click writer process stopped: {why}"))


# --- the child --------------------------------------------------------------------------


class _Frames:
    """Length-prefixed frames from a file descriptor, waited for with a timeout."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()

    def next(self, timeout: float | None) -> bytes | None:
        """The next frame; ``None`` if none came within ``timeout`` seconds (``None``: wait
        as long as it takes). Raises ``EOFError`` at the end of input."""
        while True:
            buffer = self._buffer
            if len(buffer) >= _LENGTH.size:
                (size,) = _LENGTH.unpack_from(buffer)
                end = _LENGTH.size + size
                if len(buffer) >= end:
                    frame = bytes(buffer[_LENGTH.size : end])
                    del buffer[:end]
                    return frame
            if not select.select([self._fd], [], [], timeout)[0]:
                return None
            data = os.read(self._fd, 1 << 20)
            if not data:
                raise EOFError  # the server closed the pipe (or died); a cut frame is dropped
            buffer += data


def serve(
    path: str, preparation: Preparation, source: int, answers: BinaryIO, fold_seconds: float = 0
) -> None:
    """Classify and insert each batch read from file descriptor ``source`` and answer on
    ``answers``, until end of input.

    With ``fold_seconds`` > 0 it also keeps the click rollup (decision 0009) current, in
    the time between batches: every ``fold_seconds`` it folds what was written since (by
    any process), ``ROLL_BATCH`` clicks a transaction, resting after each for nine times as
    long as it took — a batch that arrives meanwhile waits for one such transaction at
    most (≈ 1 ms). In the server's process the same fold held the interpreter lock the
    redirects need, and it was most of fast mode's p99."""
    from tracker.store.sqlite import (
        PRAGMAS,
        ROLL_BATCH,
        ROLL_DUTY,
        fold_transaction,
        insert_clicks,
    )

    trusted = parse_networks(preparation.trusted_proxies)
    ip_storage = cast(IpStorage, preparation.ip_storage)
    frames = _Frames(source)
    folding = fold_seconds > 0
    fold_at = time.monotonic() + fold_seconds

    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    try:
        while True:
            timeout = max(0.0, fold_at - time.monotonic()) if folding else None
            try:
                payload = frames.next(timeout)
            except EOFError:
                return
            if payload is None:  # time to fold
                started = time.monotonic()
                try:
                    folded = fold_transaction(conn, ROLL_BATCH)
                except sqlite3.Error as error:
                    log.warning("click rollup failed, will retry: %s", error)
                    folded = 0
                spent = time.monotonic() - started
                fold_at = time.monotonic() + (
                    spent * (1 / ROLL_DUTY - 1) if folded else fold_seconds
                )
                continue
            try:
                rows = to_rows(orjson.loads(payload), trusted, ip_storage)  # lists: fine
                conn.execute("BEGIN IMMEDIATE")
                try:
                    insert_clicks(conn, rows)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, orjson.JSONDecodeError, ValueError, TypeError) as error:
                message = f"{type(error).__name__}: {error}".encode()
                answers.write(_FAILED + _LENGTH.pack(len(message)) + message)
            else:
                answers.write(_OK)
            answers.flush()
    finally:
        conn.close()


def main() -> None:
    # Ctrl-C reaches the whole process group and ``docker stop`` the server: the server
    # drains its queue into this process first, then closes stdin, which ends it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(format="%(levelname)s:     %(name)s: %(message)s")
    path, trusted_proxies, ip_storage, fold_seconds = sys.argv[1:5]
    preparation = Preparation(trusted_proxies, ip_storage)
    with contextlib.suppress(BrokenPipeError):
        serve(path, preparation, sys.stdin.fileno(), sys.stdout.buffer, float(fold_seconds))


if __name__ == "__main__":
    main()
