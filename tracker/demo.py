"""``tracker demo``: a campaign six days into its life, so a newcomer's stats and
dashboard have something to show.

Everything goes through the paths real traffic takes: ``issue_links`` (variants as the
API assigns them), ``record_message_events``, the click writer's ``to_rows`` then
``record_clicks``, and ``record_conversions``. Random but seeded: every run makes the same
campaign, its times relative to the run.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from decimal import Decimal
from functools import partial
from typing import NamedTuple, cast

from tracker.addresses import IpStorage
from tracker.clicks import to_rows
from tracker.codes import CodeBook, new_click_id
from tracker.config import Settings
from tracker.models import (
    Campaign,
    CampaignResults,
    CampaignSpec,
    Click,
    ConversionInput,
    IssuedLink,
    LinkRequest,
    MessageEvent,
    Variant,
)
from tracker.store.base import Store
from tracker.variants import assign_variant

DEMO_NAME = "Demo spring sale"
DEMO_RECIPIENTS = 3_000
DEMO_SEED = 6  # the same campaign every run (its times are relative to the run)
_MINUTE_MS = 60_000
_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS
_SENT_AGO_MS = 6 * _DAY_MS + 2 * _HOUR_MS
_EVENT_CHUNK = 5_000

# Per variant: the chance that a delivered recipient clicks, that a clicker buys, and that a
# clicker who does not buy leaves a lead. B is somewhat better than A.
_DEMO_RATES = {"A": (0.13, 0.07, 0.03), "B": (0.18, 0.11, 0.03)}

_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
_IPHONE_16 = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1"
)
_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
_PIXEL = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36"
    " (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36"
)
_GALAXY = (
    "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36"
    " (KHTML, like Gecko) Chrome/123.0.6312.118 Mobile Safari/537.36"
)
_SAMSUNG_INTERNET = (
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36"
    " (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36"
)
_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"
    " (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)
# Link previews (tracker.agents classifies each as "preview").
_IMESSAGE_PREVIEW = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4"
    " (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot"
    " Twitterbot/1.0"
)
_GOOGLE_MESSAGES_PREVIEW = (
    "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Mobile Safari/537.36 (compatible; GoogleMessages)"
)
_WHATSAPP_PREVIEW = "WhatsApp/2.24.8.78 A"
# Recipients' browsers, weighted, and the preview their messaging app may fetch first.
_PHONES = (
    (30, _IPHONE, _IMESSAGE_PREVIEW),
    (14, _IPHONE_16, _IMESSAGE_PREVIEW),
    (3, _IPAD, _IMESSAGE_PREVIEW),
    (14, _PIXEL, _GOOGLE_MESSAGES_PREVIEW),
    (16, _GALAXY, _GOOGLE_MESSAGES_PREVIEW),
    (10, _SAMSUNG_INTERNET, _GOOGLE_MESSAGES_PREVIEW),
    (8, _WINDOWS, None),  # texts read on a PC (Phone Link)
    (5, _MAC, _IMESSAGE_PREVIEW),  # and on a Mac (Messages)
)
_FAILURES = ("unreachable", "unknown_number", "carrier_blocked")
# Addresses from the documentation ranges (RFC 5737, RFC 3849): no real network's.
_NETWORKS = ("192.0.2", "198.51.100", "203.0.113")


class Demo(NamedTuple):
    key: str
    campaign_id: int
    lines: list[str]
    results: CampaignResults


class _DemoTraffic(NamedTuple):
    events: list[MessageEvent]
    clicks: list[Click]
    conversions: list[ConversionInput]


async def fill(store: Store, settings: Settings, key: str) -> Demo:
    """Add the demo campaign to the "demo" workspace of the open ``store``; ``key`` is the
    workspace's key, for the summary."""
    workspace = await store.ensure_workspace("demo")
    campaign = await store.add_campaign(
        workspace.id,
        CampaignSpec(
            name=DEMO_NAME,
            slug="demo-spring-sale",
            destination="https://shop.example/spring",
            utm={"utm_source": "sms", "utm_medium": "sms", "utm_campaign": "demo-spring-sale"},
            cost_per_message=Decimal("0.05"),
            currency="EUR",
            variants=(
                Variant("A", 1, None, "A"),
                Variant("B", 1, "https://shop.example/spring?layout=b", "B"),
            ),
        ),
    )
    # As POST /api/v1/campaigns/{id}/links does it: variants by assign_variant.
    refs = [f"demo-{n:05d}" for n in range(1, DEMO_RECIPIENTS + 1)]
    requests = [
        LinkRequest(ref, assign_variant(campaign.variants, campaign.id, ref)) for ref in refs
    ]
    codes = CodeBook(store.code_secret)
    issued = await store.issue_links(workspace.id, campaign.id, requests, codes.encode)
    # As the redirect does it: the link id from the code.
    links = [(link, codes.decode(link.code) or 0) for link in issued]
    traffic = _demo_traffic(DEMO_SEED, campaign, links, int(time.time() * 1000))
    for start in range(0, len(traffic.events), _EVENT_CHUNK):
        await store.record_message_events(campaign.id, traffic.events[start : start + _EVENT_CHUNK])
    # As the click writer does it: to_rows with the configured proxies and IP storage.
    prepare = partial(
        to_rows,
        trusted=settings.proxy_networks,
        ip_storage=cast(IpStorage, settings.ip_storage),
    )
    for start in range(0, len(traffic.clicks), settings.click_batch_size):
        await store.record_clicks(
            prepare(traffic.clicks[start : start + settings.click_batch_size])
        )
    await store.record_conversions(workspace.id, traffic.conversions)
    results = await store.campaign_results(campaign.id)
    lines = [
        f"{link.ref} ({link.variant}): {settings.short_url_prefix}{link.code}"
        for link in issued[:5]
    ]
    return Demo(key, campaign.id, lines, results)


