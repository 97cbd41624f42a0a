"""The SQLite store's write lock, which click batches hold together.

One SQLite file takes one write transaction at a time; a writer that finds it taken waits on
the busy timeout, which sleeps in steps of up to 100 ms. So the server's own writes (the
API's, the rollup's) take this lock alone (``exclusive``) and never meet each other in
SQLite. The click process's batches (decision 0011) take it together (``shared``): the
process commits them one after the other, so several may be handed to it at once — the
next one waiting in its pipe while the last commits — and still none meets a write of the
server's. A writer waiting for ``exclusive`` keeps further batches from joining the share:
it gets the lock when the batches already handed over are done, so a steady stream of
clicks cannot starve it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class WriteLock:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()  # held by one exclusive writer, or by the share
        self._sharers = 0  # shared holders inside
        self._shared = False  # whether the share holds ``_lock``
        self._exclusive_waiting = 0

    def locked(self) -> bool:
        """Whether a write or a batch holds it."""
        return self._lock.locked()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        self._exclusive_waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._exclusive_waiting -= 1
        try:
            yield
        finally:
            self._lock.release()

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        if not self._shared or self._exclusive_waiting:
            # Queue for the lock: behind whoever waits already, an exclusive writer included.
            await self._lock.acquire()
            self._shared = True
        self._sharers += 1
        try:
            yield
        finally:
            self._sharers -= 1
            if self._sharers == 0:
                self._shared = False
                self._lock.release()
