"""The SQLite backend: one write connection, one read connection, WAL.

Datasette's pattern: every write runs under one asyncio lock on one aiosqlite connection
(one thread, ``BEGIN IMMEDIATE``); reads go through a second connection and never wait for
writes. Several processes on one file serialise through SQLite's own lock (busy timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from tracker.models import (
    Campaign,
    CampaignSpec,
    ClickRow,
    IssuedLink,
    Link,
    LinkRequest,
    LinkTarget,
    Principal,
    Variant,
    Workspace,
)
from tracker.store.base import StoreError
from tracker.store.migrations import migrate_sqlite

log = logging.getLogger("tracker.store")

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # Checkpoints run from a thread of their own (Checkpointer), never inside a commit: an
    # automatic checkpoint syncs the database file and stalled durable redirects for
    # hundreds of milliseconds.
    "PRAGMA wal_autocheckpoint=0",
    "PRAGMA journal_size_limit=67108864",  # a checkpointed WAL shrinks back to 64 MB
    # NORMAL in WAL mode: a commit survives the process being killed (kill -9); only an OS
    # crash or power loss can take back the last commits. See docs/decisions.
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-65536",
)

SNAPSHOT_SECONDS = 0.5

# The redirect's lookups read pages straight from the mapped file: no read() syscall per
# B-tree page when a million links do not fit the page cache.
MMAP = "PRAGMA mmap_size=1073741824"

_CAMPAIGN_COLUMNS = (
    "id, workspace_id, name, slug, destination, utm, click_id_param, attribution_window_hours,"
    " cost_per_message, currency, expires_at, fallback_url, disabled, variants, created_at"
)
_LINK_COLUMNS = "id, code, workspace_id, campaign_id, ref, variant, destination, params, created_at"
_UPDATABLE = {"name", "fallback_url", "expires_at", "disabled"}


def now_ms() -> int:
    return int(time.time() * 1000)


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


class SqliteStore:
    """``Store`` on one SQLite file.

    Three connections: the writer (aiosqlite, one thread, every write under one lock), a
    reader for the API (aiosqlite), and a read-only plain ``sqlite3`` connection for the
    redirect's lookups by code and by campaign id. Those are primary-key reads of a few
    microseconds, so they run on the event loop itself: a thread hop would cost more.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lookup: sqlite3.Connection | None = None
        self._lookup_uri = Path(path).absolute().as_uri() + "?mode=ro"
        self._snapshot_at = float("-inf")
        self._checkpointer = Checkpointer(path, on_tick=self._end_stale_snapshot)
        self._write_lock = asyncio.Lock()
        self._secret: bytes | None = None

    # Lifecycle

    async def open(self) -> None:
        try:
            await asyncio.to_thread(migrate_sqlite, self.path)
            self._writer = await self._connect()
            self._reader = await self._connect()
            self._lookup = sqlite3.connect(
                self._lookup_uri,
                uri=True,
                check_same_thread=False,
                isolation_level=None,
            )
            # SQLite's default page cache, not a large one: with the file mapped, a big cache
            # only copies pages the OS already holds (measured slower on random lookups).
            for pragma in ("PRAGMA query_only=ON", MMAP):
                self._lookup.execute(pragma)
            row = await self._read_one("SELECT value FROM meta WHERE name = 'code_secret'")
            self._checkpointer.start()
        except (aiosqlite.Error, sqlite3.Error) as error:
            raise StoreError(f"cannot open SQLite database {self.path!r}: {error}") from error
        if row is None:
            raise StoreError("the database has no code secret; run `tracker migrate`")
        self._secret = bytes(row[0])

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in PRAGMAS:
            await conn.execute(pragma)
        return conn

    async def close(self) -> None:
        await self._checkpointer.stop()
        for conn in (self._writer, self._reader):
            if conn is not None:
                await conn.close()
        if self._lookup is not None:
            self._lookup.close()
        self._writer = self._reader = None
        self._lookup = None

    async def ping(self) -> None:
        try:
            await self._read_one("SELECT 1")
        except (aiosqlite.Error, ValueError) as error:
            raise StoreError(f"SQLite is not answering: {error}") from error

    @property
    def code_secret(self) -> bytes:
        if self._secret is None:
            raise StoreError("the store is not open")
        return self._secret

    # Plumbing

    @property
    def _w(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise StoreError("the store is not open")
        return self._writer

    @property
    def _r(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreError("the store is not open")
        return self._reader

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._write_lock:
            conn = self._w
            try:
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    await conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # also when COMMIT itself failed
                        await conn.execute("ROLLBACK")
                    raise
            except (aiosqlite.Error, sqlite3.Error) as error:
                raise StoreError(f"write failed: {error}") from error

    async def _read_one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self._r.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def _read_all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._r.execute_fetchall(sql, params))

    # Workspaces and API keys

    async def ensure_workspace(self, name: str) -> Workspace:
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO workspaces (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (name, now_ms()),
            )
            async with conn.execute(
                "SELECT id, name, allowed_schemes FROM workspaces WHERE name = ?", (name,)
            ) as cursor:
                row = await cursor.fetchone()
        return _workspace(row)

    async def set_allowed_schemes(self, workspace_id: int, schemes: Sequence[str]) -> Workspace:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE workspaces SET allowed_schemes = ? WHERE id = ?",
                (orjson.dumps(sorted(set(schemes))).decode(), workspace_id),
            )
            async with conn.execute(
                "SELECT id, name, allowed_schemes FROM workspaces WHERE id = ?", (workspace_id,)
            ) as cursor:
                row = await cursor.fetchone()
        if row is None:
            raise StoreError(f"no workspace {workspace_id}")
        return _workspace(row)

    async def add_api_key(
        self, workspace_id: int, key_id: str, key_hash: str, scopes: frozenset[str], label: str
    ) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO api_keys (key_id, key_hash, workspace_id, scopes, label, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, key_hash, workspace_id, " ".join(sorted(scopes)), label, now_ms()),
            )

    async def find_api_key(self, key_id: str) -> tuple[str, Principal] | None:
        row = await self._read_one(
            "SELECT k.key_hash, k.scopes, w.id, w.name, w.allowed_schemes"
            " FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id"
            " WHERE k.key_id = ? AND k.revoked_at IS NULL",
            (key_id,),
        )
        if row is None:
            return None
        workspace = _workspace(row[2:])
        return row[0], Principal(workspace, key_id, frozenset(row[1].split()))

    async def count_api_keys(self) -> int:
        row = await self._read_one("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL")
        return int(row[0])

    # Campaigns

    async def add_campaign(self, workspace_id: int, spec: CampaignSpec) -> Campaign:
        created = now_ms()
        async with self._transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO campaigns (workspace_id, name, slug, destination, utm,"
                " click_id_param, attribution_window_hours, cost_per_message, currency,"
                " expires_at, fallback_url, disabled, variants, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    workspace_id,
                    spec.name,
                    spec.slug,
                    spec.destination,
                    orjson.dumps(spec.utm).decode(),
                    spec.click_id_param,
                    spec.attribution_window_hours,
                    None if spec.cost_per_message is None else str(spec.cost_per_message),
                    spec.currency,
                    _ms(spec.expires_at),
                    spec.fallback_url,
                    int(spec.disabled),
                    _dump_variants(spec.variants),
                    created,
                ),
            )
            campaign_id = cursor.lastrowid
        campaign = await self.get_campaign(workspace_id, int(campaign_id or 0))
        if campaign is None:
            raise StoreError("a campaign vanished right after it was written")
        return campaign

    async def get_campaign(self, workspace_id: int, campaign_id: int) -> Campaign | None:
        row = await self._read_one(
            f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ? AND workspace_id = ?",
            (campaign_id, workspace_id),
        )
        return None if row is None else _campaign(row)

    async def list_campaigns(
        self, workspace_id: int, limit: int, before_id: int | None
    ) -> list[Campaign]:
        rows = await self._read_all(
            f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE workspace_id = ? AND id < ?"
            " ORDER BY id DESC LIMIT ?",
            (workspace_id, before_id if before_id is not None else 2**63 - 1, limit),
        )
        return [_campaign(row) for row in rows]

    async def update_campaign(
        self, workspace_id: int, campaign_id: int, changes: dict[str, Any]
    ) -> Campaign | None:
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise StoreError(f"campaign fields that cannot change: {sorted(unknown)}")
        if changes:
            values = {
                "expires_at": _ms,
                "disabled": int,
            }
            assignments = ", ".join(f"{name} = ?" for name in changes)
            params = [values.get(name, _same)(value) for name, value in changes.items()]
            async with self._transaction() as conn:
                await conn.execute(
                    f"UPDATE campaigns SET {assignments} WHERE id = ? AND workspace_id = ?",
                    (*params, campaign_id, workspace_id),
                )
        return await self.get_campaign(workspace_id, campaign_id)

    # Links

    async def issue_links(
        self,
        workspace_id: int,
        campaign_id: int | None,
        requests: Sequence[LinkRequest],
        encode: Callable[[int], str],
    ) -> list[IssuedLink]:
        by_ref: dict[str, LinkRequest] = {}
        for request in requests:
            if request.ref is not None:
                by_ref.setdefault(request.ref, request)
        async with self._transaction() as conn:
            found: dict[str | None, IssuedLink] = {}
            if by_ref and campaign_id is not None:
                rows = await conn.execute_fetchall(
                    "SELECT ref, code, variant FROM links WHERE campaign_id = ?"
                    " AND ref IN (SELECT value FROM json_each(?))",
                    (campaign_id, orjson.dumps(list(by_ref))),
                )
                found = {row[0]: IssuedLink(*row) for row in rows}
            fresh = [r for r in by_ref.values() if r.ref not in found]
            fresh += [r for r in requests if r.ref is None]
            issued_fresh: list[IssuedLink] = []
            if fresh:
                async with conn.execute("SELECT coalesce(max(id), 0) FROM links") as cursor:
                    row = await cursor.fetchone()
                first_id = int(row[0]) + 1 if row else 1
                created = now_ms()
                rows_to_insert = await asyncio.to_thread(
                    _link_rows, fresh, first_id, workspace_id, campaign_id, created, encode
                )
                await conn.executemany(
                    f"INSERT INTO links ({_LINK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows_to_insert,
                )
                issued_fresh = [IssuedLink(r[4], r[1], r[5]) for r in rows_to_insert]
                found.update((link.ref, link) for link in issued_fresh if link.ref is not None)
        adhoc = iter(link for link in issued_fresh if link.ref is None)
        return [found[r.ref] if r.ref is not None else next(adhoc) for r in requests]

    async def find_link(self, link_id: int) -> Link | None:
        sql = f"SELECT {_LINK_COLUMNS} FROM links WHERE id = ?"
        row = self._lookup_one(sql, (link_id,))
        if row is None:  # issued since our snapshot began?
            row = self._lookup_one(sql, (link_id,), fresh=True)
        return None if row is None else _link(row)

    async def find_link_target(self, link_id: int) -> LinkTarget | None:
        sql = "SELECT code, campaign_id, variant, destination, params FROM links WHERE id = ?"
        row = self._lookup_one(sql, (link_id,))
        if row is None:  # issued since our snapshot began?
            row = self._lookup_one(sql, (link_id,), fresh=True)
        if row is None:
            return None
        code, campaign_id, variant, destination, params = row
        return LinkTarget(
            code,
            campaign_id,
            variant,
            destination,
            None if params is None else orjson.loads(params),
        )

    async def find_campaign(self, campaign_id: int) -> Campaign | None:
        sql = f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?"
        row = self._lookup_one(sql, (campaign_id,), fresh=True)
        return None if row is None else _campaign(row)

    def _end_stale_snapshot(self) -> None:
        """An idle snapshot (every redirect served from the cache) would keep the WAL from
        being reset; the checkpointer ends it once it is older than ``SNAPSHOT_SECONDS``."""
        conn = self._lookup
        stale = time.monotonic() - self._snapshot_at > SNAPSHOT_SECONDS
        if conn is not None and conn.in_transaction and stale:
            conn.execute("COMMIT")

    def _lookup_one(self, sql: str, params: Sequence[Any], fresh: bool = False) -> Any:
        """One row through the lookup connection, inside a read snapshot kept for up to
        ``SNAPSHOT_SECONDS``.

        SQLite empties a connection's page cache whenever another connection has committed
        since its last read transaction, and the click writer commits every few
        milliseconds: a lookup in a fresh transaction each time re-reads its B-tree pages
        (≈ 45 µs instead of ≈ 15 µs per link with a million links). Links never change once
        written, so an older snapshot only misses links issued since it began, and
        ``find_link`` retries those in a fresh one; campaigns, which do change, are always
        read fresh (the link cache asks for them rarely).
        """
        conn = self._lookup
        if conn is None:
            raise StoreError("the store is not open")
        try:
            now = time.monotonic()
            if fresh or now - self._snapshot_at > SNAPSHOT_SECONDS:
                if conn.in_transaction:
                    conn.execute("COMMIT")
                conn.execute("BEGIN")
                self._snapshot_at = now
            return conn.execute(sql, params).fetchone()
        except sqlite3.Error as error:
            raise StoreError(f"lookup failed: {error}") from error

    # Clicks

    async def record_clicks(self, rows: Sequence[ClickRow]) -> None:
        """One multi-row INSERT per ``_CLICK_ROWS_PER_STATEMENT`` rows, each its own
        transaction: a batch costs one trip to the writer thread instead of three.

        Each statement has a power-of-two number of rows, the last click repeated to fill it
        (``ON CONFLICT`` skips the repeats): the connection's statement cache then keeps the
        dozen shapes there are. With one statement per batch size, fast-mode batches of a
        few hundred clicks had a new size almost every time, and compiling the statement
        cost about as much as running it."""
        try:
            async with self._write_lock:
                for start in range(0, len(rows), _CLICK_ROWS_PER_STATEMENT):
                    part = rows[start : start + _CLICK_ROWS_PER_STATEMENT]
                    size = 1 << (len(part) - 1).bit_length()
                    await self._w.execute(_insert_clicks_sql(size), _flatten(part, size))
        except (aiosqlite.Error, sqlite3.Error, ValueError) as error:
            raise StoreError(f"clicks not written: {error}") from error

    async def reclassify_clicks(
        self, classify: Callable[[str, str], tuple[str, str, str, str, str]], batch: int = 5000
    ) -> tuple[int, int]:
        """Re-run ``classify(user_agent, method)`` over every stored click.

        Returns (clicks seen, clicks whose class, rule, device, os or browser changed).
        """
        seen = changed = 0
        last_id = 0
        while True:
            rows = await self._read_all(
                "SELECT id, user_agent, method, kind, rule, device, os, browser FROM clicks"
                " WHERE id > ? ORDER BY id LIMIT ?",
                (last_id, batch),
            )
            if not rows:
                return seen, changed
            updates = []
            for row in rows:
                fresh = tuple(classify(row[1], row[2]))
                if fresh != tuple(row[3:8]):
                    updates.append((*fresh, row[0]))
            if updates:
                async with self._transaction() as conn:
                    await conn.executemany(
                        "UPDATE clicks SET kind = ?, rule = ?, device = ?, os = ?, browser = ?"
                        " WHERE id = ?",
                        updates,
                    )
            seen += len(rows)
            changed += len(updates)
            last_id = rows[-1][0]


