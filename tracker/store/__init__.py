"""The store: every read and write of durable data, behind one narrow interface.

``open_store`` picks the backend from the database URL's scheme.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracker.store.base import Store, StoreError

if TYPE_CHECKING:  # not imported here: ``python -m tracker.store.clickprocess`` runs it
    from tracker.store.clickprocess import Preparation


def open_store(
    database_url: str, rollup_seconds: float = 1.0, click_process: Preparation | None = None
) -> Store:
    """An unopened store for ``database_url`` (``sqlite:///path`` or a plain file path).
    ``rollup_seconds``: how often the click rollup is brought up to date in the background
    (0: never; results then fold what is pending when they are read). ``click_process``:
    raw clicks are classified and written by a child process (``tracker.store.clickprocess``,
    ``record_hits``) prepared as it says."""
    scheme, sep, rest = database_url.partition("://")
    if not sep:
        scheme, rest = "sqlite", "/" + database_url
    if scheme == "sqlite":
        from tracker.store.sqlite import SqliteStore

        path = rest[1:] if rest.startswith("/") else rest
        return SqliteStore(path, rollup_seconds, click_process)
    raise StoreError(f"unsupported database URL scheme {scheme!r}; supported: sqlite")
