"""What every handler can reach: settings, the store, codes, the link cache, the click
writer, telemetry — built once per app."""

from __future__ import annotations

from functools import partial
from typing import cast

from starlette.requests import HTTPConnection

from tracker.addresses import IpStorage
from tracker.clicks import to_rows
from tracker.clickwriter import ClickWriter
from tracker.codes import CodeBook
from tracker.config import Settings
from tracker.store.base import Store
from tracker.web.linkcache import LinkCache
from tracker.web.redirect import Redirector
from tracker.web.telemetry import Telemetry


class Services:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.telemetry = Telemetry()
        self.links = LinkCache(store, settings.link_cache_size, settings.campaign_cache_seconds)
        prepare = partial(
            to_rows,
            trusted=settings.proxy_networks,
            ip_storage=cast(IpStorage, settings.ip_storage),
        )
        self.writer = ClickWriter(
            store,
            prepare,
            durable=settings.click_durability == "durable",
            queue_size=settings.click_queue_size,
            batch_size=settings.click_batch_size,
            retry_seconds=settings.click_retry_seconds,
        )
        self.telemetry.watch(self.writer)
        self._codes: CodeBook | None = None
        self._redirector: Redirector | None = None

    async def start(self) -> None:
        """Open the store and load the code secret (the app's lifespan calls this)."""
        await self.store.open()
        self.load_codes()

    async def stop(self) -> None:
        """Drain the click writer, then close the store (SIGTERM ends up here)."""
        await self.writer.close()
        await self.store.close()

    def load_codes(self) -> None:
        self._codes = CodeBook(self.store.code_secret)
        self._redirector = Redirector(
            self._codes, self.links, self.writer, bool(self.settings.proxy_networks)
        )

    @property
    def codes(self) -> CodeBook:
        if self._codes is None:
            raise RuntimeError("services not started: the store has not been opened")
        return self._codes

    @property
    def redirector(self) -> Redirector:
        if self._redirector is None:
            raise RuntimeError("services not started: the store has not been opened")
        return self._redirector

    def short_url(self, code: str) -> str:
        return self.settings.short_url_prefix + code


def services_of(conn: HTTPConnection) -> Services:
    services: Services = conn.app.state.services
    return services
