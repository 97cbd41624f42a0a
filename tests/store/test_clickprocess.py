"""Clicks written by a child process (``TRACKER_CLICK_WRITER=process``)."""

from __future__ import annotations

import asyncio
import io
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import httpx
import orjson
import pytest

from tests.e2e.server import running_server
from tracker.addresses import IpStorage, parse_networks
from tracker.clicks import to_rows
from tracker.codes import CodeBook
from tracker.models import CampaignSpec, Click, LinkRequest
from tracker.store.base import StoreError
from tracker.store.clickprocess import Preparation, serve
from tracker.store.sqlite import SqliteStore

SPEC = CampaignSpec(name="c", slug="c", destination="https://x.example/")


IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def _hits(count: int, campaign_id: int, start: int = 0) -> list[Click]:
    """Raw clicks as the redirect makes them: people, a preview bot, a HEAD."""
    agents = [IPHONE, "WhatsApp/2.23.20.0", "curl/8.5.0 ünïcode"]
    return [
        Click(
            1,
            campaign_id,
            1_700_000_000_000 + i,
            f"click-{i:05d}",
            "HEAD" if i % 5 == 4 else "GET",
            agents[i % 3],
            "203.0.113.77",
            "198.51.100.7",
            None if i % 2 else "https://ref.example/",
        )
        for i in range(start, start + count)
    ]


def _expected(
    hits: list[Click], preparation: Preparation | None = None
) -> list[tuple[object, ...]]:
    """The rows ``to_rows`` makes in this process, to compare with the child's."""
    preparation = preparation or Preparation()
    networks = parse_networks(preparation.trusted_proxies)
    ip_storage = cast(IpStorage, preparation.ip_storage)
    return [tuple(row) for row in to_rows(hits, networks, ip_storage)]


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
    store = SqliteStore(str(tmp_path / "t.db"), click_process=Preparation())
    await store.open()
    yield store
    await store.close()


async def _campaign_id(store: SqliteStore) -> int:
    """A campaign with one link, id 1: the link of every click here."""
    workspace = await store.ensure_workspace("w")
    campaign = await store.add_campaign(workspace.id, SPEC)
    codes = CodeBook(store.code_secret)
    issued = await store.issue_links(workspace.id, campaign.id, [LinkRequest("r")], codes.encode)
    assert codes.decode(issued[0].code) == 1
    return campaign.id


@pytest.mark.parametrize("count", [1, 64, 2100])
async def test_a_batch_is_classified_and_stored_whole_and_once(
    store: SqliteStore, count: int
) -> None:
    hits = _hits(count, await _campaign_id(store))
    await store.record_hits(hits)
    await store.record_hits(hits[:3])  # a retried batch is harmless
    stored = _stored(store.path)
    assert stored == _expected(hits)
    kinds = {row[5] for row in stored}
    if count == 1:
        assert kinds == {"human"}
    else:
        assert {"human", "preview", "library"} <= kinds
    assert {row[11] for row in stored} == {"203.0.113.0"}  # the peer, truncated


async def test_the_child_prepares_clicks_with_the_settings_given(tmp_path: Path) -> None:
    preparation = Preparation(trusted_proxies="203.0.113.0/24", ip_storage="full")
    store = SqliteStore(str(tmp_path / "t.db"), click_process=preparation)
    await store.open()
    try:
        hits = _hits(3, await _campaign_id(store))
        await store.record_hits(hits)
        stored = _stored(store.path)
    finally:
        await store.close()
    assert stored == _expected(hits, preparation)
    assert {row[11] for row in stored} == {"198.51.100.7"}  # behind a trusted proxy, whole


async def test_the_child_runs_the_servers_package_wherever_it_was_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A checkout of another revision in the working directory (as when bench/ab.py runs
    # from the repository with a revision on PYTHONPATH) must not become the child's code.
    impostor = tmp_path / "tracker"
    impostor.mkdir()
    (impostor / "__init__.py").write_text("raise ImportError('the wrong tracker package')\n")
    monkeypatch.chdir(tmp_path)
    store = SqliteStore(str(tmp_path / "t.db"), click_process=Preparation())
    await store.open()
    try:
        hits = _hits(2, await _campaign_id(store))
        await store.record_hits(hits)
        assert _stored(store.path) == _expected(hits)
    finally:
        await store.close()


async def test_a_store_without_a_click_process_refuses_raw_clicks(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "t.db"))
    assert not store.prepares_clicks
    with pytest.raises(StoreError, match="without a click process"):
        await store.record_hits(_hits(1, 1))


