"""Clicks written by a child process (``TRACKER_CLICK_WRITER=process``)."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from tracker.models import CampaignSpec, ClickRow
from tracker.store.base import StoreError
from tracker.store.clickprocess import serve
from tracker.store.sqlite import SqliteStore

SPEC = CampaignSpec(name="c", slug="c", destination="https://x.example/")


def _rows(count: int, campaign_id: int, start: int = 0) -> list[ClickRow]:
    return [
        ClickRow(
            1,
            campaign_id,
            1_700_000_000_000 + i,
            f"click-{i:05d}",
            "GET",
            "human",
            "default_human",
            "mobile",
            "iOS",
            "Safari",
            "Mozilla/5.0 (iPhone) ünïcode",
            "10.0.0.0",
            None if i % 2 else "https://ref.example/",
        )
        for i in range(start, start + count)
    ]


def _stored(path: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT link_id, campaign_id, clicked_at, click_id, method, kind, rule, device, os,"
            " browser, user_agent, ip, referrer FROM clicks ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "t.db"), click_process=True)
    await store.open()
    yield store
    await store.close()


async def _campaign_id(store: SqliteStore) -> int:
    workspace = await store.ensure_workspace("w")
    return (await store.add_campaign(workspace.id, SPEC)).id


@pytest.mark.parametrize("count", [1, 64, 2100])
async def test_a_batch_is_stored_whole_and_once(store: SqliteStore, count: int) -> None:
    rows = _rows(count, await _campaign_id(store))
    await store.record_clicks(rows)
    await store.record_clicks(rows[:3])  # a retried batch is harmless
    assert _stored(store.path) == [tuple(row) for row in rows]


async def test_a_failed_batch_writes_nothing_and_the_next_one_goes_through(
    store: SqliteStore,
) -> None:
    campaign_id = await _campaign_id(store)
    bad = [*_rows(2, campaign_id), _rows(1, campaign_id, 2)[0]._replace(kind=None)]
    with pytest.raises(StoreError, match="NOT NULL"):
        await store.record_clicks(bad)  # type: ignore[arg-type]
    assert _stored(store.path) == []
    good = _rows(3, campaign_id)
    await store.record_clicks(good)
    assert _stored(store.path) == [tuple(row) for row in good]


async def test_a_child_that_died_unnoticed_fails_one_batch_then_is_started_again(
    store: SqliteStore,
) -> None:
    campaign_id = await _campaign_id(store)
    process = store._clicks
    assert process is not None and process._child is not None
    first = process._child
    first.kill()  # and no wait: the batch finds out
    rows = _rows(5, campaign_id)
    with pytest.raises(StoreError, match="stopped"):
        await store.record_clicks(rows)
    await store.record_clicks(rows)  # the click writer's retry
    assert process._child is not None and process._child is not first
    assert _stored(store.path) == [tuple(row) for row in rows]


async def test_a_child_known_dead_is_started_again_before_the_batch(store: SqliteStore) -> None:
    campaign_id = await _campaign_id(store)
    process = store._clicks
    assert process is not None and process._child is not None
    first = process._child
    first.kill()
    await first.wait()
    rows = _rows(5, campaign_id)
    await store.record_clicks(rows)
    assert process._child is not None and process._child is not first
    assert _stored(store.path) == [tuple(row) for row in rows]


async def test_a_batch_cancelled_in_flight_does_not_answer_for_the_next(
    store: SqliteStore,
) -> None:
    """After a cancelled ``record`` the old child's answer is never read for a new batch."""
    campaign_id = await _campaign_id(store)
    process = store._clicks
    assert process is not None
    first = process._child
    task = asyncio.create_task(store.record_clicks(_rows(3, campaign_id)))
    await asyncio.sleep(0)  # sent, not yet answered
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert process._child is None
    later = _rows(2, campaign_id, 10)
    await store.record_clicks(later)
    assert process._child is not None and process._child is not first
    assert [row[3] for row in _stored(store.path)][-2:] == [row.click_id for row in later]


async def test_close_ends_the_child(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "t.db"), click_process=True)
    await store.open()
    assert store._clicks is not None
    child = store._clicks._child
    assert child is not None and child.returncode is None
    await store.close()
    assert child.returncode == 0


def test_the_child_answers_each_frame_and_stops_at_end_of_input(tmp_path: Path) -> None:
    """``serve`` alone: a good batch, a frame that is not JSON, a cut-off frame."""
    path = str(tmp_path / "t.db")

    async def migrate() -> int:
        store = SqliteStore(path)
        await store.open()
        try:
            return await _campaign_id(store)
        finally:
            await store.close()

    campaign_id = asyncio.run(migrate())
    good = orjson.dumps(_rows(2, campaign_id), default=tuple)
    frames = b"".join(
        [
            len(good).to_bytes(4, "little") + good,
            (4).to_bytes(4, "little") + b"nope",
            (100).to_bytes(4, "little") + b"cut",
        ]
    )
    answers = io.BytesIO()
    serve(path, io.BytesIO(frames), answers)
    out = answers.getvalue()
    assert out[:1] == b"\x00"
    assert out[1:2] == b"\x01"
    size = int.from_bytes(out[2:6], "little")
    assert b"JSONDecodeError" in out[6 : 6 + size]
    assert len(out) == 6 + size  # nothing answered for the cut-off frame
    assert len(_stored(path)) == 2
