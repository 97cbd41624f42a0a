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
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from tracker import attribution, rollup
from tracker.models import (
    Campaign,
    CampaignResults,
    CampaignSpec,
    ClickFields,
    ClickRow,
    ConversionInput,
    ConversionResult,
    EventsResult,
    IssuedLink,
    Link,
    LinkRequest,
    LinkTarget,
    MessageEvent,
    Principal,
    RecipientRow,
    Variant,
    WebhookSecret,
    Workspace,
)
from tracker.store import sqlite_results
from tracker.store.base import StoreError
from tracker.store.clickprocess import ClickProcess, Preparation
from tracker.store.migrations import migrate_sqlite
from tracker.store.sqlite_results import MMAP
from tracker.store.writelock import WriteLock

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
    MMAP,
)

SNAPSHOT_SECONDS = 0.5

_CAMPAIGN_COLUMNS = (
    "id, workspace_id, name, slug, destination, utm, click_id_param, attribution_window_hours,"
    " cost_per_message, currency, expires_at, fallback_url, disabled, variants, created_at"
)
_LINK_COLUMNS = "id, code, workspace_id, campaign_id, ref, variant, destination, params, created_at"
_UPDATABLE = {"name", "fallback_url", "expires_at", "disabled"}
HOUR_MS = rollup.HOUR_MS
DEFAULT_WINDOW_HOURS = 168  # for links without a campaign
FOLD_BATCH = 2_000  # clicks per rollup transaction when a reader waits for the fold
ROLL_BATCH = 50  # clicks per transaction of the background fold: ≈ 1 ms of the write lock
ROLL_DUTY = 0.1  # the background fold's share of the writer, at most
ROLLUP_SECONDS = 1.0
_STATUSES = ("sent", "delivered", "failed", "opted_out")
_RECEIPTED = frozenset({"sent", "delivered", "failed"})
_COUNTED = frozenset({*_STATUSES, "receipted", "issued"})
NO_VARIANT = rollup.NO_VARIANT


def now_ms() -> int:
    return int(time.time() * 1000)


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


