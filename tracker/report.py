"""A campaign's results as one document — what ``GET …/stats`` answers and the dashboard
draws. Pure: it shapes ``CampaignResults`` with the formulas of ``tracker.metrics``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tracker import metrics
from tracker.models import Campaign, CampaignResults, Counts
from tracker.rollup import HOUR_MS, bucket_seconds

DAY_MS = 24 * HOUR_MS
BUCKETS = {"hour": HOUR_MS, "day": DAY_MS}
MAX_POINTS = 10_000


class TooManyPoints(ValueError):
    pass


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def totals(results: CampaignResults) -> Counts:
    total = Counts()
    for counts in results.counts.values():
        total.add(counts)
    return total


def headline(campaign: Campaign, results: CampaignResults) -> dict[str, Any]:
    """The few numbers a campaigns list compares."""
    kpis = _kpis(campaign, results, totals(results))
    names = ("issued", "delivered", "unique_clickers", "ctr", "conversions", "conversion_rate")
    return {
        **{name: kpis[name] for name in names},
        "revenue": kpis["revenue"],
        "roi": kpis["roi"],
    }


def document(
    campaign: Campaign,
    results: CampaignResults,
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    bucket: str = "day",
) -> dict[str, Any]:
    delivered_base = _base_is_delivered(results)
    variants = []
    control: Counts | None = None
    for variant in campaign.variants:
        counts = results.counts.get(variant.key, Counts())
        entry: dict[str, Any] = {"key": variant.key, **_kpis(campaign, results, counts)}
        if control is None:
            control = counts
            entry["control"] = True
            entry["vs_control"] = None
        else:
            entry["control"] = False
            entry["vs_control"] = metrics.verdicts(
                control, counts, base_is_delivered=delivered_base
            )
        variants.append(entry)
    human = sum(results.devices.values())
    buckets = results.first_click_buckets
    return {
        "campaign_id": campaign.id,
        "from": iso(since_ms),
        "to": iso(until_ms),
        "totals": _kpis(campaign, results, totals(results)),
        "variants": variants,
        "devices": _split(results, 0, human),
        "os": _split(results, 1, human),
        "time_to_first_click": {
            "from": "delivery, else issue",
            "clickers": sum(buckets.values()),
            "p50_seconds": _seconds(metrics.histogram_percentile(buckets, 50)),
            "p90_seconds": _seconds(metrics.histogram_percentile(buckets, 90)),
        },
        "series": {"bucket": bucket, "points": series(results, bucket, since_ms, until_ms)},
    }


def series(
    results: CampaignResults, bucket: str, since_ms: int | None, until_ms: int | None
) -> list[dict[str, Any]]:
    """Human clicks, bot clicks and conversions per UTC hour or day, zeros included, from
    the first bucket with an event (or ``since``) to the last (or the one before ``until``)."""
    size = BUCKETS[bucket]
    sums: dict[int, list[int]] = {}
    for hour, values in results.hours.items():
        row = sums.setdefault(hour * HOUR_MS // size, [0, 0, 0])
        for i, n in enumerate(values):
            row[i] += n
    if not sums and since_ms is None:
        return []
    first = since_ms // size if since_ms is not None else min(sums)
    last = (until_ms - 1) // size if until_ms is not None else max(sums, default=first)
    if last - first + 1 > MAX_POINTS:
        raise TooManyPoints(f"{last - first + 1} {bucket}s; at most {MAX_POINTS}")
    return [
        {
            "start": iso(n * size),
            "human_clicks": sums.get(n, [0, 0, 0])[0],
            "bot_clicks": sums.get(n, [0, 0, 0])[1],
            "conversions": sums.get(n, [0, 0, 0])[2],
        }
        for n in range(first, last + 1)
    ]


def _base_is_delivered(results: CampaignResults) -> bool:
    return any(counts.delivered for counts in results.counts.values())


def _kpis(campaign: Campaign, results: CampaignResults, counts: Counts) -> dict[str, Any]:
    return metrics.kpis(
        counts,
        base_is_delivered=_base_is_delivered(results),
        cost_per_message=campaign.cost_per_message,
        currency=campaign.currency,
    )


def _split(results: CampaignResults, part: int, human: int) -> list[dict[str, Any]]:
    """Human clicks by device class (``part`` 0) or OS (1), largest first."""
    sums: dict[str, int] = {}
    for key, n in results.devices.items():
        sums[key[part]] = sums.get(key[part], 0) + n
    name = "device" if part == 0 else "os"
    return [
        {name: key, "human_clicks": n, "share": metrics.rate(n, human)}
        for key, n in sorted(sums.items(), key=lambda item: (-item[1], item[0]))
    ]


def _seconds(bucket: int | None) -> float | None:
    return None if bucket is None else bucket_seconds(bucket)