def _demo_traffic(
    seed: int,
    campaign: Campaign,
    links: Sequence[tuple[IssuedLink, int]],
    now_ms: int,
) -> _DemoTraffic:
    """Receipts, clicks and conversions of a campaign texted six days before ``now_ms``.

    Nearly every message is delivered (some fail, some never get a receipt past "sent", a
    few recipients opt out); previews are fetched seconds after delivery; people click
    mostly in the first hour, less later that day, a long tail over the days after; some
    click again; clickers buy (EUR or USD) or leave a lead, named by click id or by ref.

    Each variant draws from a random stream of its own, so the n-th recipient of A (or B)
    fares the same whichever recipients the campaign's id puts in A: every demo campaign
    tells much the same story, B ahead of A.
    """
    events: list[MessageEvent] = []
    clicks: list[Click] = []
    conversions: list[ConversionInput] = []
    latest = now_ms - _MINUTE_MS  # nothing in the last minute, nothing in the future
    window_ms = campaign.attribution_window_hours * _HOUR_MS
    weights = [phone[0] for phone in _PHONES]
    first_sent = now_ms - _SENT_AGO_MS
    orders = 0
    streams: dict[str, random.Random] = {}
    for index, (link, link_id) in enumerate(links):
        ref = link.ref
        assert ref is not None
        variant = link.variant or "A"
        rng = streams.get(variant)
        if rng is None:
            rng = streams[variant] = random.Random(f"{seed}:{variant}")
        click = partial(_demo_click, link_id, campaign.id)
        sent_at = first_sent + index * 150 + rng.randrange(150)  # about 7 a second
        events.append(MessageEvent("sent", sent_at, ref=ref))
        fate = rng.random()
        if fate < 0.04:
            failed_at = sent_at + rng.randrange(2_000, 90_000)
            events.append(MessageEvent("failed", failed_at, ref=ref, error=rng.choice(_FAILURES)))
            continue
        if fate < 0.10:
            # No receipt past "sent". Such a link's time to first click would run from its
            # issue, which here is now, after the back-dated clicks: so none click.
            continue
        delivered_at = sent_at + rng.randrange(1_500, 40_000)
        events.append(MessageEvent("delivered", delivered_at, ref=ref))
        _, browser, preview = rng.choices(_PHONES, weights)[0]
        peer = _demo_address(rng)
        if rng.random() < 0.03:  # a carrier's filter probes the link on its way
            clicks.append(
                click(sent_at + rng.randrange(300, 1_500), _WINDOWS, "192.0.2.10", "HEAD")
            )
        if preview is not None and rng.random() < 0.2:
            clicks.append(click(delivered_at + rng.randrange(500, 4_000), preview, peer))
        if rng.random() < 0.015:
            opted_at = delivered_at + int(rng.expovariate(1 / _HOUR_MS)) + _MINUTE_MS
            events.append(MessageEvent("opted_out", min(opted_at, latest), ref=ref))
            continue
        click_rate, buy_rate, lead_rate = _DEMO_RATES[variant]
        if rng.random() >= click_rate:
            continue
        delay = _first_click_delay(rng, latest - delivered_at)
        if delay is None:
            continue
        human = [click(delivered_at + delay, browser, peer)]
        for _ in range(rng.choices((0, 1, 2), (70, 20, 10))[0]):  # some come back
            again = human[-1].clicked_at_ms + int(rng.expovariate(1 / (10 * _HOUR_MS))) + 30_000
            if again <= latest:
                human.append(click(again, browser, peer))
        clicks += human
        if rng.random() < 0.04:  # shared on WhatsApp: its preview, from the friend's phone
            shared_at = human[0].clicked_at_ms + rng.randrange(_MINUTE_MS, 30 * _MINUTE_MS)
            if shared_at <= latest:
                clicks.append(click(shared_at, _WHATSAPP_PREVIEW, _demo_address(rng)))
        roll = rng.random()
        if roll >= buy_rate + lead_rate:
            continue
        credited = rng.choice(human)
        delay = int(rng.expovariate(1 / (20 * _MINUTE_MS))) + _MINUTE_MS
        if rng.random() < 0.25:
            delay = rng.randrange(_HOUR_MS, 3 * _DAY_MS)
        bound = min(latest, credited.clicked_at_ms + window_ms) - credited.clicked_at_ms
        occurred = credited.clicked_at_ms + (delay if delay <= bound else rng.randint(0, bound))
        # Most name the click id the landing page received; some only the recipient's ref,
        # as a shop that matched the customer itself reports them.
        by_ref = rng.random() < 0.15
        conversion = ConversionInput(
            event="lead",
            occurred_at_ms=occurred,
            source="api" if by_ref else "pixel",
            click_id=None if by_ref else credited.click_id,
            campaign_id=campaign.id if by_ref else None,
            ref=ref if by_ref else None,
        )
        if roll < buy_rate:
            orders += 1
            currency = "EUR" if rng.random() < 0.7 else "USD"
            value = rng.lognormvariate(math.log(45 if currency == "EUR" else 52), 0.55)
            conversion = conversion._replace(
                event="purchase",
                source="api" if by_ref else "webhook",
                order_id=f"demo-{campaign.id}-{orders:05d}",  # unique in the workspace
                value=Decimal(f"{value:.2f}"),
                currency=currency,
            )
        conversions.append(conversion)
    events.sort(key=lambda e: e.at_ms)
    clicks.sort(key=lambda c: c.clicked_at_ms)
    conversions.sort(key=lambda c: c.occurred_at_ms)
    return _DemoTraffic(events, clicks, conversions)