class SqliteStore:
    """``Store`` on one SQLite file.

    Four connections: the writer (aiosqlite, one thread, every write under one lock), a
    reader for the API (aiosqlite), a read-only plain ``sqlite3`` connection for the
    redirect's lookups by code and by campaign id — primary-key reads of a few microseconds,
    run on the event loop itself, where a thread hop would cost more — and a plain one for
    the click rollup's folds, each run whole in one trip to a thread (under the same lock as
    the writer: the clicks queued behind a fold wait for its SQL, not for a dozen trips).
    """

    def __init__(
        self,
        path: str,
        rollup_seconds: float = ROLLUP_SECONDS,
        click_process: Preparation | None = None,
    ) -> None:
        self.path = path
        # With ``click_process``, clicks are classified and written by a child process
        # (``record_hits``, tracker.store.clickprocess): off the event loop's interpreter lock.
        self._clicks = (
            None if click_process is None else ClickProcess(path, click_process, rollup_seconds)
        )
        self._rollup_seconds = rollup_seconds
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lookup: sqlite3.Connection | None = None
        self._folder: sqlite3.Connection | None = None
        self._lookup_uri = Path(path).absolute().as_uri() + "?mode=ro"
        self._snapshot_at = float("-inf")
        self._checkpointer = Checkpointer(path, on_tick=self._end_stale_snapshot)
        self._write_lock = WriteLock()
        self._roller: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._secret: bytes | None = None
        self._webhook_key: bytes | None = None

    # Lifecycle

    async def open(self) -> None:
        try:
            await asyncio.to_thread(migrate_sqlite, self.path)
            self._writer = await self._connect()
            self._reader = await self._connect()
            # SQLite's default page cache, not a large one: with the file mapped, a big cache
            # only copies pages the OS already holds (measured slower on random lookups).
            self._lookup = sqlite_results.connect(self._lookup_uri)
            self._folder = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            for pragma in PRAGMAS:
                self._folder.execute(pragma)
            rows = await self._read_all(
                "SELECT name, value FROM meta WHERE name IN ('code_secret', 'webhook_key')"
            )
            if self._clicks is not None:
                await self._clicks.start()
            self._checkpointer.start()
            self._stopping = asyncio.Event()
            if self._rollup_seconds > 0 and self._clicks is None:  # else the child folds
                loop = asyncio.get_running_loop()
                self._roller = loop.create_task(self._roll(), name="rollup")
        except (aiosqlite.Error, sqlite3.Error) as error:
            raise StoreError(f"cannot open SQLite database {self.path!r}: {error}") from error
        meta = {name: bytes(value) for name, value in rows}
        if len(meta) != 2:
            raise StoreError("the database has no server secrets; run `tracker migrate`")
        self._secret = meta["code_secret"]
        self._webhook_key = meta["webhook_key"]

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in PRAGMAS:
            await conn.execute(pragma)
        return conn

    async def close(self) -> None:
        if self._roller is not None:  # ends between folds, never inside one
            self._stopping.set()
            await self._roller
            self._roller = None
        await self._checkpointer.stop()
        if self._clicks is not None:
            await self._clicks.close()
        for conn in (self._writer, self._reader):
            if conn is not None:
                await conn.close()
        async with self._write_lock.exclusive():  # no fold is still running in its thread
            for plain in (self._lookup, self._folder):
                if plain is not None:
                    plain.close()
        self._writer = self._reader = None
        self._lookup = self._folder = None

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
        async with self._write_lock.exclusive():
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
                if campaign_id is not None:
                    per_variant = Counter(link.variant or NO_VARIANT for link in issued_fresh)
                    await _count(conn, campaign_id, "issued", per_variant)
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

    async def newest_link_id(self) -> int:
        row = await self._read_one("SELECT coalesce(max(id), 0) FROM links")
        return int(row[0])

    async def campaign_links(
        self, first_id: int, last_id: int
    ) -> list[tuple[int, int, str | None]]:
        """(id, campaign id, variant) of the links in ``first_id..last_id`` that take their
        campaign's destination as it is (no destination or parameters of their own)."""
        return await self._read_all(
            "SELECT id, campaign_id, variant FROM links WHERE id BETWEEN ? AND ?"
            " AND campaign_id IS NOT NULL AND destination IS NULL AND params IS NULL ORDER BY id",
            (first_id, last_id),
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
            async with self._write_lock.exclusive():
                for sql, values in _click_statements(rows):
                    await self._w.execute(sql, values)
        except (aiosqlite.Error, sqlite3.Error, ValueError) as error:
            raise StoreError(f"clicks not written: {error}") from error

    @property
    def prepares_clicks(self) -> bool:
        """Whether ``record_hits`` takes raw clicks (a click process was asked for)."""
        return self._clicks is not None

    async def record_hits(
        self, clicks: Sequence[ClickFields], committed: Callable[[], None] | None = None
    ) -> None:
        """Classify and write ``clicks`` in the click process, in one transaction; a click id
        already stored is skipped. Raises ``StoreError``."""
        if self._clicks is None:
            raise StoreError("this store was opened without a click process")
        async with self._write_lock.shared():
            await self._clicks.record(clicks, committed)

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
                # Results counted the old classes: count and attribute again. Every time, not
                # only when this run changed a class: a run stopped after writing classes
                # and before this point is then mended by the next.
                await self.rebuild_click_rollup()
                await self.reattribute_conversions()
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

    # Conversions

    async def click_workspace(self, click_id: str) -> int | None:
        """The workspace of a stored click (the pixel has no key to say it)."""
        row = await self._read_one(
            "SELECT l.workspace_id FROM clicks c JOIN links l ON l.id = c.link_id"
            " WHERE c.click_id = ?",
            (click_id,),
        )
        return None if row is None else int(row[0])

    async def record_conversions(
        self, workspace_id: int, conversions: Sequence[ConversionInput]
    ) -> list[ConversionResult]:
        """Attribute and store each conversion, or find the one it repeats."""
        outcomes = await self._attribute(workspace_id, conversions)
        keys = [
            (c.event, attribution.dedupe_key(c.order_id, c.click_id, c.campaign_id, c.ref))
            for c in conversions
        ]
        received = now_ms()
        async with self._transaction() as conn:
            wanted = [[event, key] for event, key in keys if key is not None]
            stored: dict[tuple[str, str], ConversionResult] = {}
            if wanted:
                rows = await conn.execute_fetchall(
                    "SELECT event, dedupe_key, id, campaign_id, variant, reason FROM conversions"
                    " WHERE workspace_id = ? AND (event, dedupe_key) IN"
                    " (SELECT value ->> 0, value ->> 1 FROM json_each(?))",
                    (workspace_id, orjson.dumps(wanted)),
                )
                stored = {(r[0], r[1]): ConversionResult(r[2], True, *r[3:]) for r in rows}
            async with conn.execute("SELECT coalesce(max(id), 0) FROM conversions") as cursor:
                row = await cursor.fetchone()
            next_id = int(row[0]) + 1 if row else 1
            results, inserts = [], []
            for conversion, key, outcome in zip(conversions, keys, outcomes, strict=True):
                if key[1] is not None and key in stored:
                    results.append(stored[key])
                    continue
                click = outcome.click
                result = ConversionResult(
                    next_id,
                    False,
                    None if click is None else click.campaign_id,
                    None if click is None else click.variant,
                    outcome.reason,
                )
                inserts.append(
                    _conversion_row(next_id, workspace_id, conversion, key[1], outcome, received)
                )
                results.append(result)
                if key[1] is not None:
                    stored[key] = result._replace(duplicate=True)
                next_id += 1
            if inserts:
                await conn.executemany(_INSERT_CONVERSION, inserts)
        return results

    async def _attribute(
        self, workspace_id: int, conversions: Sequence[ConversionInput]
    ) -> list[attribution.Outcome]:
        """Gather the clicks each conversion may belong to (in a few queries for the whole
        batch), then let ``tracker.attribution`` decide."""
        click_ids = sorted({c.click_id for c in conversions if c.click_id is not None})
        by_click: dict[str, attribution.ClickFact] = {}
        if click_ids:
            rows = await self._read_all(
                "SELECT c.click_id, c.id, c.link_id, c.campaign_id, l.variant, c.clicked_at,"
                " c.kind, coalesce(k.attribution_window_hours, ?)"
                " FROM clicks c JOIN links l ON l.id = c.link_id"
                " LEFT JOIN campaigns k ON k.id = c.campaign_id"
                " WHERE c.click_id IN (SELECT value FROM json_each(?)) AND l.workspace_id = ?",
                (DEFAULT_WINDOW_HOURS, orjson.dumps(click_ids), workspace_id),
            )
            by_click = {row[0]: _click_fact(row[1:]) for row in rows}
        recipients = await self._recipient_clicks(
            workspace_id,
            {
                (c.campaign_id, c.ref)
                for c in conversions
                if c.campaign_id is not None
                and c.ref is not None
                and (c.click_id is None or c.click_id not in by_click)
            },
        )
        outcomes = []
        for c in conversions:
            if c.click_id is not None and (c.click_id in by_click or c.ref is None):
                outcomes.append(attribution.by_click(by_click.get(c.click_id), c.occurred_at_ms))
            elif c.campaign_id is not None and c.ref is not None:
                found = recipients[(c.campaign_id, c.ref)]
                if isinstance(found, str):
                    outcomes.append(attribution.unattributed(found))
                else:
                    outcomes.append(attribution.by_recipient(found, c.occurred_at_ms))
            else:
                outcomes.append(attribution.unattributed(attribution.NO_CLICK_ID))
        return outcomes

    async def _recipient_clicks(
        self, workspace_id: int, wanted: set[tuple[int, str]]
    ) -> dict[tuple[int, str], list[attribution.ClickFact] | str]:
        """Every click of each (campaign, ref)'s link, or the reason there is no link.

        Clicks are indexed by (campaign, time), not by link (migration 0002): one pass over
        the campaign's clicks serves every ref of the batch.
        """
        found: dict[tuple[int, str], list[attribution.ClickFact] | str] = {}
        by_campaign: dict[int, list[str]] = {}
        for campaign_id, ref in wanted:
            by_campaign.setdefault(campaign_id, []).append(ref)
        for campaign_id, refs in by_campaign.items():
            row = await self._read_one(
                "SELECT attribution_window_hours FROM campaigns WHERE id = ? AND workspace_id = ?",
                (campaign_id, workspace_id),
            )
            if row is None:
                found.update(((campaign_id, ref), attribution.UNKNOWN_CAMPAIGN) for ref in refs)
                continue
            window = int(row[0])
            links = await self._read_all(
                "SELECT id, ref, variant FROM links WHERE campaign_id = ?"
                " AND ref IN (SELECT value FROM json_each(?))",
                (campaign_id, orjson.dumps(refs)),
            )
            ref_of = {link_id: ref for link_id, ref, _ in links}
            variant_of = {link_id: variant for link_id, _, variant in links}
            for ref in refs:
                found[(campaign_id, ref)] = attribution.UNKNOWN_REF
            for ref in ref_of.values():
                found[(campaign_id, ref)] = []
            if not links:
                continue
            clicks = await self._read_all(
                "SELECT id, link_id, clicked_at, kind FROM clicks WHERE campaign_id = ?"
                " AND link_id IN (SELECT value FROM json_each(?))",
                (campaign_id, orjson.dumps(list(ref_of))),
            )
            for row_id, link_id, clicked_at, kind in clicks:
                facts = found[(campaign_id, ref_of[link_id])]
                assert isinstance(facts, list)
                facts.append(
                    attribution.ClickFact(
                        row_id,
                        link_id,
                        campaign_id,
                        variant_of[link_id],
                        clicked_at,
                        kind,
                        window * HOUR_MS,
                    )
                )
        return found

    # Delivery receipts and opt-outs

    async def record_message_events(
        self, campaign_id: int, events: Sequence[MessageEvent]
    ) -> EventsResult:
        received = now_ms()
        refs = sorted({e.ref for e in events if e.ref is not None})
        codes = sorted({e.code for e in events if e.code is not None})
        async with self._transaction() as conn:
            by_ref: dict[str, tuple[int, str]] = {}
            by_code: dict[str, tuple[int, str]] = {}
            for column, wanted, found in (("ref", refs, by_ref), ("code", codes, by_code)):
                if wanted:
                    rows = await conn.execute_fetchall(
                        f"SELECT {column}, id, coalesce(variant, '') FROM links"
                        f" WHERE campaign_id = ? AND {column} IN (SELECT value FROM json_each(?))",
                        (campaign_id, orjson.dumps(wanted)),
                    )
                    found.update((row[0], (row[1], row[2])) for row in rows)
            unknown: list[int] = []
            named: list[tuple[MessageEvent, int, str]] = []
            for index, event in enumerate(events):
                link = by_code.get(event.code) if event.code is not None else None
                if event.ref is not None:
                    link = by_ref.get(event.ref)
                if link is None:
                    unknown.append(index)
                else:
                    named.append((event, *link))
            # What each link already has: a repeat is skipped, and a link's first receipt
            # of sent/delivered/failed counts it as receipted.
            stored: set[tuple[int, str]] = set()
            if named:
                rows = await conn.execute_fetchall(
                    "SELECT link_id, status FROM message_events"
                    " WHERE link_id IN (SELECT value FROM json_each(?))",
                    (orjson.dumps(sorted({link_id for _, link_id, _ in named})),),
                )
                stored = {(row[0], row[1]) for row in rows}
            receipted = {link_id for link_id, status in stored if status in _RECEIPTED}
            inserts = []
            counts: dict[str, Counter[str]] = {name: Counter() for name in _COUNTED - {"issued"}}
            for event, link_id, variant in named:
                if (link_id, event.status) in stored:
                    continue
                stored.add((link_id, event.status))
                inserts.append(
                    (campaign_id, link_id, event.status, event.at_ms, event.error, received)
                )
                counts[event.status][variant] += 1
                if event.status in _RECEIPTED and link_id not in receipted:
                    receipted.add(link_id)
                    counts["receipted"][variant] += 1
            if inserts:
                await conn.executemany(
                    "INSERT INTO message_events (campaign_id, link_id, status, at, error,"
                    " received_at) VALUES (?, ?, ?, ?, ?, ?)",
                    inserts,
                )
                for name, per_variant in counts.items():
                    await _count(conn, campaign_id, name, per_variant)
                delivered = {row[1]: row[3] for row in inserts if row[2] == "delivered"}
                if delivered:
                    await _restart_clocks(conn, campaign_id, delivered)
        return EventsResult(len(inserts), len(named) - len(inserts), unknown)

    # The click rollup (decision 0009)

    async def fold_clicks(self, limit: int = FOLD_BATCH) -> int:
        """Fold up to ``limit`` clicks not yet folded into the rollup tables, in one
        transaction; returns how many were folded (0: the rollup is current)."""
        behind = await self._read_one(
            "SELECT (SELECT coalesce(max(id), 0) FROM clicks)"
            " > (SELECT value FROM rollup_state WHERE name = 'clicks')"
        )
        if not behind[0]:  # current: no need for the write lock
            return 0
        folder = self._folder
        if folder is None:
            raise StoreError("the store is not open")
        async with self._write_lock.exclusive():
            fold = asyncio.ensure_future(asyncio.to_thread(fold_transaction, folder, limit))
            try:
                return await asyncio.shield(fold)
            except asyncio.CancelledError:
                # Hold the lock until the thread is done: no other write may start meanwhile.
                with contextlib.suppress(Exception):
                    await fold
                raise
            except sqlite3.Error as error:
                raise StoreError(f"fold failed: {error}") from error

    async def rebuild_click_rollup(self) -> int:
        """Forget the click rollup and fold every click again; returns how many clicks were
        folded. The reset is one transaction, the folding short ones (so a live server's
        click writer is never held up for long); a results read that races the rebuild
        sees the generation change and reads again (``campaign_results``)."""
        async with self._transaction() as conn:
            for sql in (
                "DELETE FROM click_hours",
                "DELETE FROM click_devices",
                "DELETE FROM link_clicks",
                "DELETE FROM first_click_delays",
                "UPDATE variant_counts SET human_clicks = 0, bot_clicks = 0, unique_clickers = 0",
                "UPDATE rollup_state SET value = 0 WHERE name = 'clicks'",
                "UPDATE rollup_state SET value = value + 1 WHERE name = 'generation'",
            ):
                await conn.execute(sql)
        return await self.fold_all_clicks()

    async def reattribute_conversions(self) -> int:
        """Attribute every stored conversion again (after clicks changed class: a click
        that is now a bot's no longer converts, one that is now human does); returns how
        many conversions changed."""
        changed, last = 0, 0
        while True:
            rows = await self._read_all(
                "SELECT id, workspace_id, event, occurred_at, source, click_id,"
                " sent_campaign_id, ref, campaign_id, link_id, click_row_id, variant, reason"
                " FROM conversions WHERE id > ? ORDER BY id LIMIT 5000",
                (last,),
            )
            if not rows:
                return changed
            last = rows[-1][0]
            by_workspace: dict[int, list[Any]] = {}
            for row in rows:
                by_workspace.setdefault(row[1], []).append(row)
            updates = []
            for workspace_id, group in by_workspace.items():
                inputs = [ConversionInput(*row[2:5], *row[5:8]) for row in group]
                outcomes = await self._attribute(workspace_id, inputs)
                for row, outcome in zip(group, outcomes, strict=True):
                    columns = _outcome_columns(outcome)
                    if columns != tuple(row[8:13]):
                        updates.append((*columns, row[0]))
            if updates:
                async with self._transaction() as conn:
                    await conn.executemany(
                        "UPDATE conversions SET campaign_id = ?, link_id = ?, click_row_id = ?,"
                        " variant = ?, reason = ? WHERE id = ?",
                        updates,
                    )
            changed += len(updates)

    async def _roll(self) -> None:
        """Keep the rollup near current without taking the redirect's share: every
        ``rollup_seconds``, fold what was written since (by any process) in transactions of
        ``ROLL_BATCH`` clicks, resting after each for nine times as long as it took, so the
        fold never uses more than a tenth of the writer. A burst of clicks is folded after
        the burst (or by the stats call that needs it, which folds whatever is pending)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._rollup_seconds)
            try:
                while not self._stopping.is_set():
                    started = time.monotonic()
                    if not await self.fold_clicks(ROLL_BATCH):
                        break
                    rest = (time.monotonic() - started) * (1 / ROLL_DUTY - 1)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), rest)
            except (StoreError, aiosqlite.Error, sqlite3.Error) as error:
                log.warning("click rollup failed, will retry: %s", error)
            if self._stopping.is_set():
                return

    async def fold_all_clicks(self) -> int:
        """Fold until the rollup is current; returns how many clicks were folded."""
        total = 0
        while folded := await self.fold_clicks():
            total += folded
        return total

    # Campaign results

    async def campaign_results(
        self, campaign_id: int, since_ms: int | None = None, until_ms: int | None = None
    ) -> CampaignResults:
        """The campaign's numbers: from the rollups (brought up to date first) for the whole
        campaign, or recounted from raw clicks and conversions in [since, until)."""
        while True:
            # A rebuild may reset the rollup between the fold and the read: read again then.
            generation = await self._read_one(
                "SELECT value FROM rollup_state WHERE name = 'generation'"
            )
            await self.fold_all_clicks()
            if since_ms is None and until_ms is None:
                results, read_generation = await self._report(
                    sqlite_results.from_rollups, campaign_id
                )
            else:
                results, read_generation = await self._report(
                    sqlite_results.recount, campaign_id, since_ms, until_ms
                )
            if read_generation == generation[0]:
                return results

    async def recount_results(self, campaign_id: int) -> CampaignResults:
        """Everything recounted from the raw rows (what the rollups must always equal)."""
        results, _ = await self._report(sqlite_results.recount, campaign_id, None, None, True)
        return results

    async def recipient_rows(
        self, campaign_id: int, only: str | None = None
    ) -> AsyncIterator[list[RecipientRow]]:
        """The campaign's recipients page by page, in one read snapshot."""
        await self.fold_all_clicks()
        conn = await asyncio.to_thread(sqlite_results.connect, self._lookup_uri, False)
        pages = sqlite_results.recipients(conn, campaign_id, only)
        try:
            while (page := await asyncio.to_thread(next, pages, None)) is not None:
                yield page
        except sqlite3.Error as error:
            raise StoreError(f"recipients could not be read: {error}") from error
        finally:
            await asyncio.to_thread(_close_pages, pages, conn)

    async def _report(
        self, read: Callable[..., tuple[CampaignResults, int]], *args: Any
    ) -> tuple[CampaignResults, int]:
        def run() -> tuple[CampaignResults, int]:
            conn = sqlite_results.connect(self._lookup_uri)
            try:
                return read(conn, *args)
            finally:
                conn.close()

        try:
            return await asyncio.to_thread(run)
        except sqlite3.Error as error:
            raise StoreError(f"results could not be read: {error}") from error

    # Webhook secrets

    @property
    def webhook_key(self) -> bytes:
        if self._webhook_key is None:
            raise StoreError("the store is not open")
        return self._webhook_key

    async def webhook_salts(self, workspace_id: int) -> list[bytes]:
        """The salts of the workspace's secrets that verify now, newest first."""
        rows = await self._read_all(
            "SELECT salt FROM webhook_secrets WHERE workspace_id = ?"
            " AND (expires_at IS NULL OR expires_at > ?) ORDER BY id DESC",
            (workspace_id, now_ms()),
        )
        return [bytes(row[0]) for row in rows]

    async def rotate_webhook_secret(
        self, workspace_id: int, salt: bytes, grace_ms: int
    ) -> list[WebhookSecret]:
        """Add a secret; the ones that verify now keep verifying for ``grace_ms`` more (not
        longer than they already would). Returns the workspace's secrets, newest first."""
        now = now_ms()
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE webhook_secrets SET expires_at = min(coalesce(expires_at, ?1), ?1)"
                " WHERE workspace_id = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
                (now + grace_ms, workspace_id, now),
            )
            await conn.execute(
                "INSERT INTO webhook_secrets (workspace_id, salt, created_at) VALUES (?, ?, ?)",
                (workspace_id, salt, now),
            )
        return await self.list_webhook_secrets(workspace_id)

    async def list_webhook_secrets(self, workspace_id: int) -> list[WebhookSecret]:
        rows = await self._read_all(
            "SELECT id, salt, created_at, expires_at FROM webhook_secrets"
            " WHERE workspace_id = ? ORDER BY id DESC",
            (workspace_id,),
        )
        return [
            WebhookSecret(row[0], bytes(row[1]), _time(row[2]) or datetime.now(UTC), _time(row[3]))
            for row in rows
        ]


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


