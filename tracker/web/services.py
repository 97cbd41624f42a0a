"""What every handler can reach: settings, the store, codes, the link cache, the click
writer, telemetry — built once per app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from typing import cast

from starlette.requests import HTTPConnection

from tracker.addresses import IpStorage
from tracker.clicks import to_rows
from tracker.clickwriter import ClickWriter
from tracker.codes import CodeBook
from tracker.config import Settings
from tracker.store.base import Store, StoreError
from tracker.web.linkcache import LinkCache
from tracker.web.telemetry import Telemetry

log = logging.getLogger("tracker.links")


class Services:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.telemetry = Telemetry()
        self.links = LinkCache(
            store,
            settings.link_cache_size,
            settings.campaign_cache_seconds,
            settings.link_index_size,
        )
        durable = settings.click_durability == "durable"
        in_flight = 1
        if store.prepares_clicks:  # classified in the click process, off the event loop
            write, prepare = store.record_hits, list
            # Durable redirects wait for their commit: the next batch waits in the process's
            # pipe while one commits (decision 0011). In fast mode nobody waits on a commit,
            # and one batch at a time makes fewer, bigger ones.
            in_flight = 2 if durable else 1
        else:
            write = store.record_clicks
            prepare = partial(
                to_rows,
                trusted=settings.proxy_networks,
                ip_storage=cast(IpStorage, settings.ip_storage),
            )
        self.writer = ClickWriter(
            write,
            prepare,
            durable=durable,
            queue_size=settings.click_queue_size,
            batch_size=settings.click_batch_size,
            retry_seconds=settings.click_retry_seconds,
            in_flight=in_flight,
            signals_commit=store.prepares_clicks,
        )
        self.telemetry.watch(self.writer)
        self._codes: CodeBook | None = None
        self._indexing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the store, load the code secret and start filling the link index in the
        background (the app's lifespan calls this)."""
        await self.store.open()
        self.load_codes()
        self.telemetry.start()
        if self.settings.link_index_size:
            self._indexing = asyncio.get_running_loop().create_task(
                self._load_index(), name="link-index"
            )

    async def stop(self) -> None:
        """Drain the click writer, then close the store (SIGTERM ends up here)."""
        if self._indexing is not None:
            self._indexing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._indexing
        await self.writer.close()
        self.telemetry.stop()
        await self.store.close()

    async def _load_index(self) -> None:
        try:
            await self.links.load_index()
        except StoreError:
            # Redirects still work: links missing from the index are read from the store.
            log.exception("link index: not loaded")

    def load_codes(self) -> None:
        self._codes = CodeBook(self.store.code_secret)

    @property
    def codes(self) -> CodeBook:
        if self._codes is None:
            raise RuntimeError("services not started: the store has not been opened")
        return self._codes

    def short_url(self, code: str) -> str:
        return self.settings.short_url_prefix + code


def services_of(conn: HTTPConnection) -> Services:
    services: Services = conn.app.state.services
    return services
