"""Numbered SQL migrations, applied in order, each inside one transaction.

Files are ``migrations/<dialect>/NNNN_what.sql``. Applied versions are recorded in
``schema_migrations``; re-running applies nothing new, and a database whose newest applied
version is unknown to this code (written by a newer release) is refused.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from tracker.store.base import StoreError

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer version of tracker."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations_dir(dialect: str) -> Path:
    """Where the SQL files are: inside the installed package, or the source checkout's top level."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "migrations" / dialect, package.parent / "migrations" / dialect):
        if candidate.is_dir():
            return candidate
    raise StoreError(f"no migrations found for {dialect!r}")


def load(dialect: str) -> list[Migration]:
    found = []
    for path in sorted(migrations_dir(dialect).iterdir()):
        match = _FILE.match(path.name)
        if match:
            found.append(Migration(int(match[1]), match[2], path.read_text("utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"migration numbers must run 1, 2, 3, … without gaps; found {versions}")
    return found


def statements(sql: str) -> list[str]:
    """Split a script into complete statements (sqlite3 runs one at a time)."""
    result, pending = [], ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                result.append(pending.strip())
            pending = ""
    if pending.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in pending.splitlines()
    ):
        raise StoreError("migration ends with an incomplete statement")
    return result


def migrate_sqlite(path: str, target: int | None = None) -> list[Migration]:
    """Bring the SQLite database at ``path`` up to date (or up to version ``target``, for
    testing an upgrade); returns what was applied now.

    Holds the write lock (``BEGIN IMMEDIATE``) from reading the applied versions to the
    last commit, so two processes starting at once cannot apply the same file twice.
    """
    known = load("sqlite")
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        )
        applied_now: list[Migration] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            (current,) = conn.execute(
                "SELECT coalesce(max(version), 0) FROM schema_migrations"
            ).fetchone()
            if current > len(known):
                raise SchemaTooNewError(
                    f"the database is at schema version {current}, newer than this code knows "
                    f"({len(known)}); upgrade tracker before starting it against this database"
                )
            for migration in known[current:target]:
                for statement in statements(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, int(time.time() * 1000)),
                )
                applied_now.append(migration)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return applied_now
    finally:
        conn.close()


def schema_version_sqlite(path: str) -> int:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        return int(row[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()
