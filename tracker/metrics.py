"""The KPI formulas of DESIGN.md §4 and the A/B significance test — pure arithmetic.

Every rate whose denominator is 0 is ``None`` (JSON null), never an error or NaN. Money is
``Decimal`` throughout and leaves as a plain decimal string; rates leave as floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from statistics import NormalDist
from typing import Any

from tracker.models import Counts

CONFIDENCE = 0.95
POWER = 0.80
_Z_ALPHA = NormalDist().inv_cdf(1 - (1 - CONFIDENCE) / 2)  # two-sided: 1.959963…
_Z_BETA = NormalDist().inv_cdf(POWER)  # 0.841621…
MONEY_PLACES = Decimal("0.0001")  # derived money (cost per conversion) is rounded to this


def rate(numerator: int | Decimal, denominator: int | Decimal) -> float | None:
    return None if denominator == 0 else float(Decimal(numerator) / Decimal(denominator))


def money(amount: Decimal | None) -> str | None:
    return None if amount is None else format(amount, "f")


def kpis(
    counts: Counts,
    *,
    base_is_delivered: bool,
    cost_per_message: Decimal | None,
    currency: str | None,
) -> dict[str, Any]:
    """The KPIs of one campaign or variant. ``base_is_delivered``: the campaign has any
    delivery receipt, so rates are per delivered message rather than per issued link."""
    c = counts
    base = c.delivered if base_is_delivered else c.issued
    cost = None if cost_per_message is None else cost_per_message * base
    roi = None
    if cost is not None and cost != 0 and set(c.revenue) <= {currency}:
        roi = rate(c.revenue.get(currency or "", Decimal(0)) - cost, cost)
    per_conversion = None
    if cost is not None and c.conversions:
        per_conversion = (cost / c.conversions).quantize(MONEY_PLACES, ROUND_HALF_EVEN)
    return {
        "issued": c.issued,
        "sent": c.sent,
        "delivered": c.delivered,
        "failed": c.failed,
        "opted_out": c.opted_out,
        "ctr_base": "delivered" if base_is_delivered else "issued",
        "base": base,
        "delivery_rate": rate(c.delivered, c.receipted) if c.receipted else None,
        "human_clicks": c.human_clicks,
        "bot_clicks": c.bot_clicks,
        "unique_clickers": c.unique_clickers,
        "ctr": rate(c.unique_clickers, base),
        "conversions": c.conversions,
        "converters": c.converters,
        "conversion_rate": rate(c.converters, base),
        "click_conversion_rate": rate(c.converters, c.unique_clickers),
        "revenue": {cur: money(amount) for cur, amount in sorted(c.revenue.items())},
        "cost": None if cost is None else {"amount": money(cost), "currency": currency},
        "roi": roi,
        "cost_per_conversion": (
            None
            if per_conversion is None
            else {"amount": money(per_conversion), "currency": currency}
        ),
        "opt_out_rate": rate(c.opted_out, base),
    }


@dataclass(frozen=True)
class Comparison:
    """A variant's rate against the control's: a two-sided two-proportion z-test."""

    control: float | None
    variant: float | None
    lift: float | None  # variant - control
    relative_lift: float | None  # lift / control
    p_value: float | None
    significant: bool
    recipients_needed: int | None  # per group, to detect this lift at 80 % power
    more_recipients_needed: int | None  # beyond those both groups have; None if significant

    def document(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compare(control_x: int, control_n: int, x: int, n: int) -> Comparison:
    """``x`` successes of ``n`` (the variant) against ``control_x`` of ``control_n``."""
    p1 = control_x / control_n if control_n else None
    p2 = x / n if n else None
    if p1 is None or p2 is None:
        return Comparison(p1, p2, None, None, None, False, None, None)
    lift = p2 - p1
    pooled = (control_x + x) / (control_n + n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / control_n + 1 / n))
    p_value = math.erfc(abs(lift / se) / math.sqrt(2)) if se > 0 else None
    significant = p_value is not None and p_value < 1 - CONFIDENCE
    needed = sample_size(p1, p2)
    more = None
    if not significant and needed is not None:
        more = max(0, needed - control_n) + max(0, needed - n)
    return Comparison(p1, p2, lift, lift / p1 if p1 else None, p_value, significant, needed, more)


def sample_size(p1: float, p2: float) -> int | None:
    """Recipients per group for a two-sided test at 95 % to detect ``p1`` vs ``p2`` with
    80 % power (the pooled-variance normal approximation); ``None`` when they are equal."""
    if p1 == p2:
        return None
    mean = (p1 + p2) / 2
    a = _Z_ALPHA * math.sqrt(2 * mean * (1 - mean))
    b = _Z_BETA * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil((a + b) ** 2 / (p1 - p2) ** 2)


def histogram_percentile(counts: Mapping[int, int], p: float) -> int | None:
    """Nearest-rank percentile (``p`` in 0..100) of values given as {value: how many}."""
    total = sum(counts.values())
    if not total:
        return None
    rank, seen = max(1, math.ceil(p / 100 * total)), 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return value
    raise AssertionError("unreachable: the ranks add up to the total")


def verdicts(
    control: Counts, variant: Counts, *, base_is_delivered: bool
) -> Mapping[str, dict[str, Any]]:
    """CTR and conversion rate of ``variant`` against ``control``, per DESIGN.md §4."""

    def base(c: Counts) -> int:
        return c.delivered if base_is_delivered else c.issued

    return {
        "ctr": compare(
            control.unique_clickers, base(control), variant.unique_clickers, base(variant)
        ).document(),
        "conversion_rate": compare(
            control.converters, base(control), variant.converters, base(variant)
        ).document(),
    }