def _demo_click(
    link_id: int, campaign_id: int, at_ms: int, user_agent: str, peer: str, method: str = "GET"
) -> Click:
    """A hit as the redirect records it, but at ``at_ms``; the click id is made now (nothing
    reads the time inside it)."""
    return Click(link_id, campaign_id, at_ms, new_click_id(), method, user_agent, peer, None, None)


def _first_click_delay(rng: random.Random, limit_ms: int) -> int | None:
    """How long after delivery a recipient first clicks: within minutes for most, within
    hours for many, days later for some; ``None`` if it would fall after ``limit_ms``."""
    for _ in range(5):
        shape = rng.random()
        if shape < 0.55:
            delay = rng.expovariate(1 / (7 * _MINUTE_MS))
        elif shape < 0.85:
            delay = rng.expovariate(1 / (3 * _HOUR_MS))
        else:
            delay = rng.uniform(6 * _HOUR_MS, 6 * _DAY_MS)
        delay_ms = int(delay) + rng.randrange(3_000, 15_000)  # reading, then tapping
        if delay_ms <= limit_ms:
            return delay_ms
    return None


def _demo_address(rng: random.Random) -> str:
    if rng.random() < 0.75:
        return f"{rng.choice(_NETWORKS)}.{rng.randrange(1, 255)}"
    return f"2001:db8:{rng.randrange(1, 65_536):x}::{rng.randrange(1, 65_536):x}"