def _click_statements(rows: Sequence[Sequence[Any]]) -> Iterator[tuple[str, list[Any]]]:
    """The INSERTs that store ``rows``, ``_CLICK_ROWS_PER_STATEMENT`` at most each."""
    for start in range(0, len(rows), _CLICK_ROWS_PER_STATEMENT):
        part = rows[start : start + _CLICK_ROWS_PER_STATEMENT]
        size = 1 << (len(part) - 1).bit_length()
        yield _insert_clicks_sql(size), _flatten(part, size)


def insert_clicks(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Store ``rows`` (``ClickRow`` values) on a plain connection, in its transaction."""
    for sql, values in _click_statements(rows):
        conn.execute(sql, values)


def _flatten(rows: Sequence[Sequence[Any]], size: int) -> list[Any]:
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


def _close_pages(pages: Iterator[Any], conn: sqlite3.Connection) -> None:
    close = getattr(pages, "close", None)
    if close is not None:
        close()  # ends the generator's read transaction
    conn.close()


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


async def _count(
    conn: aiosqlite.Connection, campaign_id: int, name: str, per_variant: Mapping[str, int]
) -> None:
    """Add to one column of ``variant_counts``."""
    assert name in _COUNTED
    await conn.executemany(
        f"INSERT INTO variant_counts (campaign_id, variant, {name}) VALUES (?, ?, ?)"
        f" ON CONFLICT DO UPDATE SET {name} = {name} + excluded.{name}",
        [(campaign_id, variant, n) for variant, n in per_variant.items() if n],
    )


def _apply(
    conn: sqlite3.Connection,
    tally: rollup.Tally,
    known: Mapping[int, rollup.LinkState],
    started: Mapping[int, int],
) -> None:
    """Write a fold's increments into the rollup tables. ``known``: the links' states
    before the fold; ``started``: when each link's clock starts (its delivery receipt,
    else its issue)."""
    moves: Counter[tuple[int, int]] = Counter()  # (campaign, delay bucket) → clickers
    for link_id, state in tally.links.items():
        before = known.get(link_id)
        old_first = None if before is None else before.first_human_at
        if state.first_human_at != old_first:
            if old_first is not None:
                moves[(state.campaign_id, rollup.delay_bucket(old_first - started[link_id]))] -= 1
            bucket = rollup.delay_bucket(state.first_human_at - started[link_id])
            moves[(state.campaign_id, bucket)] += 1
    conn.executemany(_MOVE_DELAYS, _delay_rows(moves))
    keys = sorted({*tally.human, *tally.bot, *tally.clickers})
    conn.executemany(
        "INSERT INTO variant_counts (campaign_id, variant, human_clicks, bot_clicks,"
        " unique_clickers) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
        " human_clicks = human_clicks + excluded.human_clicks,"
        " bot_clicks = bot_clicks + excluded.bot_clicks,"
        " unique_clickers = unique_clickers + excluded.unique_clickers",
        [
            (*key, tally.human.get(key, 0), tally.bot.get(key, 0), tally.clickers.get(key, 0))
            for key in keys
        ],
    )
    conn.executemany(
        "INSERT INTO click_hours (campaign_id, hour, human, bot) VALUES (?, ?, ?, ?)"
        " ON CONFLICT DO UPDATE SET human = human + excluded.human, bot = bot + excluded.bot",
        [(*key, human, bot) for key, (human, bot) in tally.hours.items()],
    )
    conn.executemany(
        "INSERT INTO click_devices (campaign_id, device, os, human) VALUES (?, ?, ?, ?)"
        " ON CONFLICT DO UPDATE SET human = human + excluded.human",
        [(*key, n) for key, n in tally.devices.items()],
    )
    conn.executemany(
        "INSERT INTO link_clicks (campaign_id, link_id, variant, human, bot, first_human_at,"
        " started_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
        " human = excluded.human, bot = excluded.bot, first_human_at = excluded.first_human_at",
        [
            (s.campaign_id, link_id, s.variant, s.human, s.bot, s.first_human_at, started[link_id])
            for link_id, s in tally.links.items()
        ],
    )


def fold_transaction(conn: sqlite3.Connection, limit: int) -> int:
    """``_fold_batch`` in a write transaction of its own (run in a thread, whole, or in the
    click process)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        folded = _fold_batch(conn, limit)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return folded


