"""The click writer: clicks queued by the redirect, committed in batches by one task.

Group commit: while one batch is being written, the next one gathers in the queue, so under
load each commit carries many clicks. Two modes:

* ``durable`` (default): ``submit`` returns a future that completes when the click's batch
  has committed; the redirect answers only then, so a click whose 302 was sent survives a
  ``kill -9``. If the store fails, or has not committed within ``max_wait`` seconds, the
  future completes anyway — the recipient gets the redirect — and the click stays queued.
* ``fast``: ``submit`` returns ``None`` and the redirect answers at once; clicks gather for
  ``linger`` (5 ms) and commit together. A ``kill -9`` loses what was queued (a few
  milliseconds' worth); a SIGTERM drains it.

With ``in_flight`` > 1, that many batches may be written at once (the click process takes
the next one while the last commits, decision 0011); each is taken from the queue as a
writing task comes free. A batch that fails is retried with backoff for ``retry_seconds``,
then dropped. When the queue holds ``queue_size`` clicks, new ones are dropped. Either way
the redirect still goes out, and every dropped click is counted (``dropped``, exported to
/metrics).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from tracker.models import ClickFields
from tracker.store.base import StoreError

log = logging.getLogger("tracker.clicks")

# ``prepare`` turns a batch of clicks into what ``write`` stores in one go: rows classified
# here (``tracker.clicks.to_rows``), or the clicks as they are for a store that prepares them
# itself, away from the event loop (decision 0011).
Prepare = Callable[[Sequence[ClickFields]], Sequence[Any]]
# ``write(rows)``, or with ``signals_commit`` ``write(rows, committed)``.
Write = Callable[..., Awaitable[None]]
_Entry = tuple[ClickFields, "asyncio.Future[None] | None"]


class ClickWriter:
    def __init__(
        self,
        write: Write,
        prepare: Prepare,
        *,
        durable: bool = True,
        queue_size: int = 100_000,
        batch_size: int = 1_000,
        retry_seconds: float = 60.0,
        max_wait: float = 2.0,
        linger: float = 0.005,
        in_flight: int = 1,
        signals_commit: bool = False,
    ) -> None:
        self.durable = durable
        self._write_rows = write
        self._prepare = prepare
        self._queue: deque[_Entry] = deque()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._retry_seconds = retry_seconds
        self._max_wait = max_wait
        self._linger = linger
        self._wake = asyncio.Event()
        self._waiting = 0  # writing tasks waiting for ``_wake``: only they need it set
        self._in_flight = in_flight
        # ``write(rows, committed)`` calls ``committed()`` the moment the batch is known to
        # be committed (the click process's answer, read in an I/O callback): durable
        # redirects then answer in that turn of the event loop instead of the next one,
        # after the writing task has resumed.
        self._signals_commit = signals_commit
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._writing: list[list[_Entry]] = []  # per writing task, the batch it writes
        self.recorded = 0
        self.dropped = 0
        self.failures = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, click: ClickFields) -> asyncio.Future[None] | None:
        """Queue ``click``; in durable mode, a future that completes once it is committed."""
        if not self._tasks:
            self._start()
        if len(self._queue) >= self._queue_size or self._closing:
            self.dropped += 1
            return None
        future = asyncio.get_running_loop().create_future() if self.durable else None
        self._queue.append((click, future))
        if self._waiting:  # a writing task that is busy takes the queue when it is done
            self._wake.set()
        return future

    async def close(self, grace: float = 10.0) -> None:
        """Stop taking clicks and write what is queued, then stop.

        Gives up after ``grace`` seconds (default 10: less than a container's stop grace
        period), counting what is still queued as dropped.
        """
        self._closing = True
        self._wake.set()
        if not self._tasks:
            return
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.gather(*self._tasks)), grace)
        except TimeoutError:
            for task in self._tasks:
                task.cancel()
            lost = [*(entry for batch in self._writing for entry in batch), *self._queue]
            self.dropped += len(lost)
            self._release(lost)
            self._queue.clear()
            log.error("click writer: %d clicks not written at shutdown", len(lost))

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        for number in range(self._in_flight):
            writing: list[_Entry] = []
            self._writing.append(writing)
            self._tasks.append(loop.create_task(self._run(writing), name=f"click-writer-{number}"))

    async def _run(self, writing: list[_Entry]) -> None:
        """One writing task: takes what is queued, writes it, and again. ``writing`` holds
        the batch being written (for ``close``)."""
        while True:
            while self._queue:
                if not self.durable and len(self._queue) < self._batch_size and not self._closing:
                    # Fast mode: let a batch gather for a few milliseconds. Under load that
                    # turns many tiny commits, each a trip to the writer thread, into few.
                    await asyncio.sleep(self._linger)
                    if not self._queue:
                        break  # another writing task took it meanwhile
                if len(self._queue) <= self._batch_size:  # the usual case: take it all
                    batch = list(self._queue)
                    self._queue.clear()
                else:
                    batch = [self._queue.popleft() for _ in range(self._batch_size)]
                writing[:] = batch
                await self._write(batch)
                writing.clear()
            if self._closing:
                self._wake.set()  # for the other writing tasks, woken once already
                return
            # Checked the queue, then waits with no await between: a click submitted while
            # this task writes is taken in the loop above, without a wake-up.
            self._waiting += 1
            try:
                await self._wake.wait()
            finally:
                self._waiting -= 1
            self._wake.clear()

    async def _write(self, batch: list[_Entry]) -> None:
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self._max_wait, self._release, batch) if self.durable else None
        try:
            rows = self._prepare([click for click, _ in batch])
        except Exception:
            log.exception("click writer: %d clicks could not be prepared", len(batch))
            self.dropped += len(batch)
            self._release(batch)
            return
        deadline = time.monotonic() + self._retry_seconds
        delay = 0.05
        while True:
            try:
                if self._signals_commit and self.durable:
                    await self._write_rows(rows, partial(self._release, batch))
                else:
                    await self._write_rows(rows)
            except StoreError as error:
                self.failures += 1
                self._release(batch)  # the recipients get their redirects now,
                self._release(list(self._queue))  # and so do those queued behind them
                if time.monotonic() + delay > deadline:
                    self.dropped += len(rows)
                    log.error("click writer: %d clicks dropped: %s", len(rows), error)
                    break
                log.warning("click writer: retrying %d clicks: %s", len(rows), error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except Exception:
                # Not the store's refusal but a bug: retrying would repeat it. The batch is
                # given up (and counted); the writer lives on for the clicks behind it.
                log.exception("click writer: %d clicks dropped", len(rows))
                self.failures += 1
                self.dropped += len(rows)
                break
            else:
                self.recorded += len(rows)
                break
        if timer is not None:
            timer.cancel()
        self._release(batch)

    @staticmethod
    def _release(batch: list[_Entry]) -> None:
        for _, future in batch:
            if future is not None and not future.done():
                future.set_result(None)
