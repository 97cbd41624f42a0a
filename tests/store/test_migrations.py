from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tracker.store import open_store
from tracker.store.base import StoreError
from tracker.store.migrations import (
    SchemaTooNewError,
    load,
    migrate_sqlite,
    schema_version_sqlite,
    statements,
)
from tracker.store.sqlite import SqliteStore


def test_files_are_numbered_without_gaps() -> None:
    migrations = load("sqlite")
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.sql.strip() for m in migrations)


def test_fresh_database_gets_every_migration_once(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    applied = migrate_sqlite(path)
    assert [m.version for m in applied] == [m.version for m in load("sqlite")]
    assert schema_version_sqlite(path) == len(load("sqlite"))
    assert migrate_sqlite(path) == []  # idempotent
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        (rows,) = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert {"campaigns", "links", "api_keys", "workspaces", "schema_migrations"} <= tables
    assert mode == "wal"
    assert rows == len(load("sqlite"))


def test_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    migrate_sqlite(path)
    with sqlite3.connect(path) as conn:
        (first,) = conn.execute("SELECT value FROM meta WHERE name='code_secret'").fetchone()
    migrate_sqlite(path)
    with sqlite3.connect(path) as conn:
        (second,) = conn.execute("SELECT value FROM meta WHERE name='code_secret'").fetchone()
    assert len(first) == 32
    assert first == second


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    migrate_sqlite(path)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'from_the_future', 0)")
    with pytest.raises(SchemaTooNewError, match="999"):
        migrate_sqlite(path)


async def test_store_refuses_to_open_a_newer_database(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    migrate_sqlite(path)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'from_the_future', 0)")
    with pytest.raises(SchemaTooNewError):
        await SqliteStore(path).open()


def test_failed_migration_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracker.store import migrations

    real = migrations.load("sqlite")
    broken = [*real, migrations.Migration(len(real) + 1, "broken", "CREATE TABLE x (a);\nNOT SQL;")]
    monkeypatch.setattr(migrations, "load", lambda dialect: broken)
    path = str(tmp_path / "t.db")
    with pytest.raises(sqlite3.OperationalError):
        migrate_sqlite(path)
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"schema_migrations"}  # everything pending ran in one transaction


def test_statements_are_split_whole() -> None:
    script = "-- c\nCREATE TABLE a (x TEXT DEFAULT ';');\n\nINSERT INTO a VALUES ('1;2');\n-- end\n"
    assert statements(script) == [
        "-- c\nCREATE TABLE a (x TEXT DEFAULT ';');",
        "INSERT INTO a VALUES ('1;2');",
    ]
    with pytest.raises(StoreError, match="incomplete"):
        statements("CREATE TABLE b (x")


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///tracker.db", "tracker.db"),
        ("sqlite:////var/lib/t.db", "/var/lib/t.db"),
        ("data/t.db", "data/t.db"),
        ("/abs/t.db", "/abs/t.db"),
    ],
)
def test_open_store_by_url(url: str, path: str) -> None:
    store = open_store(url)
    assert isinstance(store, SqliteStore)
    assert store.path == path


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(StoreError, match="unsupported"):
        open_store("mysql://db/tracker")