def _fold_batch(conn: sqlite3.Connection, limit: int) -> int:
    """Inside a write transaction: fold up to ``limit`` clicks past the watermark into the
    rollup tables and move the watermark; returns how many."""
    row = conn.execute("SELECT value FROM rollup_state WHERE name = 'clicks'").fetchone()
    last = int(row[0]) if row else 0
    clicks = conn.execute(
        "SELECT c.id, c.link_id, c.campaign_id, coalesce(l.variant, ''), c.clicked_at,"
        " c.kind = 'human', c.device, c.os, l.created_at"
        " FROM clicks c JOIN links l ON l.id = c.link_id"
        " WHERE c.id > ? ORDER BY c.id LIMIT ?",
        (last, limit),
    ).fetchall()
    if not clicks:
        return 0
    facts = [rollup.ClickFacts(*row[1:8]) for row in clicks if row[2] is not None]
    issued_at = {row[1]: row[8] for row in clicks}
    by_campaign: dict[int, set[int]] = {}
    for fact in facts:
        by_campaign.setdefault(fact.campaign_id, set()).add(fact.link_id)
    known: dict[int, rollup.LinkState] = {}
    known_started: dict[int, int] = {}
    for campaign_id, link_ids in by_campaign.items():
        rows = conn.execute(
            "SELECT link_id, campaign_id, variant, human, bot, first_human_at,"
            " started_at FROM link_clicks WHERE campaign_id = ?"
            " AND link_id IN (SELECT value FROM json_each(?))",
            (campaign_id, orjson.dumps(sorted(link_ids))),
        ).fetchall()
        known.update((row[0], rollup.LinkState(*row[1:6])) for row in rows)
        known_started.update((row[0], row[6]) for row in rows)
    tally = rollup.fold(facts, known)
    fresh = [link_id for link_id in tally.links if link_id not in known]
    started = {**issued_at, **known_started}
    if fresh:
        started.update(
            conn.execute(
                "SELECT link_id, at FROM message_events WHERE status = 'delivered'"
                " AND link_id IN (SELECT value FROM json_each(?))",
                (orjson.dumps(fresh),),
            ).fetchall()
        )
    _apply(conn, tally, known, started)
    conn.execute("UPDATE rollup_state SET value = ? WHERE name = 'clicks'", (clicks[-1][0],))
    return len(clicks)


