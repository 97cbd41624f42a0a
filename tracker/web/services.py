"""What every handler can reach: settings, the store, the code book, telemetry."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from tracker.codes import CodeBook
from tracker.config import Settings
from tracker.store.base import Store
from tracker.web.telemetry import Telemetry


@dataclass(slots=True)
class Services:
    settings: Settings
    store: Store
    telemetry: Telemetry = field(default_factory=Telemetry)
    _codes: CodeBook | None = None

    async def start(self) -> None:
        """Open the store and load the code secret (the app's lifespan calls this)."""
        await self.store.open()
        self.load_codes()

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
