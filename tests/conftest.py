"""Shared fixtures: a fresh SQLite store per test, the ASGI app over it, and API keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from tests.web.doors import http_client
from tracker import keys
from tracker.app import create_app
from tracker.config import Settings
from tracker.store import open_store
from tracker.store.sqlite import SqliteStore

BASE_URL = "https://s.example"
MakeKey = Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'tracker.db'}", base_url=BASE_URL)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[SqliteStore]:
    store = open_store(settings.database_url)  # as the server opens it
    assert isinstance(store, SqliteStore)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def door() -> str:
    """How ``client`` reaches the app (tests.web.doors): the ASGI app called directly;
    tests that must hold for both doors override this with both."""
    return "asgi"


@pytest.fixture
async def client(
    settings: Settings, store: SqliteStore, door: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, store=store)
    async with http_client(app, door) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client
    await app.services.writer.close()


@pytest.fixture
def make_key(store: SqliteStore) -> MakeKey:
    """``await make_key("workspace", "scope", ...)`` → Authorization headers for a new key."""

    async def make(workspace: str = "acme", *scopes: str) -> dict[str, str]:
        found = await store.ensure_workspace(workspace)
        new = keys.generate()
        chosen = frozenset(scopes or ("admin",))
        await store.add_api_key(found.id, new.key_id, new.key_hash, chosen, "test")
        return {"Authorization": f"Bearer {new.key}"}

    return make


@pytest.fixture
async def auth(make_key: MakeKey) -> dict[str, str]:
    """Headers of an admin key of workspace "acme"."""
    return await make_key("acme", "admin")