async def _restart_clocks(
    conn: aiosqlite.Connection, campaign_id: int, delivered: Mapping[int, int]
) -> None:
    """A clicked link's time to first click runs from its delivery, once that is known."""
    rows = await conn.execute_fetchall(
        "SELECT link_id, first_human_at, started_at FROM link_clicks WHERE campaign_id = ?"
        " AND link_id IN (SELECT value FROM json_each(?))",
        (campaign_id, orjson.dumps(sorted(delivered))),
    )
    moves: Counter[tuple[int, int]] = Counter()
    for link_id, first, old_start in rows:
        if first is not None:
            moves[(campaign_id, rollup.delay_bucket(first - old_start))] -= 1
            moves[(campaign_id, rollup.delay_bucket(first - delivered[link_id]))] += 1
    await conn.executemany(
        "UPDATE link_clicks SET started_at = ? WHERE campaign_id = ? AND link_id = ?",
        [(delivered[row[0]], campaign_id, row[0]) for row in rows],
    )
    await conn.executemany(_MOVE_DELAYS, _delay_rows(moves))


_MOVE_DELAYS = (
    "INSERT INTO first_click_delays (campaign_id, bucket, clickers) VALUES (?, ?, ?)"
    " ON CONFLICT DO UPDATE SET clickers = clickers + excluded.clickers"
)