_CLICK_ROWS_PER_STATEMENT = 2048  # 13 parameters a row; SQLite allows 32 766 per statement


@functools.lru_cache(maxsize=16)
def _insert_clicks_sql(count: int) -> str:
    row = "(" + ", ".join("?" * 13) + ")"
    return (
        "INSERT INTO clicks (link_id, campaign_id, clicked_at, click_id, method, kind, rule,"
        " device, os, browser, user_agent, ip, referrer) VALUES "
        + ", ".join([row] * count)
        + " ON CONFLICT (click_id) DO NOTHING"
    )


def _flatten(rows: Sequence[tuple[Any, ...]], size: int) -> list[Any]:
    """The values of ``rows``, then those of the last row again up to ``size`` rows."""
    values = [value for row in rows for value in row]
    values += rows[-1] * (size - len(rows))
    return values


class Checkpointer:
    """Copies the write-ahead log into the database file every ``interval`` seconds, in a
    thread of its own, with a connection of its own.

    PASSIVE checkpoints wait for nobody: the click writer keeps committing meanwhile, and
    the file sync that ends a checkpoint happens here, not in a commit. With several
    processes on one file, each runs one; SQLite lets one at a time proceed.
    """

    def __init__(
        self, path: str, interval: float = 1.0, on_tick: Callable[[], None] | None = None
    ) -> None:
        self._path = path
        self._on_tick = on_tick
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._stopping = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="checkpoint")

    async def stop(self) -> None:
        """Ends the loop between checkpoints: a checkpoint running in its thread is never
        cancelled, so the connection is closed only once that thread has returned."""
        if self._task is not None:
            self._stopping.set()
            await self._task
            self._task = None

    async def _run(self) -> None:
        conn = await asyncio.to_thread(
            sqlite3.connect, self._path, isolation_level=None, check_same_thread=False
        )
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._interval)
                if self._stopping.is_set():
                    return
                if self._on_tick is not None:
                    self._on_tick()  # on the event loop, like the lookups it tidies
                try:
                    await asyncio.shield(
                        asyncio.to_thread(conn.execute, "PRAGMA wal_checkpoint(PASSIVE)")
                    )
                except sqlite3.Error as error:
                    log.warning("checkpoint failed: %s", error)
        finally:
            await asyncio.shield(asyncio.to_thread(_checkpoint_and_close, conn))