@pytest.mark.parametrize(
    ("spoiled", "error"),
    [
        ({"link_id": None}, "NOT NULL"),  # refused by SQLite in the child
        ({"referrer": "\ud800"}, "serialisable"),  # a lone surrogate: refused before sending
    ],
)
async def test_a_failed_batch_writes_nothing_and_the_next_one_goes_through(
    store: SqliteStore, spoiled: dict[str, object], error: str
) -> None:
    campaign_id = await _campaign_id(store)
    bad = [*_hits(2, campaign_id), _hits(1, campaign_id, 2)[0]._replace(**spoiled)]
    with pytest.raises(StoreError, match=error):
        await store.record_hits(bad)
    assert _stored(store.path) == []
    good = _hits(3, campaign_id)
    await store.record_hits(good)
    assert _stored(store.path) == _expected(good)


@pytest.mark.parametrize("noticed", [False, True])
async def test_a_dead_child_is_started_again(store: SqliteStore, noticed: bool) -> None:
    """Known dead (its exit collected): started again before the batch. Died unnoticed: the
    batch that finds out fails (the click writer retries it), the next one starts it."""
    campaign_id = await _campaign_id(store)
    process = store._clicks
    assert process is not None and process._child is not None and process._answers is not None
    first = process._child
    first.kill()
    hits = _hits(5, campaign_id)
    if noticed:
        await process._answers.exited
    else:
        with pytest.raises(StoreError, match="stopped"):
            await store.record_hits(hits)
    await store.record_hits(hits)
    assert process._child is not None and process._child is not first
    assert _stored(store.path) == _expected(hits)


async def test_batches_in_flight_together_each_get_their_own_answer(store: SqliteStore) -> None:
    """Handed over at once, answered in order: a failing batch between two good ones fails
    alone, and each good one returns once it is stored."""
    campaign_id = await _campaign_id(store)
    first, third = _hits(3, campaign_id), _hits(2, campaign_id, 10)
    bad = [_hits(1, campaign_id, 20)[0]._replace(link_id=None)]
    tasks = [asyncio.create_task(store.record_hits(b)) for b in (first, bad, third)]
    await asyncio.sleep(0)
    assert store._clicks is not None and store._clicks._answers is not None
    assert len(store._clicks._answers.waiting) == 3  # all three handed over, none answered
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StoreError) and "NOT NULL" in str(results[1])
    assert _stored(store.path) == _expected(first + third)


async def test_a_batch_cancelled_in_flight_does_not_answer_for_the_next(
    store: SqliteStore,
) -> None:
    """A cancelled ``record``'s batch was handed over: the child still writes it, and its
    answer is read in its turn and dropped — the next batch gets its own (here, a refusal),
    from the same child."""
    campaign_id = await _campaign_id(store)
    process = store._clicks
    assert process is not None
    first = process._child
    cancelled = _hits(3, campaign_id)
    task = asyncio.create_task(store.record_hits(cancelled))
    await asyncio.sleep(0)  # sent, not yet answered
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    bad = [_hits(1, campaign_id, 10)[0]._replace(link_id=None)]
    with pytest.raises(StoreError, match="NOT NULL"):
        await store.record_hits(bad)
    later = _hits(2, campaign_id, 20)
    await store.record_hits(later)
    assert process._child is first
    assert _stored(store.path) == _expected(cancelled + later)


async def test_close_ends_the_child(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "t.db"), click_process=Preparation())
    await store.open()
    assert store._clicks is not None
    child = store._clicks._child
    assert child is not None and child.get_returncode() is None
    await store.close()
    assert child.get_returncode() == 0


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
    good = orjson.dumps(_hits(2, campaign_id), default=tuple)
    frames = b"".join(
        [
            len(good).to_bytes(4, "little") + good,
            (4).to_bytes(4, "little") + b"nope",
            (100).to_bytes(4, "little") + b"cut",
        ]
    )
    read, write = os.pipe()
    os.write(write, frames)
    os.close(write)
    answers = io.BytesIO()
    try:
        serve(path, Preparation(), read, answers)
    finally:
        os.close(read)
    out = answers.getvalue()
    assert out[:1] == b"\x00"
    assert out[1:2] == b"\x01"
    size = int.from_bytes(out[2:6], "little")
    assert b"JSONDecodeError" in out[6 : 6 + size]
    assert len(out) == 6 + size  # nothing answered for the cut-off frame
    assert len(_stored(path)) == 2


