"""Clicks survive the process: SIGKILL in durable mode, SIGTERM in fast mode."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.e2e.server import RawClient, Server, running_server


def make_links(server: Server, count: int) -> list[str]:
    auth = {"Authorization": f"Bearer {server.first_key}"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=10) as http:
        campaign = http.post(
            "/api/v1/campaigns", json={"name": "D", "destination": "https://shop.example/"}
        ).json()
        links = http.post(
            f"/api/v1/campaigns/{campaign['id']}/links",
            json={"recipients": [{"ref": f"r{n}"} for n in range(count)]},
        ).json()["links"]
    return [link["code"] for link in links]


async def hammer(url: str, codes: list[str], total: int, concurrency: int) -> list[str]:
    """Click ``total`` times; the click ids of every 302 that arrived, in arrival order."""
    answered: list[str] = []
    queue = [codes[n % len(codes)] for n in range(total)]

    async def worker() -> None:
        client = RawClient(url)
        try:
            while queue:
                status, headers = await client.get(f"/{queue.pop()}")
                assert status == 302
                answered.append(dict(parse_qsl(urlsplit(headers["location"]).query))["tclid"])
        except ConnectionError:
            return  # the server is gone
        finally:
            await client.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answered


def stored_click_ids(database: Path) -> set[str]:
    with sqlite3.connect(database) as conn:
        return {row[0] for row in conn.execute("SELECT click_id FROM clicks")}


def test_durable_clicks_survive_sigkill(tmp_path: Path) -> None:
    """Under load, another connection holds SQLite's write lock — commits stall, as on a slow
    disk — and the server is killed while they stall. In durable mode no 302 leaves before
    its click commits, so every answered click is stored. (Run the same with
    TRACKER_CLICK_DURABILITY=fast and answered clicks are lost: the test can fail.)"""
    database = tmp_path / "tracker.db"
    with running_server(database, env={"TRACKER_CLICK_DURABILITY": "durable"}) as server:
        codes = make_links(server, 50)

        async def load_stall_kill() -> list[str]:
            load = asyncio.create_task(hammer(server.url, codes, 1_000_000, 16))
            await asyncio.sleep(0.7)
            blocker = sqlite3.connect(database, isolation_level=None, timeout=10)
            blocker.execute("BEGIN IMMEDIATE")  # commits now wait
            await asyncio.sleep(0.3)
            server.process.send_signal(signal.SIGKILL)  # with clicks waiting to commit
            blocker.execute("ROLLBACK")
            blocker.close()
            return await load

        answered = asyncio.run(load_stall_kill())
        server.process.wait(timeout=10)
    assert len(answered) > 100, "the load did not get going before the kill"
    missing = set(answered) - stored_click_ids(database)
    assert not missing, f"{len(missing)} of {len(answered)} answered clicks lost"
    # and the database opens cleanly for the next start
    with running_server(database) as again:
        assert httpx.get(again.url + "/readyz").status_code == 200


def test_fast_mode_sigterm_drains_the_queue(tmp_path: Path) -> None:
    """Fast mode answers before committing. With commits stalled (another connection holds
    the write lock) clicks pile up in the queue; a SIGTERM then must write them all before
    the process exits."""
    database = tmp_path / "tracker.db"
    with running_server(database, env={"TRACKER_CLICK_DURABILITY": "fast"}) as server:
        codes = make_links(server, 50)

        async def stall_load_term() -> list[str]:
            warm = await hammer(server.url, codes, 200, 32)
            # Commits stall from here on: every click of the load below waits in the queue.
            blocker = sqlite3.connect(database, isolation_level=None, timeout=10)
            blocker.execute("BEGIN IMMEDIATE")
            answered = warm + await hammer(server.url, codes, 2800, 32)
            queued = len(answered) - len(stored_click_ids(database))
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            blocker.execute("ROLLBACK")
            blocker.close()
            assert queued > 0, "nothing was queued at SIGTERM: the test proves nothing"
            return answered

        answered = asyncio.run(stall_load_term())
        assert server.process.wait(timeout=20) in (0, -signal.SIGTERM)
    assert len(answered) == 3000
    missing = set(answered) - stored_click_ids(database)
    assert not missing, f"{len(missing)} of {len(answered)} answered clicks lost"
