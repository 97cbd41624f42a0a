"""The read side of campaign results on SQLite: plain ``sqlite3`` functions that run in a
worker thread, each inside one read transaction (one consistent snapshot).

Two ways to the same numbers (decision 0009): ``from_rollups`` reads the rollup tables
(current once ``SqliteStore.fold_all_clicks`` has run) — a few small rows whatever the
campaign's size; ``recount`` folds the raw clicks of a time range with the same
``tracker.rollup.fold`` — what a range needs, and what the tests compare the rollups with.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from decimal import Decimal

import orjson

from tracker import rollup
from tracker.models import CampaignResults, RecipientRow

HOUR_MS = rollup.HOUR_MS
# Read pages straight from the mapped file: no read() syscall and copy per B-tree page when
# a million links do not fit the page cache — the redirect's lookups and the rollup's
# per-link lookups are random over such tables (measured ≈ 2x faster). Every connection.
MMAP = "PRAGMA mmap_size=1073741824"
_COUNT_COLUMNS = (
    "issued", "sent", "delivered", "failed", "opted_out", "receipted",
    "human_clicks", "bot_clicks", "unique_clickers",
)  # fmt: skip


def connect(uri: str, mapped: bool = True) -> sqlite3.Connection:
    """A read-only connection; ``mapped`` reads the file through mmap (fast for a few
    lookups; a long export reads through the page cache instead, so a million rows do not
    stay mapped into the process)."""
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA query_only=ON")
    if mapped:
        conn.execute(MMAP)
    return conn


def from_rollups(conn: sqlite3.Connection, campaign_id: int) -> tuple[CampaignResults, int]:
    """The rollups' numbers, and the rollup's generation they were read in."""
    conn.execute("BEGIN")
    try:
        results = CampaignResults()
        _cohort(conn, campaign_id, results, with_clicks=True)
        for hour, human, bot in conn.execute(
            "SELECT hour, human, bot FROM click_hours WHERE campaign_id = ?", (campaign_id,)
        ):
            results.hours[hour] = [human, bot, 0]
        for device, os, human in conn.execute(
            "SELECT device, os, human FROM click_devices WHERE campaign_id = ?", (campaign_id,)
        ):
            results.devices[(device, os)] = human
        results.first_click_buckets = dict(
            conn.execute(
                "SELECT bucket, clickers FROM first_click_delays"
                " WHERE campaign_id = ? AND clickers != 0",
                (campaign_id,),
            ).fetchall()
        )
        _conversions(conn, campaign_id, results, None, None)
        return results, _generation(conn)
    finally:
        conn.execute("COMMIT")


def _generation(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM rollup_state WHERE name = 'generation'").fetchone()
    return int(row[0])


def recount(
    conn: sqlite3.Connection,
    campaign_id: int,
    since_ms: int | None,
    until_ms: int | None,
    raw_cohort: bool = False,
) -> tuple[CampaignResults, int]:
    """Clicks and conversions in [since, until) folded from the raw rows; links and
    receipts (the cohort) are the campaign's whole — from their counters, or counted from
    the raw rows with ``raw_cohort`` (the check of those counters).

    Time to first click counts the clickers whose first human click ever falls in the
    range (with a range, read from the rollup, which must be current); every clicker
    without one."""
    since = -(2**62) if since_ms is None else since_ms
    until = 2**62 if until_ms is None else until_ms
    whole = since_ms is None and until_ms is None
    conn.execute("BEGIN")
    try:
        results = CampaignResults()
        if raw_cohort:
            _raw_cohort(conn, campaign_id, results)
        else:
            _cohort(conn, campaign_id, results, with_clicks=False)
        clicks = conn.execute(
            "SELECT c.link_id, c.campaign_id, coalesce(l.variant, ''), c.clicked_at,"
            " c.kind = 'human', c.device, c.os FROM clicks c JOIN links l ON l.id = c.link_id"
            " WHERE c.campaign_id = ? AND c.clicked_at >= ? AND c.clicked_at < ?",
            (campaign_id, since, until),
        )
        tally = rollup.fold((rollup.ClickFacts(*row) for row in clicks), {})
        for (_, variant), n in tally.human.items():
            results.variant(variant).human_clicks += n
        for (_, variant), n in tally.bot.items():
            results.variant(variant).bot_clicks += n
        for (_, variant), n in tally.clickers.items():
            results.variant(variant).unique_clickers += n
        for (_, hour), (human, bot) in tally.hours.items():
            results.hours[hour] = [human, bot, 0]
        for (_, device, os), n in tally.devices.items():
            results.devices[(device, os)] = n
        clicked = sorted(i for i, state in tally.links.items() if state.first_human_at is not None)
        if whole:  # every click was folded: the first ones are known, so is each start
            delays = conn.execute(
                "SELECT l.id, coalesce(e.at, l.created_at) FROM links l"
                " LEFT JOIN message_events e ON e.link_id = l.id AND e.status = 'delivered'"
                " WHERE l.id IN (SELECT value FROM json_each(?))",
                (orjson.dumps(clicked),),
            ).fetchall()
            pairs = [(tally.links[i].first_human_at or 0, start) for i, start in delays]
        else:  # a clicker's first click may lie before the range: ask the rollup
            pairs = conn.execute(
                "SELECT first_human_at, started_at FROM link_clicks WHERE campaign_id = ?"
                " AND link_id IN (SELECT value FROM json_each(?))"
                " AND first_human_at >= ? AND first_human_at < ?",
                (campaign_id, orjson.dumps(clicked), since, until),
            ).fetchall()
        buckets = results.first_click_buckets
        for first, start in pairs:
            bucket = rollup.delay_bucket(first - start)
            buckets[bucket] = buckets.get(bucket, 0) + 1
        _conversions(conn, campaign_id, results, since, until)
        return results, _generation(conn)
    finally:
        conn.execute("COMMIT")


def _raw_cohort(conn: sqlite3.Connection, campaign_id: int, results: CampaignResults) -> None:
    """Links and receipts counted from their own rows (what the counters must equal)."""
    for variant, issued in conn.execute(
        "SELECT coalesce(variant, ''), count(*) FROM links WHERE campaign_id = ? GROUP BY 1",
        (campaign_id,),
    ):
        results.variant(variant).issued = issued
    for variant, status, n in conn.execute(
        "SELECT coalesce(l.variant, ''), e.status, count(*) FROM message_events e"
        " JOIN links l ON l.id = e.link_id WHERE e.campaign_id = ? GROUP BY 1, 2",
        (campaign_id,),
    ):
        setattr(results.variant(variant), status, n)
    for variant, n in conn.execute(
        "SELECT coalesce(l.variant, ''), count(DISTINCT e.link_id) FROM message_events e"
        " JOIN links l ON l.id = e.link_id WHERE e.campaign_id = ?"
        " AND e.status IN ('sent', 'delivered', 'failed') GROUP BY 1",
        (campaign_id,),
    ):
        results.variant(variant).receipted = n


def _cohort(
    conn: sqlite3.Connection, campaign_id: int, results: CampaignResults, *, with_clicks: bool
) -> None:
    columns = _COUNT_COLUMNS if with_clicks else _COUNT_COLUMNS[:6]
    for variant, *values in conn.execute(
        f"SELECT variant, {', '.join(columns)} FROM variant_counts WHERE campaign_id = ?",
        (campaign_id,),
    ):
        counts = results.variant(variant)
        for name, value in zip(columns, values, strict=True):
            setattr(counts, name, value)


def _conversions(
    conn: sqlite3.Connection,
    campaign_id: int,
    results: CampaignResults,
    since: int | None,
    until: int | None,
) -> None:
    """Attributed conversions: a few per thousand clicks, so read whole, not rolled up."""
    converters: dict[str, set[int]] = {}
    for variant, link_id, occurred_at, value, currency in conn.execute(
        "SELECT coalesce(variant, ''), link_id, occurred_at, value, currency FROM conversions"
        " WHERE campaign_id = ? AND occurred_at >= ? AND occurred_at < ?",
        (campaign_id, -(2**62) if since is None else since, 2**62 if until is None else until),
    ):
        counts = results.variant(variant)
        counts.conversions += 1
        converters.setdefault(variant, set()).add(link_id)
        if value is not None:
            counts.revenue[currency] = counts.revenue.get(currency, Decimal(0)) + Decimal(value)
        results.hours.setdefault(occurred_at // HOUR_MS, [0, 0, 0])[2] += 1
    for variant, links in converters.items():
        results.variant(variant).converters = len(links)


# The per-recipient export

# A recipient's status is the furthest it got: an opt-out outranks the rest, delivered or
# failed outrank sent (between those two, the later receipt), whatever order they arrived in.
_STATUS_RANK = {"sent": 0, "delivered": 1, "failed": 1, "opted_out": 2}


def recipients(
    conn: sqlite3.Connection, campaign_id: int, only: str | None, page: int = 5000
) -> Iterator[list[RecipientRow]]:
    """Every recipient of the campaign, in ref order, ``page`` links at a time; memory
    holds one page (and the campaign's conversions, a few per thousand links). With
    ``only``, a retargeting list, which leaves out whoever opted out."""
    conn.execute("BEGIN")
    try:
        converted: dict[int, tuple[int, dict[str, Decimal]]] = {}
        for link_id, value, currency in conn.execute(
            "SELECT link_id, value, currency FROM conversions WHERE campaign_id = ?",
            (campaign_id,),
        ):
            count, revenue = converted.get(link_id, (0, {}))
            if value is not None:
                revenue[currency] = revenue.get(currency, Decimal(0)) + Decimal(value)
            converted[link_id] = (count + 1, revenue)
        after = ""
        while True:
            links = conn.execute(
                "SELECT l.id, l.ref, l.code, l.variant, c.human, c.bot, c.first_human_at"
                " FROM links l LEFT JOIN link_clicks c"
                " ON c.campaign_id = l.campaign_id AND c.link_id = l.id"
                " WHERE l.campaign_id = ? AND l.ref > ? ORDER BY l.ref LIMIT ?",
                (campaign_id, after, page),
            ).fetchall()
            if not links:
                return
            after = links[-1][1]
            statuses: dict[int, tuple[int, int, str]] = {}
            delivered: set[int] = set()
            opted_out: set[int] = set()
            for link_id, status, at in conn.execute(
                "SELECT link_id, status, at FROM message_events"
                " WHERE link_id IN (SELECT value FROM json_each(?))",
                (orjson.dumps([row[0] for row in links]),),
            ):
                if status == "delivered":
                    delivered.add(link_id)
                elif status == "opted_out":
                    opted_out.add(link_id)
                key = (_STATUS_RANK[status], at, status)
                if link_id not in statuses or key > statuses[link_id]:
                    statuses[link_id] = key
            rows = []
            for link_id, ref, code, variant, human, bot, first in links:
                count, revenue = converted.get(link_id, (0, {}))
                status = statuses[link_id][2] if link_id in statuses else None
                row = RecipientRow(
                    ref, code, variant, status, first, human or 0, bot or 0, count, revenue
                )
                if only is not None and link_id in opted_out:
                    continue  # a retargeting list never holds someone who opted out
                if only == "delivered_not_clicked" and (
                    link_id not in delivered or row.human_clicks
                ):
                    continue
                if only == "clicked_not_converted" and not (row.human_clicks and not count):
                    continue
                rows.append(row)
            yield rows
    finally:
        conn.execute("COMMIT")