async def test_the_child_keeps_the_rollup_current_and_the_server_does_not_fold(
    tmp_path: Path,
) -> None:
    store = SqliteStore(str(tmp_path / "t.db"), rollup_seconds=0.05, click_process=Preparation())
    await store.open()
    try:
        assert store._roller is None  # the server's own background fold is not running
        hits = _hits(120, await _campaign_id(store))  # more than one fold transaction's worth
        await store.record_hits(hits)
        conn = sqlite3.connect(store.path)
        try:
            last = conn.execute("SELECT max(id) FROM clicks").fetchone()[0]
            for _ in range(200):
                folded = conn.execute(
                    "SELECT value FROM rollup_state WHERE name = 'clicks'"
                ).fetchone()[0]
                if folded == last:
                    break
                await asyncio.sleep(0.025)
            counted = conn.execute(
                "SELECT sum(human_clicks) + sum(bot_clicks) FROM variant_counts"
            ).fetchone()[0]
        finally:
            conn.close()
    finally:
        await store.close()
    assert folded == last
    assert counted == len(hits)


def _children(pid: int, marker: str) -> list[int]:
    """Live child processes of ``pid`` whose command line holds ``marker`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        if parent == pid and marker in command and stat[stat.rindex(")") + 2] != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_the_server_writes_clicks_through_the_writer_configured(
    tmp_path: Path, writer: str
) -> None:
    """``tracker serve`` starts one click process (unless told ``thread``), a redirect's
    click arrives classified either way, and stopping the server ends the child."""
    database = tmp_path / "tracker.db"
    env = {"TRACKER_CLICK_WRITER": writer}
    with running_server(database, env=env) as server:
        auth = {"Authorization": f"Bearer {server.first_key}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=10) as http:
            link = http.post("/api/v1/links", json={"destination": "https://x.example/"}).json()
            children = _children(server.process.pid, "tracker.store.clickprocess")
            assert len(children) == (1 if writer == "process" else 0)
            answer = http.get(f"/{link['code']}", headers={"User-Agent": "WhatsApp/2.23.20.0"})
            assert answer.status_code == 302
    conn = sqlite3.connect(database)
    try:
        assert conn.execute("SELECT kind FROM clicks").fetchall() == [("preview",)]
    finally:
        conn.close()
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)


@pytest.mark.parametrize(
    ("durability", "process", "in_flight"),
    [("durable", True, 2), ("fast", True, 1), ("durable", False, 1), ("fast", False, 1)],
)
def test_durable_redirects_keep_two_batches_in_flight_to_the_process(
    tmp_path: Path, durability: str, process: bool, in_flight: int
) -> None:
    """Only where a redirect waits on its commit and the child can take a batch while it
    writes the last: durable mode with the click process (decision 0011)."""
    from tracker.config import Settings
    from tracker.web.services import Services

    settings = Settings(database_url=f"sqlite:///{tmp_path / 't.db'}", click_durability=durability)
    store = SqliteStore(str(tmp_path / "t.db"), click_process=Preparation() if process else None)
    assert Services(settings, store).writer._in_flight == in_flight


async def test_committed_is_called_when_the_answer_is_read_and_only_for_a_commit(
    store: SqliteStore,
) -> None:
    """From the callback that reads the child's answer: before ``record_hits`` returns, in
    the same turn of the loop; never for a batch the child refused."""
    campaign_id = await _campaign_id(store)
    calls: list[object] = []

    def committed() -> None:
        calls.append(asyncio.current_task())  # None: not from inside a task's step

    await store.record_hits(_hits(3, campaign_id), committed)
    assert calls == [None]
    bad = [_hits(1, campaign_id, 10)[0]._replace(link_id=None)]
    with pytest.raises(StoreError):
        await store.record_hits(bad, committed)
    assert calls == [None]