def _checkpoint_and_close(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    conn.close()


def _link_rows(
    requests: Sequence[LinkRequest],
    first_id: int,
    workspace_id: int,
    campaign_id: int | None,
    created: int,
    encode: Callable[[int], str],
) -> list[tuple[Any, ...]]:
    return [
        (
            link_id,
            encode(link_id),
            workspace_id,
            campaign_id,
            request.ref,
            request.variant,
            request.destination,
            None if request.params is None else orjson.dumps(request.params).decode(),
            created,
        )
        for link_id, request in enumerate(requests, first_id)
    ]


def _same(value: Any) -> Any:
    return value


def _workspace(row: Sequence[Any]) -> Workspace:
    return Workspace(int(row[0]), row[1], tuple(orjson.loads(row[2])))


def _dump_variants(variants: Sequence[Variant]) -> str:
    return orjson.dumps(
        [
            {
                "key": v.key,
                "weight": v.weight,
                "destination": v.destination,
                "utm_content": v.utm_content,
            }
            for v in variants
        ]
    ).decode()


def _campaign(row: Sequence[Any]) -> Campaign:
    return Campaign(
        id=row[0],
        workspace_id=row[1],
        name=row[2],
        slug=row[3],
        destination=row[4],
        utm=orjson.loads(row[5]),
        click_id_param=row[6],
        attribution_window_hours=row[7],
        cost_per_message=None if row[8] is None else Decimal(row[8]),
        currency=row[9],
        expires_at=_time(row[10]),
        fallback_url=row[11],
        disabled=bool(row[12]),
        variants=tuple(Variant(**v) for v in orjson.loads(row[13])),
        created_at=_time(row[14]) or datetime.now(UTC),
    )


def _link(row: Sequence[Any]) -> Link:
    return Link(
        id=row[0],
        code=row[1],
        workspace_id=row[2],
        campaign_id=row[3],
        ref=row[4],
        variant=row[5],
        destination=row[6],
        params=None if row[7] is None else orjson.loads(row[7]),
        created_at=_time(row[8]) or datetime.now(UTC),
    )
