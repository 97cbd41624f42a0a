"""The store's own behaviour, below the HTTP layer."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tracker.codes import CodeBook
from tracker.models import CampaignSpec, ClickRow, LinkRequest, LinkTarget, Variant
from tracker.store.base import StoreError
from tracker.store.sqlite import Checkpointer, SqliteStore

SPEC = CampaignSpec(name="c", slug="c", destination="https://x.example/", variants=(Variant("A"),))


async def test_concurrent_issues_never_share_ids_or_codes(store: SqliteStore) -> None:
    workspace = await store.ensure_workspace("w")
    campaign = await store.add_campaign(workspace.id, SPEC)
    codes = CodeBook(store.code_secret)

    async def batch(n: int) -> list[str]:
        requests = [LinkRequest(f"{n}-{i}") for i in range(200)]
        issued = await store.issue_links(workspace.id, campaign.id, requests, codes.encode)
        return [link.code for link in issued]

    results = await asyncio.gather(*(batch(n) for n in range(10)))
    every = [code for codes_ in results for code in codes_]
    assert len(set(every)) == 2000
    for code in every[:50]:
        link_id = codes.decode(code)
        assert link_id is not None
        link = await store.find_link(link_id)
        assert link is not None
        assert link.code == code


async def test_failed_batch_rolls_back(store: SqliteStore) -> None:
    workspace = await store.ensure_workspace("w")
    campaign = await store.add_campaign(workspace.id, SPEC)

    def encode(link_id: int) -> str:
        if link_id == 5:
            raise RuntimeError("boom")
        return f"code{link_id}"

    with pytest.raises(RuntimeError):
        await store.issue_links(
            workspace.id, campaign.id, [LinkRequest(f"r{i}") for i in range(10)], encode
        )
    row = await store._read_one("SELECT count(*) FROM links")
    assert row[0] == 0
    # and the writer is usable again
    issued = await store.issue_links(
        workspace.id, campaign.id, [LinkRequest("ok")], lambda i: f"c{i}"
    )
    assert issued[0].code == "c1"


async def test_campaign_round_trip_and_update(store: SqliteStore) -> None:
    workspace = await store.ensure_workspace("w")
    campaign = await store.add_campaign(workspace.id, SPEC)
    assert campaign.variants == (Variant("A"),)
    moment = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    updated = await store.update_campaign(
        workspace.id, campaign.id, {"expires_at": moment, "disabled": True}
    )
    assert updated is not None
    assert (updated.expires_at, updated.disabled) == (moment, True)
    assert await store.update_campaign(workspace.id + 1, campaign.id, {"disabled": False}) is None
    with pytest.raises(StoreError):
        await store.update_campaign(workspace.id, campaign.id, {"destination": "x"})


async def test_ensure_workspace_is_idempotent(store: SqliteStore) -> None:
    first = await store.ensure_workspace("w")
    assert await store.ensure_workspace("w") == first
    assert (await store.ensure_workspace("v")).id != first.id


async def test_closed_store_says_so(store: SqliteStore) -> None:
    await store.close()
    with pytest.raises(StoreError):
        await store.ping()
    await store.open()
    await store.ping()


async def test_lookups_see_links_issued_after_their_snapshot(store: SqliteStore) -> None:
    workspace = await store.ensure_workspace("w")
    assert await store.find_link(1) is None  # opens a read snapshot
    await store.issue_links(workspace.id, None, [LinkRequest(None, None, None, "https://x/")],
                            lambda i: f"c{i}")  # fmt: skip
    link = await store.find_link(1)  # the snapshot predates it: retried fresh
    assert link is not None
    assert link.code == "c1"


async def test_the_redirect_reads_what_it_needs_of_a_link(store: SqliteStore) -> None:
    workspace = await store.ensure_workspace("w")
    campaign = await store.add_campaign(workspace.id, SPEC)
    assert await store.find_link_target(1) is None  # opens a read snapshot
    requests = [LinkRequest("r1", "A", {"p": "1"}), LinkRequest("r2", None, None, "https://y/")]
    await store.issue_links(workspace.id, campaign.id, requests, lambda i: f"c{i}")
    first = await store.find_link_target(1)  # the snapshot predates it: retried fresh
    assert first == LinkTarget("c1", campaign.id, "A", None, {"p": "1"})
    assert await store.find_link_target(2) == LinkTarget(
        "c2", campaign.id, None, "https://y/", None
    )
    assert await store.find_link_target(3) is None


async def test_campaign_reads_are_always_fresh(store: SqliteStore) -> None:
    workspace = await store.ensure_workspace("w")
    campaign = await store.add_campaign(workspace.id, SPEC)
    assert (await store.find_campaign(campaign.id)).disabled is False  # type: ignore[union-attr]
    await store.update_campaign(workspace.id, campaign.id, {"disabled": True})
    assert (await store.find_campaign(campaign.id)).disabled is True  # type: ignore[union-attr]


async def test_checkpointer_moves_the_log_into_the_database_file(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    store = SqliteStore(path)
    store._checkpointer = Checkpointer(path, interval=0.05)
    await store.open()
    try:
        await store.ensure_workspace("only in the log until a checkpoint")
        await asyncio.sleep(0.4)
        # immutable=1 reads the database file alone, ignoring the write-ahead log
        with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as conn:
            (count,) = conn.execute("SELECT count(*) FROM workspaces").fetchone()
        assert count == 1
    finally:
        await store.close()


async def test_an_idle_lookup_snapshot_is_ended_by_the_checkpointer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracker.store import sqlite as backend

    monkeypatch.setattr(backend, "SNAPSHOT_SECONDS", 0.01)
    path = str(tmp_path / "t.db")
    store = SqliteStore(path)
    store._checkpointer = Checkpointer(path, interval=0.05, on_tick=store._end_stale_snapshot)
    await store.open()
    try:
        await store.find_link(1)  # opens a snapshot, then nothing reads again
        assert store._lookup is not None and store._lookup.in_transaction
        await asyncio.sleep(0.3)
        assert not store._lookup.in_transaction
    finally:
        await store.close()


@pytest.mark.parametrize("count", [1, 5, 8, 2048, 2100])
async def test_every_click_of_a_batch_is_stored_once(store: SqliteStore, count: int) -> None:
    """Statements are padded to a power of two rows by repeating the last click."""
    workspace = await store.ensure_workspace("w")
    campaign = await store.add_campaign(workspace.id, SPEC)
    rows = [
        ClickRow(
            1,
            campaign.id,
            1_700_000_000_000 + i,
            f"click-{i:05d}",
            "GET",
            "human",
            "default_human",
            "mobile",
            "iOS",
            "Safari",
            "UA",
            "10.0.0.0",
            None,
        )
        for i in range(count)
    ]
    await store.record_clicks(rows)
    await store.record_clicks(rows[:3])  # a retried batch is harmless
    conn = sqlite3.connect(store.path)
    try:
        stored = [r[0] for r in conn.execute("SELECT click_id FROM clicks ORDER BY id")]
    finally:
        conn.close()
    assert stored == [row.click_id for row in rows]
