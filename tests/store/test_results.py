"""The rollup tables always equal a recount from the raw rows."""

from __future__ import annotations

import random

from tests.store.test_conversions import make_world
from tracker.models import ClickRow, ConversionInput, MessageEvent
from tracker.store.sqlite import SqliteStore

T0 = 1_800_000_000_000
H = 3_600_000


def row(link_id: int, campaign_id: int, at: int, n: int, kind: str, device: str) -> ClickRow:
    return ClickRow(link_id, campaign_id, at, f"k{n}", "GET", kind, "r", device, "iOS", "b",
                    "ua", None, None)  # fmt: skip


async def test_rollups_equal_a_recount_whatever_the_order_of_events(store: SqliteStore) -> None:
    world = await make_world(store)
    refs = list(world.links)
    rng = random.Random(5)
    n = 0
    for _ in range(12):  # clicks, receipts and folds interleaved, as in production
        batch = []
        for _ in range(rng.randint(1, 40)):
            n += 1
            ref = rng.choice(refs)
            kind = "human" if rng.random() < 0.6 else rng.choice(["preview", "scanner"])
            at = T0 + rng.randint(-5 * H, 50 * H)  # not in time order
            batch.append(row(world.links[ref], world.campaign, at, n, kind, rng.choice("mdt")))
        await store.record_clicks(batch)
        statuses = ["sent", "delivered", "failed", "opted_out"]
        events = [
            MessageEvent(rng.choice(statuses), T0 + rng.randint(0, H), ref=rng.choice(refs))
            for _ in range(3)
        ]
        await store.record_message_events(world.campaign, events)
        if rng.random() < 0.5:
            await store.fold_clicks(limit=rng.randint(1, 30))
    await store.record_conversions(
        world.workspace, [ConversionInput("lead", T0 + 60 * H, "api", click_id="k1")]
    )
    results = await store.campaign_results(world.campaign)
    assert results == await store.recount_results(world.campaign)
    assert sum(c.human_clicks + c.bot_clicks for c in results.counts.values()) == n
    # And from a cold start: the whole rollup rebuilt from nothing gives the same.
    assert await store.rebuild_click_rollup() == n
    assert await store.campaign_results(world.campaign) == results


async def test_reclassifying_clicks_moves_the_numbers(store: SqliteStore) -> None:
    world = await make_world(store)
    await store.record_clicks([row(world.links["r1"], world.campaign, T0, 1, "human", "m")])
    before = await store.campaign_results(world.campaign)
    assert before.counts["A"].unique_clickers == 1

    def everything_is_a_preview(user_agent: str, method: str) -> tuple[str, ...]:
        return ("preview", "test_rule", "mobile", "iOS", "b")

    assert await store.reclassify_clicks(everything_is_a_preview) == (1, 1)  # type: ignore[arg-type]
    after = await store.campaign_results(world.campaign)
    assert (after.counts["A"].human_clicks, after.counts["A"].bot_clicks) == (0, 1)
    assert after.counts["A"].unique_clickers == 0
    assert after == await store.recount_results(world.campaign)


async def test_the_migration_counts_what_was_there_before(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from tracker.store.migrations import migrate_sqlite

    path = str(tmp_path / "old.db")
    migrate_sqlite(path, target=3)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(
        "INSERT INTO workspaces (id, name, created_at) VALUES (1, 'w', 0);"
        "INSERT INTO campaigns (id, workspace_id, name, slug, destination, utm,"
        " attribution_window_hours, created_at) VALUES (1, 1, 'c', 'c', 'https://x/', '{}', 1, 0);"
        "INSERT INTO links (id, code, workspace_id, campaign_id, ref, variant, created_at)"
        " VALUES (1, 'a', 1, 1, 'r1', 'A', 0), (2, 'b', 1, 1, 'r2', 'B', 0),"
        " (3, 'c', 1, 1, 'r3', NULL, 0);"
        "INSERT INTO message_events (campaign_id, link_id, status, at, received_at) VALUES"
        " (1, 1, 'sent', 0, 0), (1, 1, 'delivered', 0, 0), (1, 2, 'opted_out', 0, 0);"
    )
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        await store.record_clicks([row(1, 1, T0, 1, "human", "m")])
        results = await store.campaign_results(1)
        assert results == await store.recount_results(1)
        assert (results.counts["A"].issued, results.counts["A"].receipted) == (1, 1)
        assert results.counts["B"].opted_out == 1 and results.counts[""].issued == 1
        assert results.counts["A"].unique_clickers == 1
    finally:
        await store.close()