def _delay_rows(moves: Mapping[tuple[int, int], int]) -> list[tuple[int, int, int]]:
    return [(*key, n) for key, n in moves.items() if n]


_INSERT_CONVERSION = (
    "INSERT INTO conversions (id, workspace_id, event, order_id, click_id, sent_campaign_id,"
    " ref, value, currency, occurred_at, received_at, source, dedupe_key, campaign_id,"
    " link_id, click_row_id, variant, reason)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _conversion_row(
    conversion_id: int,
    workspace_id: int,
    conversion: ConversionInput,
    dedupe_key: str | None,
    outcome: attribution.Outcome,
    received: int,
) -> tuple[Any, ...]:
    c = conversion
    return (
        conversion_id,
        workspace_id,
        c.event,
        c.order_id,
        c.click_id,
        c.campaign_id,
        c.ref,
        None if c.value is None else str(c.value),
        c.currency,
        c.occurred_at_ms,
        received,
        c.source,
        dedupe_key,
        *_outcome_columns(outcome),
    )


def _outcome_columns(outcome: attribution.Outcome) -> tuple[Any, ...]:
    """campaign_id, link_id, click_row_id, variant, reason of a conversion's outcome."""
    click = outcome.click
    if click is None:
        return (None, None, None, None, outcome.reason)
    return (click.campaign_id, click.link_id, click.row_id, click.variant, None)


def _click_fact(row: Sequence[Any]) -> attribution.ClickFact:
    row_id, link_id, campaign_id, variant, clicked_at, kind, window_hours = row
    return attribution.ClickFact(
        row_id, link_id, campaign_id, variant, clicked_at, kind, window_hours * HOUR_MS
    )


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
