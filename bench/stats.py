"""Benchmark: campaign stats at scale — 1 000 000 links, 150 000 clicks, 10 000 conversions.

Builds the data set through the store's own write paths (the ones the API and the click
writer call: issue_links, record_message_events, record_clicks, record_conversions), so the
counters and the click rollup are what production would have: two variants, a delivery
receipt for every link, clicks spread over three days (80 % human), conversions in two
currencies. Then starts `tracker serve` on the file and times `GET …/stats` (the first call
also folds the clicks not yet in the rollup), then streams the recipients CSV (1 000 000
rows) while watching the server's resident memory.

For scale, in the same run: one query that counts the campaign's clicks per variant from
the raw rows (what stats would cost without the rollup).

    .venv/bin/python bench/stats.py [--links 1000000 --clicks 150000 --conversions 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.e2e.server import running_server
from tracker import keys
from tracker.codes import CodeBook
from tracker.models import CampaignSpec, ClickRow, ConversionInput, LinkRequest, MessageEvent
from tracker.models import Variant as V
from tracker.store.sqlite import SqliteStore

HOUR = 3_600_000
UAS = [
    ("human", "mobile", "iOS", "Mobile Safari"),
    ("human", "mobile", "Android", "Chrome Mobile"),
    ("human", "desktop", "Windows", "Chrome"),
    ("preview", "other", "Other", "Other"),
]


async def build(
    path: str, links: int, clicks: int, conversions: int
) -> tuple[int, str, int, float]:
    """The data set; returns the campaign id, an admin key, and how many clicks the last
    fold of the rollup took in, in how many seconds."""
    rng = random.Random(1)
    store = SqliteStore(path)
    await store.open()
    workspace = await store.ensure_workspace("bench")
    key = keys.generate()
    await store.add_api_key(workspace.id, key.key_id, key.key_hash, frozenset({"admin"}), "b")
    spec = CampaignSpec(
        name="Scale", slug="scale", destination="https://shop.example/",
        cost_per_message=Decimal("0.05"), currency="EUR", variants=(V("A"), V("B")),
    )  # fmt: skip
    campaign = await store.add_campaign(workspace.id, spec)
    book = CodeBook(store.code_secret)
    start = int(time.time() * 1000) - 3 * 24 * HOUR
    for first in range(0, links, 20_000):
        part = [
            LinkRequest(f"r{n:08d}", "AB"[n % 2]) for n in range(first, min(links, first + 20_000))
        ]
        await store.issue_links(workspace.id, campaign.id, part, book.encode)
        events = [MessageEvent("delivered", start + rng.randint(0, HOUR), ref=r.ref) for r in part]
        await store.record_message_events(campaign.id, events)
    first_link = 1
    rows = []
    for n in range(clicks):
        link = first_link + rng.randrange(links)
        kind, device, os, browser = UAS[3] if rng.random() < 0.2 else rng.choice(UAS[:3])
        at = start + HOUR + rng.randint(0, 3 * 24 * HOUR - 2 * HOUR)
        rows.append(ClickRow(link, campaign.id, at, f"c{n:019d}", "GET", kind, "rule",
                             device, os, browser, "Mozilla/5.0 (bench)", None, None))  # fmt: skip
    rows.sort(key=lambda r: r.clicked_at_ms)  # clicks arrive in time order
    for i in range(0, len(rows), 2000):
        await store.record_clicks(rows[i : i + 2000])
    human = [r for r in rows if r.kind == "human"]
    picks = [human[rng.randrange(len(human))] for _ in range(conversions)]
    money = {"value": Decimal("19.90")}
    inputs = [
        ConversionInput("purchase", r.clicked_at_ms + 60_000, "api", click_id=r.click_id,
                        order_id=f"o{n}", currency=rng.choice(["EUR", "USD"]), **money)
        for n, r in enumerate(picks)
    ]  # fmt: skip
    for i in range(0, len(inputs), 5000):
        await store.record_conversions(workspace.id, inputs[i : i + 5000])
    started = time.perf_counter()
    folded = await store.fold_all_clicks()  # what the server's rollup task does each second
    seconds = time.perf_counter() - started
    await store.close()
    return campaign.id, key.key, folded, seconds


def raw_scan(path: str, campaign_id: int) -> float:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    started = time.perf_counter()
    conn.execute(
        "SELECT l.variant, c.kind, count(*), count(DISTINCT c.link_id) FROM clicks c"
        " JOIN links l ON l.id = c.link_id WHERE c.campaign_id = ? GROUP BY 1, 2",
        (campaign_id,),
    ).fetchall()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--clicks", type=int, default=150_000)
    parser.add_argument("--conversions", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    results: dict[str, object] = vars(args).copy()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.db")
        started = time.perf_counter()
        campaign_id, key, folded, fold_seconds = asyncio.run(
            build(path, args.links, args.clicks, args.conversions)
        )
        results["build_seconds"] = round(time.perf_counter() - started, 1)
        results["fold"] = {
            "clicks": folded,
            "seconds": round(fold_seconds, 2),
            "us_per_click": round(fold_seconds / max(folded, 1) * 1e6, 1),
        }
        print(f"built in {results['build_seconds']} s; the rollup folded the last {folded}"
              f" clicks in {fold_seconds:.2f} s")  # fmt: skip
        with running_server(Path(path)) as server:
            url = f"{server.url}/api/v1/campaigns/{campaign_id}"
            auth = {"Authorization": f"Bearer {key}"}
            with httpx.Client(headers=auth, timeout=60) as http:
                times = []
                for _ in range(args.requests + 1):
                    t = time.perf_counter()
                    response = http.get(url + "/stats")
                    times.append((time.perf_counter() - t) * 1000)
                    assert response.status_code == 200, response.text
                body = response.json()
                assert body["totals"]["issued"] == args.links
                assert body["totals"]["human_clicks"] + body["totals"]["bot_clicks"] == args.clicks
                assert body["totals"]["conversions"] == args.conversions
                first, rest = times[0], times[1:]
                results["stats_ms"] = {
                    "first": round(first, 1),
                    "median": round(statistics.median(rest), 1),
                    "max": round(max(rest), 1),
                }
                print(f"stats: first {first:.0f} ms (cold), then median "
                      f"{statistics.median(rest):.0f} ms, max {max(rest):.0f} ms")  # fmt: skip
                before = rss_kb(server.process.pid)
                peak, rows, t = before, 0, time.perf_counter()
                with http.stream("GET", url + "/recipients.csv") as csv:
                    for chunk in csv.iter_bytes():
                        rows += chunk.count(b"\n")  # no field here holds a newline
                        peak = max(peak, rss_kb(server.process.pid))
                seconds = time.perf_counter() - t
                assert rows == args.links + 1, rows
                results["csv"] = {
                    "rows": rows - 1,
                    "seconds": round(seconds, 1),
                    "server_rss_mb_before": round(before / 1024),
                    "server_rss_mb_peak": round(peak / 1024),
                }
                print(f"csv: {rows - 1} rows in {seconds:.1f} s; server memory "
                      f"{before / 1024:.0f} MB before, {peak / 1024:.0f} MB at most")  # fmt: skip
        scan = raw_scan(path, campaign_id) * 1000
        results["raw_scan_ms"] = round(scan, 1)
        print(f"for scale: one raw count of the clicks per variant: {scan:.0f} ms")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
