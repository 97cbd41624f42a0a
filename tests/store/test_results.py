"""The rollup tables always equal a recount from the raw rows."""

from __future__ import annotations

import contextlib
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


async def test_a_reclassify_stopped_midway_is_mended_by_the_next(store: SqliteStore) -> None:
    """Classes are written a batch at a time; a run stopped after writing them and before
    recounting leaves the rollup behind — a second run, finding nothing to change, must
    still bring the results back to what the clicks say."""
    world = await make_world(store)
    await store.record_clicks([row(world.links["r1"], world.campaign, T0, 1, "human", "m")])
    await store.campaign_results(world.campaign)  # folded as human
    async with store._transaction() as conn:  # what the stopped run got to write
        await conn.execute("UPDATE clicks SET kind = 'preview'")

    def everything_is_a_preview(user_agent: str, method: str) -> tuple[str, ...]:
        return ("preview", "r", "m", "iOS", "b")

    assert await store.reclassify_clicks(everything_is_a_preview) == (1, 0)  # type: ignore[arg-type]
    after = await store.campaign_results(world.campaign)
    assert (after.counts["A"].human_clicks, after.counts["A"].bot_clicks) == (0, 1)
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


async def test_reclassifying_clicks_moves_attribution_too(store: SqliteStore) -> None:
    world = await make_world(store)
    await store.record_clicks([row(world.links["r1"], world.campaign, T0, 1, "human", "m")])
    await store.record_clicks([row(world.links["r2"], world.campaign, T0, 2, "preview", "m")])
    first, second = await store.record_conversions(
        world.workspace,
        [
            ConversionInput("purchase", T0 + H, "api", click_id="k1", order_id="o1"),
            ConversionInput("purchase", T0 + H, "api", click_id="k2", order_id="o2"),
        ],
    )
    assert (first.attributed, second.reason) == (True, "bot_click")

    def swap(user_agent: str, method: str) -> tuple[str, ...]:
        kind = "preview" if user_agent == "ua-human" else "human"
        return (kind, "swap", "mobile", "iOS", "b")

    await store._w.execute("UPDATE clicks SET user_agent = 'ua-human' WHERE click_id = 'k1'")
    await store.reclassify_clicks(swap)  # type: ignore[arg-type]
    results = await store.campaign_results(world.campaign)
    rows = await store._read_all("SELECT order_id, reason FROM conversions ORDER BY id")
    assert rows == [("o1", "bot_click"), ("o2", None)]  # the credit follows the classes
    assert (results.counts["A"].converters, results.counts["B"].converters) == (0, 1)
    assert results == await store.recount_results(world.campaign)


async def test_a_range_times_first_clicks_only_of_clickers_new_in_it(store: SqliteStore) -> None:
    world = await make_world(store)
    link = world.links["r1"]
    await store.record_clicks([row(link, world.campaign, T0, 1, "human", "m")])
    await store.record_clicks([row(link, world.campaign, T0 + 48 * H, 2, "human", "m")])
    later = await store.campaign_results(world.campaign, T0 + 24 * H, None)
    assert later.counts["A"].unique_clickers == 1  # r1 clicked within the range
    assert later.first_click_buckets == {}  # but its first click was before it
    whole = await store.campaign_results(world.campaign, T0 - H, None)
    assert sum(whole.first_click_buckets.values()) == 1


async def test_concurrent_folds_from_two_processes_count_each_click_once(
    store: SqliteStore,
) -> None:
    import asyncio

    world = await make_world(store)
    other = SqliteStore(store.path)
    await other.open()
    try:
        refs = list(world.links)
        rng = random.Random(9)

        async def writer(start: int) -> None:
            for n in range(start, start + 300, 10):
                batch = [
                    row(world.links[rng.choice(refs)], world.campaign, T0 + rng.randint(0, 9 * H),
                        k, rng.choice(["human", "preview"]), "m")
                    for k in range(n, n + 10)
                ]  # fmt: skip
                await store.record_clicks(batch)
                await asyncio.sleep(0)

        async def folder(s: SqliteStore) -> None:
            for _ in range(40):
                await s.fold_clicks(limit=7)
                await asyncio.sleep(0)

        await asyncio.gather(writer(0), writer(1000), folder(store), folder(other))
        results = await other.campaign_results(world.campaign)
        assert results == await store.recount_results(world.campaign)
        assert sum(c.human_clicks + c.bot_clicks for c in results.counts.values()) == 600
    finally:
        await other.close()


async def test_a_cancelled_fold_keeps_the_write_lock_until_its_thread_is_done(
    store: SqliteStore,
) -> None:
    """A fold runs whole in a thread; cancelled (the server stopping), it still holds the
    writer's lock until that thread has committed or rolled back, and counts stay exact."""
    import asyncio

    world = await make_world(store)
    refs = list(world.links)
    batch = [
        row(world.links[refs[k % len(refs)]], world.campaign, T0 + k, k, "human", "m")
        for k in range(3000)
    ]
    await store.record_clicks(batch)
    lock = store._write_lock
    fold = asyncio.create_task(store.fold_clicks(limit=3000))
    for _ in range(5000):  # the read of the watermark (a thread trip), then the lock
        if lock.locked():
            break
        await asyncio.sleep(0.001)
    assert lock.locked()
    fold.cancel()
    writes = asyncio.create_task(store.record_clicks([row(world.links[refs[0]], world.campaign,
                                                          T0, 99_999, "human", "m")]))  # fmt: skip
    with contextlib.suppress(asyncio.CancelledError):
        await fold
    assert store._folder is not None and not store._folder.in_transaction
    await writes
    results = await store.campaign_results(world.campaign)
    assert results == await store.recount_results(world.campaign)
    assert sum(c.human_clicks for c in results.counts.values()) == 3001
