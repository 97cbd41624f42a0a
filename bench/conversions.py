"""Benchmark: a backfill of 100 000 conversions in one NDJSON request.

Starts `tracker serve` (one worker) on a fresh SQLite file, issues N per-recipient links,
stores a human click for half of them (written straight into the file: the setup, not what
is measured), then streams N conversions as NDJSON while reading the answer: half name
their click id, half name their recipient (campaign + ref) — every one is attributed, and
every one is checked. The ceiling, measured in the same run: SQLite alone inserting the
same N conversion rows into the same schema with executemany in one transaction.

    .venv/bin/python bench/conversions.py [--conversions 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.ndjson import post_lines, post_recipients
from tests.e2e.server import running_server
from tracker.store.migrations import migrate_sqlite

NOW_MS = int(time.time() * 1000)


def click_id(n: int) -> str:
    return f"bench{n:015d}"


def store_clicks(database: Path, campaign_id: int, count: int) -> None:
    """One human click, an hour ago, on each of the first ``count`` links."""
    conn = sqlite3.connect(database, isolation_level=None, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO clicks (link_id, campaign_id, clicked_at, click_id, method, kind, rule,"
        " device, os, browser, user_agent) SELECT id, ?, ?, ?, 'GET', 'human', 'default_human',"
        " 'mobile', 'iOS', 'Mobile Safari', 'bench' FROM links WHERE campaign_id = ? AND ref = ?",
        (
            (campaign_id, NOW_MS - 3_600_000, click_id(n), campaign_id, f"r{n:08d}")
            for n in range(count)
        ),
    )
    conn.execute("COMMIT")
    conn.close()


def conversion_lines(campaign_id: int, count: int) -> Iterator[bytes]:
    half = count // 2
    for n in range(count):
        who = (
            b'"click_id":"%s"' % click_id(n).encode()
            if n < half
            else b'"campaign_id":%d,"ref":"r%08d"' % (campaign_id, n - half)
        )
        yield (
            b'{%s,"event":"purchase","order_id":"o%d","value":"19.90","currency":"EUR"}\n'
            % (who, n)
        )


def ceiling(count: int) -> float:
    """Seconds for SQLite alone to insert the same conversion rows into the same schema."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "ceiling.db")
        migrate_sqlite(path)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("INSERT INTO workspaces (name, created_at) VALUES ('w', 0)")
        rows = [
            (1, "purchase", f"o{n}", click_id(n), None, None, "19.90", "EUR", NOW_MS, NOW_MS,
             "api", f"o:o{n}", 1, n + 1, n + 1, "A", None)
            for n in range(count)
        ]  # fmt: skip
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO conversions (workspace_id, event, order_id, click_id, sent_campaign_id,"
            " ref, value, currency, occurred_at, received_at, source, dedupe_key, campaign_id,"
            " link_id, click_row_id, variant, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        conn.close()
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversions", type=int, default=100_000)
    args = parser.parse_args()
    n = args.conversions
    results: dict[str, object] = {"conversions": n}
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "bench.db"
        with running_server(database) as server:
            key = server.first_key
            assert key
            campaign = httpx.post(
                server.url + "/api/v1/campaigns",
                headers={"Authorization": f"Bearer {key}"},
                json={"name": "bench", "destination": "https://shop.example/"},
            ).json()
            path = f"/api/v1/campaigns/{campaign['id']}/links"
            asyncio.run(post_recipients(server.url, path, key, n // 2, lambda chunk: None))
            store_clicks(database, campaign["id"], n // 2)
            answer = bytearray()
            elapsed = asyncio.run(
                post_lines(
                    server.url,
                    "/api/v1/conversions",
                    key,
                    conversion_lines(campaign["id"], n),
                    answer.extend,
                )
            )
            attributed = answer.count(b'"attributed":true')
            assert attributed == n, f"{attributed} of {n} attributed; tail {bytes(answer[-300:])!r}"
            print(f"backfill: {n} conversions in {elapsed:.2f} s = {n / elapsed:,.0f} per s")
        conn = sqlite3.connect(database)
        stored = conn.execute("SELECT count(*) FROM conversions WHERE reason IS NULL").fetchone()
        conn.close()
        assert stored[0] == n, f"{stored[0]} attributed conversions stored of {n}"
    seconds = ceiling(n)
    results["backfill"] = {
        "seconds": round(elapsed, 2),
        "per_s": round(n / elapsed),
        "ratio_to_ceiling": round(seconds / elapsed, 3),
    }
    results["ceiling"] = {"seconds": round(seconds, 2), "rows_per_s": round(n / seconds)}
    print(f"ceiling: SQLite executemany of {n} rows in {seconds:.2f} s = {n / seconds:,.0f}/s")
    print(f"backfill: {seconds / elapsed:.3f} of the ceiling")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
