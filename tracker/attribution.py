"""Which click a conversion belongs to — the decision of DESIGN.md §4, with no I/O.

A conversion names its click by click id, or its recipient by (campaign, ref). It is
attributed to that click (by click id), or to the recipient's last human click at or before
the conversion (by ref), when that click is human and the conversion happened neither
before it nor more than the campaign's attribution window after it. Otherwise it is kept
unattributed with one of the reasons below. The store gathers the facts; this module only
decides, so every edge is tested here to the millisecond.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

# Why a conversion was not attributed.
NO_CLICK_ID = "no_click_id"  # neither a click id nor a campaign and ref was sent
UNKNOWN_CLICK = "unknown_click"  # no such click id in the workspace
UNKNOWN_CAMPAIGN = "unknown_campaign"  # no such campaign in the workspace
UNKNOWN_REF = "unknown_ref"  # the campaign has no link for that ref
NO_CLICK = "no_click"  # the recipient's link was never clicked
BOT_CLICK = "bot_click"  # only previews, scanners, crawlers or libraries clicked
BEFORE_CLICK = "before_click"  # the conversion happened before the (first human) click
OUTSIDE_WINDOW = "outside_window"  # more than the attribution window after the click

REASONS = (
    NO_CLICK_ID,
    UNKNOWN_CLICK,
    UNKNOWN_CAMPAIGN,
    UNKNOWN_REF,
    NO_CLICK,
    BOT_CLICK,
    BEFORE_CLICK,
    OUTSIDE_WINDOW,
)


class ClickFact(NamedTuple):
    """What attribution needs to know of a stored click."""

    row_id: int
    link_id: int
    campaign_id: int | None
    variant: str | None
    clicked_at_ms: int
    kind: str  # "human" or a bot class
    window_ms: int  # the campaign's attribution window


class Outcome(NamedTuple):
    click: ClickFact | None  # the click credited; None unless attributed
    reason: str | None  # None when attributed

    @property
    def attributed(self) -> bool:
        return self.click is not None


def by_click(click: ClickFact | None, occurred_ms: int) -> Outcome:
    """A conversion naming its click id; ``click`` is that click in the conversion's
    workspace (``None`` when there is none: unknown, or another workspace's)."""
    if click is None:
        return Outcome(None, UNKNOWN_CLICK)
    if click.kind != "human":
        return Outcome(None, BOT_CLICK)
    return _within_window(click, occurred_ms)


def by_recipient(clicks: Iterable[ClickFact], occurred_ms: int) -> Outcome:
    """A conversion naming a recipient (campaign, ref) whose link got ``clicks``: credited to
    the last human click at or before the conversion."""
    clicks = list(clicks)
    if not clicks:
        return Outcome(None, NO_CLICK)
    human = [c for c in clicks if c.kind == "human"]
    if not human:
        return Outcome(None, BOT_CLICK)
    earlier = [c for c in human if c.clicked_at_ms <= occurred_ms]
    if not earlier:
        return Outcome(None, BEFORE_CLICK)
    return _within_window(max(earlier, key=lambda c: (c.clicked_at_ms, c.row_id)), occurred_ms)


def unattributed(reason: str) -> Outcome:
    return Outcome(None, reason)


def _within_window(click: ClickFact, occurred_ms: int) -> Outcome:
    if occurred_ms < click.clicked_at_ms:
        return Outcome(None, BEFORE_CLICK)
    if occurred_ms - click.clicked_at_ms > click.window_ms:
        return Outcome(None, OUTSIDE_WINDOW)
    return Outcome(click, None)


def dedupe_key(
    order_id: str | None, click_id: str | None, campaign_id: int | None, ref: str | None
) -> str | None:
    """What makes two conversions of one event the same (DESIGN.md §4): the order id; without
    one, the click id; without either, the recipient. ``None``: nothing tells repeats apart."""
    if order_id is not None:
        return "o:" + order_id
    if click_id is not None:
        return "c:" + click_id
    if campaign_id is not None and ref is not None:
        return f"r:{campaign_id}:{ref}"
    return None
