"""``GET /api/v1/campaigns/{id}/stats`` against a campaign whose every number is known.

The campaign is built through the real paths (issue, receipts, redirects with real
User-Agents, conversions), plus one click written straight to the store ten days back (the
API cannot make the past). The expected numbers below are worked out by hand from what the
test does; comments say where each comes from.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from scipy.stats import chi2_contingency

from tests.conftest import MakeKey
from tracker import metrics, rollup
from tracker.models import ClickRow
from tracker.store.sqlite import SqliteStore

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)
WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
WHATSAPP = "WhatsApp/2.23.20.0 A"
DAY_MS = 86_400_000


class Campaign:
    def __init__(self, client: httpx.AsyncClient, auth: dict[str, str], body: dict) -> None:
        self.client, self.auth = client, auth
        self.body = body
        self.id = 0
        self.codes: dict[str, str] = {}

    async def create(self, refs: dict[str, str]) -> None:
        made = await self.client.post("/api/v1/campaigns", json=self.body, headers=self.auth)
        assert made.status_code == 201, made.text
        self.id = made.json()["id"]
        recipients = [{"ref": ref, "variant": variant} for ref, variant in refs.items()]
        issued = await self.post("links", {"recipients": recipients})
        self.codes = {link["ref"]: link["code"] for link in issued["links"]}

    async def post(self, what: str, body: object) -> dict:
        response = await self.client.post(
            f"/api/v1/campaigns/{self.id}/{what}", json=body, headers=self.auth
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def tap(self, ref: str, ua: str, method: str = "GET") -> str:
        response = await self.client.request(
            method, "/" + self.codes[ref], headers={"User-Agent": ua}
        )
        assert response.status_code == 302
        return dict(parse_qsl(urlsplit(response.headers["location"]).query))["tclid"]

    async def convert(self, body: dict) -> dict:
        response = await self.client.post("/api/v1/conversions", json=body, headers=self.auth)
        assert response.status_code == 202, response.text
        return dict(response.json())

    async def stats(self, query: str = "") -> dict:
        response = await self.client.get(
            f"/api/v1/campaigns/{self.id}/stats{query}", headers=self.auth
        )
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
async def known(client: httpx.AsyncClient, auth: dict[str, str], store: SqliteStore) -> Campaign:
    c = Campaign(
        client,
        auth,
        {
            "name": "Truth",
            "destination": "https://shop.example/",
            "cost_per_message": "0.05",
            "currency": "EUR",
            "variants": [{"key": "A"}, {"key": "B"}],
        },
    )
    await c.create({f"a{n}": "A" for n in range(1, 6)} | {f"b{n}": "B" for n in range(1, 6)})
    delivered_at = datetime.fromtimestamp(time.time() - 11 * 86400, UTC).isoformat()
    receipts = [{"ref": "a1", "status": "sent"}, {"ref": "a5", "status": "failed"}]
    receipts += [{"ref": r, "status": "delivered", "at": delivered_at}
                 for r in ("a1", "a2", "a3", "a4", "b1", "b2", "b3", "b5")]  # fmt: skip
    receipts += [{"ref": "b4", "status": "sent"}, {"ref": "b3", "status": "opted_out"}]
    summary = await c.post("events", receipts)
    assert summary["recorded"] == 12
    click = {}
    click["a1"] = await c.tap("a1", IPHONE)
    await c.tap("a1", IPHONE)
    await c.tap("a1", WHATSAPP)  # a preview
    click["a2"] = await c.tap("a2", ANDROID)
    click["a3"] = await c.tap("a3", WHATSAPP)  # a3 only ever previewed
    click["b1"] = await c.tap("b1", IPHONE)
    click["b2"] = await c.tap("b2", WINDOWS)
    await c.tap("b2", IPHONE, method="HEAD")  # a scanner
    link = await store.find_link(client.app.services.codes.decode(c.codes["b3"]))  # type: ignore[attr-defined]
    assert link is not None
    old = int(time.time() * 1000) - 10 * DAY_MS
    human = ("human", "default_human", "mobile", "iOS", "Mobile Safari", IPHONE, None, None)
    await store.record_clicks([ClickRow(link.id, c.id, old, "old-click-b3", "GET", *human)])
    by_ref = {"campaign_id": c.id}
    reports: list[dict[str, object]] = [
        {"click_id": click["a1"], "order_id": "O1", "value": "10.00"},
        {"click_id": click["a1"], "order_id": "O1", "value": "99"},  # a repeat
        {**by_ref, "ref": "a2", "event": "lead", "value": 5, "currency": "USD"},
        {"click_id": click["b1"], "order_id": "O2", "value": "20.00"},
        {"click_id": click["b2"], "order_id": "O3", "value": "30.00"},
        {**by_ref, "ref": "b3", "order_id": "O4", "value": "40"},  # 10 days after b3's click
        {"click_id": click["a3"], "order_id": "O5", "value": "50"},  # a3: only a preview
        {"click_id": click["b2"], "event": "lead", "currency": None},
    ]
    outcomes = []
    for report in reports:
        body = {"event": "purchase", "currency": "EUR", **report}
        outcomes.append(await c.convert({k: v for k, v in body.items() if v is not None}))
    assert [o["duplicate"] for o in outcomes] == [False, True] + [False] * 6
    assert [o.get("reason") for o in outcomes] == [
        None, None, None, None, None, "outside_window", "bot_click", None,
    ]  # fmt: skip
    return c


async def test_every_number_of_a_known_campaign(known: Campaign, store: SqliteStore) -> None:
    stats = await known.stats()
    a, b = stats["variants"]
    assert (a["key"], a["control"], b["key"], b["control"]) == ("A", True, "B", False)
    common = {"ctr_base": "delivered"}
    assert {k: v for k, v in a.items() if k not in ("key", "control", "vs_control")} == {
        **common,
        "issued": 5,
        "sent": 1,  # a1
        "delivered": 4,  # a1-a4
        "failed": 1,  # a5
        "opted_out": 0,
        "base": 4,
        "delivery_rate": 4 / 5,  # a1-a5 have a sent/delivered/failed receipt
        "human_clicks": 3,  # a1 twice, a2
        "bot_clicks": 2,  # WhatsApp on a1 and a3
        "unique_clickers": 2,  # a1, a2
        "ctr": 2 / 4,
        "conversions": 2,  # O1 (its repeat not counted), a2's lead by ref
        "converters": 2,
        "conversion_rate": 2 / 4,
        "click_conversion_rate": 2 / 2,
        "revenue": {"EUR": "10.00", "USD": "5"},
        "cost": {"amount": "0.20", "currency": "EUR"},  # 0.05 x 4 delivered
        "roi": None,  # revenue in USD too: no common currency for all of it
        "cost_per_conversion": {"amount": "0.1000", "currency": "EUR"},
        "opt_out_rate": 0 / 4,
    }
    assert {k: v for k, v in b.items() if k not in ("key", "control", "vs_control")} == {
        **common,
        "issued": 5,
        "sent": 1,  # b4
        "delivered": 4,  # b1, b2, b3, b5
        "failed": 0,
        "opted_out": 1,  # b3
        "base": 4,
        "delivery_rate": 4 / 5,  # b1-b5
        "human_clicks": 3,  # b1, b2, b3 ten days ago
        "bot_clicks": 1,  # the HEAD on b2
        "unique_clickers": 3,
        "ctr": 3 / 4,
        "conversions": 3,  # O2, O3, b2's lead; O4 was outside the window
        "converters": 2,  # b1, b2
        "conversion_rate": 2 / 4,
        "click_conversion_rate": 2 / 3,
        "revenue": {"EUR": "50.00"},
        "cost": {"amount": "0.20", "currency": "EUR"},
        "roi": 249.0,  # (50.00 - 0.20) / 0.20
        "cost_per_conversion": {"amount": "0.0667", "currency": "EUR"},  # 0.20 / 3
        "opt_out_rate": 1 / 4,
    }
    assert stats["totals"] == {
        **common,
        "issued": 10,
        "sent": 2,
        "delivered": 8,
        "failed": 1,
        "opted_out": 1,
        "base": 8,
        "delivery_rate": 8 / 10,
        "human_clicks": 6,
        "bot_clicks": 3,
        "unique_clickers": 5,
        "ctr": 5 / 8,
        "conversions": 5,
        "converters": 4,
        "conversion_rate": 4 / 8,
        "click_conversion_rate": 4 / 5,
        "revenue": {"EUR": "60.00", "USD": "5"},
        "cost": {"amount": "0.40", "currency": "EUR"},
        "roi": None,
        "cost_per_conversion": {"amount": "0.0800", "currency": "EUR"},
        "opt_out_rate": 1 / 8,
    }
    # B against A: CTR 3/4 vs 2/4, conversion rate 2/4 vs 2/4.
    ctr, conversion = b["vs_control"]["ctr"], b["vs_control"]["conversion_rate"]
    _, p_ctr, _, _ = chi2_contingency([[2, 2], [3, 1]], correction=False)
    assert ctr["control"] == 0.5 and ctr["variant"] == 0.75
    assert ctr["lift"] == 0.25 and ctr["relative_lift"] == 0.5
    assert ctr["p_value"] == pytest.approx(p_ctr, rel=1e-12)
    assert ctr["significant"] is False
    needed = metrics.sample_size(0.5, 0.75)  # the formula is checked in test_metrics
    assert needed is not None and ctr["recipients_needed"] == needed
    assert ctr["more_recipients_needed"] == (needed - 4) * 2
    assert conversion["lift"] == 0 and conversion["p_value"] == pytest.approx(1.0)
    assert conversion["recipients_needed"] is None  # no lift to detect
    assert a["vs_control"] is None
    # Human clicks: iPhone a1 x2, b1, b3 (old); Android a2; Windows b2.
    assert stats["devices"] == [
        {"device": "mobile", "human_clicks": 5, "share": 5 / 6},
        {"device": "desktop", "human_clicks": 1, "share": 1 / 6},
    ]
    assert stats["os"] == [
        {"os": "iOS", "human_clicks": 4, "share": 4 / 6},
        {"os": "Android", "human_clicks": 1, "share": 1 / 6},
        {"os": "Windows", "human_clicks": 1, "share": 1 / 6},
    ]
    # Time to first click: five clickers, each from its delivery (eleven days ago).
    firsts = await store._read_all(
        "SELECT min(c.clicked_at) - e.at FROM clicks c JOIN message_events e"
        " ON e.link_id = c.link_id AND e.status = 'delivered'"
        " WHERE c.kind = 'human' GROUP BY c.link_id ORDER BY 1"
    )
    delays = [row[0] for row in firsts]
    assert len(delays) == 5
    ttfc = stats["time_to_first_click"]
    assert ttfc["clickers"] == 5
    # Nearest rank (3rd of 5, and ceil(4.5) = 5th), reported at the histogram's resolution:
    # the smallest delay of its 0.1 % bucket (these are days, far above the exact seconds).
    assert ttfc["p50_seconds"] == rollup.bucket_seconds(rollup.delay_bucket(delays[2]))
    assert ttfc["p90_seconds"] == rollup.bucket_seconds(rollup.delay_bucket(delays[4]))
    assert delays[2] / 1000 * 0.999 <= ttfc["p50_seconds"] <= delays[2] / 1000
    # Days: the old click ten days ago, then nine empty days, then today.
    points = stats["series"]["points"]
    assert stats["series"]["bucket"] == "day"
    assert len(points) == 11
    assert (points[0]["human_clicks"], points[0]["bot_clicks"], points[0]["conversions"]) == (
        1,
        0,
        0,
    )
    assert all(p["human_clicks"] == p["bot_clicks"] == p["conversions"] == 0 for p in points[1:-1])
    assert (points[-1]["human_clicks"], points[-1]["bot_clicks"], points[-1]["conversions"]) == (
        5,
        3,
        5,
    )
    assert points[-1]["start"] == datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")


async def test_rollups_equal_a_recount(known: Campaign, store: SqliteStore) -> None:
    await store.fold_all_clicks()
    folded = await store.campaign_results(known.id)
    assert folded == await store.recount_results(known.id)


async def test_a_range_counts_the_clicks_and_conversions_inside_it(known: Campaign) -> None:
    today = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")
    stats = await known.stats(f"?from={today}&bucket=hour")
    totals = stats["totals"]
    assert (totals["issued"], totals["delivered"]) == (10, 8)  # the cohort is the whole
    assert (totals["human_clicks"], totals["unique_clickers"]) == (5, 4)  # not b3's old click
    assert totals["conversions"] == 5
    assert stats["from"] == today and stats["to"] is None
    # A conversion before the range (of b3's old click) counts in the whole, not in it.
    before = datetime.fromtimestamp(time.time() - 9 * 86400, UTC).isoformat()
    old = {"event": "lead", "campaign_id": known.id, "ref": "b3", "occurred_at": before}
    assert (await known.convert(old))["attributed"] is True
    assert (await known.stats(f"?from={today}"))["totals"]["conversions"] == 5
    assert (await known.stats())["totals"]["conversions"] == 6
    assert sum(p["human_clicks"] for p in stats["series"]["points"]) == 5
    assert stats["series"]["points"][0]["start"] == today


async def test_an_empty_campaign_has_null_rates(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    c = Campaign(client, auth, {"name": "Empty", "destination": "https://shop.example/"})
    await c.create({})
    stats = await c.stats()
    totals = stats["totals"]
    for name in ("delivery_rate", "ctr", "conversion_rate", "click_conversion_rate",
                 "roi", "opt_out_rate", "cost", "cost_per_conversion"):  # fmt: skip
        assert totals[name] is None, name
    assert totals["ctr_base"] == "issued"
    assert stats["variants"] == []
    assert stats["series"]["points"] == []
    assert stats["time_to_first_click"] == {
        "from": "delivery, else issue", "clickers": 0, "p50_seconds": None, "p90_seconds": None,
    }  # fmt: skip


async def test_without_receipts_the_base_is_issued(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    c = Campaign(
        client,
        auth,
        {"name": "One", "destination": "https://shop.example/", "variants": [{"key": "A"}]},
    )
    await c.create({"r1": "A", "r2": "A"})
    await c.tap("r1", IPHONE)
    stats = await c.stats()
    assert stats["totals"]["ctr_base"] == "issued"
    assert stats["totals"]["ctr"] == 1 / 2
    assert stats["totals"]["delivery_rate"] is None
    (only,) = stats["variants"]
    assert only["control"] is True and only["vs_control"] is None


async def test_bad_queries(known: Campaign, make_key: MakeKey) -> None:
    base = f"/api/v1/campaigns/{known.id}/stats"
    for query, field in (
        ("?bucket=week", "bucket"),
        ("?from=yesterday", "from"),
        ("?to=2026-01-01", "to"),  # no offset
        ("?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("?from=2000-01-01T00:00:00Z&bucket=hour", "bucket"),  # more than 10 000 hours
        ("?from=0001-01-01T00:00:00%2B14:00", "from"),  # before year 1 in UTC
        ("?to=9999-12-31T23:59:59-14:00", "to"),  # after 9999 in UTC
        ("?from=1969-12-31T00:00:00Z", "from"),
    ):
        response = await known.client.get(base + query, headers=known.auth)
        assert response.status_code == 422, query
        assert response.json()["error"]["field"] == field, query
    other = await make_key("other", "stats:read")
    assert (await known.client.get(base, headers=other)).status_code == 404
    writer = await make_key("acme", "links:write")
    assert (await known.client.get(base, headers=writer)).status_code == 403


async def test_the_campaigns_list_carries_headline_kpis(known: Campaign) -> None:
    listed = await known.client.get("/api/v1/campaigns", headers=known.auth)
    (entry,) = listed.json()["campaigns"]
    assert entry["kpis"] == {
        "issued": 10,
        "delivered": 8,
        "unique_clickers": 5,
        "ctr": 5 / 8,
        "conversions": 5,
        "conversion_rate": 4 / 8,
        "revenue": {"EUR": "60.00", "USD": "5"},
        "roi": None,
    }
