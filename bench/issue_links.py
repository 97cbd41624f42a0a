"""Benchmark: issue 1 000 000 per-recipient links through the NDJSON endpoint, twice.

Starts `tracker serve` (one worker) on a fresh SQLite file on a free loopback port, creates
a campaign with two variants, streams N recipients as NDJSON while reading the answer
(as a real sender would), then streams the same N refs again (the idempotent path).
The ceiling, measured in the same run on the same machine: SQLite alone inserting the same
N rows into the same schema with executemany in one transaction — the cost of storing the
links with nothing else (no HTTP, parsing, validation, codes or answer).

    .venv/bin/python bench/issue_links.py [--links 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.ndjson import post_recipients
from tests.e2e.server import running_server
from tracker.store.migrations import migrate_sqlite


async def stream_ndjson(url: str, path: str, key: str, lines: int) -> tuple[float, int, bytes]:
    """Stream ``lines`` recipients; (seconds, links answered, last bytes of the answer)."""
    seen = {"codes": 0, "tail": b""}

    def count(chunk: bytes) -> None:
        tail = seen["tail"][-8:]  # a '"code"' split across two chunks
        seen["codes"] += (tail + chunk).count(b'"code"') - tail.count(b'"code"')
        seen["tail"] = chunk

    elapsed = await post_recipients(url, path, key, lines, count)
    return elapsed, int(seen["codes"]), bytes(seen["tail"])


def ceiling(lines: int) -> float:
    """Seconds for SQLite alone to insert the same rows into the same schema."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "ceiling.db")
        migrate_sqlite(path)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("INSERT INTO workspaces (name, created_at) VALUES ('w', 0)")
        conn.execute(
            "INSERT INTO campaigns (workspace_id, name, slug, destination, utm,"
            " attribution_window_hours, created_at) VALUES (1, 'c', 'c', 'https://x/', '{}', 1, 0)"
        )
        rows = [
            (n + 1, f"c{n:07d}xyz", 1, 1, f"r{n:08d}", "AB"[n % 2], None, None, 0)
            for n in range(lines)
        ]
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO links VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        conn.close()
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--links", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.links
    results: dict[str, object] = {"links": n}
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "bench.db") as server:
        key = server.first_key
        assert key
        campaign = httpx.post(
            server.url + "/api/v1/campaigns",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "name": "bench",
                "destination": "https://shop.example/",
                "variants": [{"key": "A"}, {"key": "B"}],
            },
        ).json()
        path = f"/api/v1/campaigns/{campaign['id']}/links"
        for label in ("first", "repeat"):
            elapsed, codes, tail = asyncio.run(stream_ndjson(server.url, path, key, n))
            assert codes == n, f"{label}: {codes} links answered of {n}; tail {tail[-300:]!r}"
            results[label] = {"seconds": round(elapsed, 2), "links_per_s": round(n / elapsed)}
            print(f"{label:>7}: {n} links in {elapsed:.1f} s = {n / elapsed:,.0f} links/s")
    seconds = ceiling(n)
    results["ceiling"] = {"seconds": round(seconds, 2), "rows_per_s": round(n / seconds)}
    print(f"ceiling: SQLite executemany of {n} rows in {seconds:.1f} s = {n / seconds:,.0f} rows/s")
    for label in ("first", "repeat"):
        entry = results[label]
        assert isinstance(entry, dict)
        entry["ratio_to_ceiling"] = round(seconds / entry["seconds"], 3)
        print(f"{label:>7}: {entry['ratio_to_ceiling']:.3f} of the ceiling")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
