"""Folding clicks into running totals — the same arithmetic for the rollup tables, for the
clicks not folded yet, and for a recount from the raw rows (decision 0009).

``fold(clicks, known)`` takes clicks in any order and what is already known of their links,
and returns the increments: human and bot clicks and new unique clickers per (campaign,
variant), clicks per (campaign, hour), human clicks per (campaign, device, OS), and each
touched link's new state. Applying those increments to totals made from earlier clicks
gives the totals of all of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

HOUR_MS = 3_600_000
NO_VARIANT = ""  # the variant key of links of a campaign without variants

# Time to first click is kept as a histogram: whole seconds up to EXACT_SECONDS, then buckets
# STEP (0.1 %) wide. A campaign has a few thousand buckets at most, whatever its size.
EXACT_SECONDS = 1000
_LOG_STEP = math.log(1.001)


def delay_bucket(delay_ms: int) -> int:
    """The histogram bucket of a delay (a click before its delivery receipt counts as 0)."""
    seconds = max(0, delay_ms) // 1000
    if seconds < EXACT_SECONDS:
        return seconds
    return EXACT_SECONDS + int(math.log(seconds / EXACT_SECONDS) / _LOG_STEP)


def bucket_seconds(bucket: int) -> float:
    """The smallest delay, in seconds, of a bucket (exact below ``EXACT_SECONDS``)."""
    if bucket < EXACT_SECONDS:
        return float(bucket)
    return round(EXACT_SECONDS * math.exp((bucket - EXACT_SECONDS) * _LOG_STEP), 3)


class ClickFacts(NamedTuple):
    link_id: int
    campaign_id: int
    variant: str  # NO_VARIANT when the link has none
    clicked_at_ms: int
    human: bool
    device: str
    os: str


class LinkState(NamedTuple):
    campaign_id: int
    variant: str
    human: int
    bot: int
    first_human_at: int | None  # ms; None until the link's first human click


@dataclass
class Tally:
    """Increments, keyed as the rollup tables are."""

    human: dict[tuple[int, str], int] = field(default_factory=dict)  # (campaign, variant)
    bot: dict[tuple[int, str], int] = field(default_factory=dict)
    clickers: dict[tuple[int, str], int] = field(default_factory=dict)  # new unique clickers
    hours: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # → [human, bot]
    devices: dict[tuple[int, str, str], int] = field(default_factory=dict)  # human clicks
    links: dict[int, LinkState] = field(default_factory=dict)  # touched links, new state


def fold(clicks: Iterable[ClickFacts], known: Mapping[int, LinkState]) -> Tally:
    """The increments ``clicks`` make; ``known`` holds the state of links clicked before
    (a link absent from it has had no click)."""
    tally = Tally()
    human, bot, clickers = tally.human, tally.bot, tally.clickers
    hours, devices = tally.hours, tally.devices
    links: dict[int, list[int | None]] = {}  # link → [human, bot, first human click]
    variants: dict[int, tuple[int, str]] = {}
    for click in clicks:
        key = (click.campaign_id, click.variant)
        state = links.get(click.link_id)
        if state is None:
            before = known.get(click.link_id)
            state = (
                [0, 0, None]
                if before is None
                else [before.human, before.bot, before.first_human_at]
            )
            links[click.link_id] = state
            variants[click.link_id] = key
        hour = hours.get((click.campaign_id, click.clicked_at_ms // HOUR_MS))
        if hour is None:
            hour = hours[(click.campaign_id, click.clicked_at_ms // HOUR_MS)] = [0, 0]
        if click.human:
            human[key] = human.get(key, 0) + 1
            hour[0] += 1
            device = (click.campaign_id, click.device, click.os)
            devices[device] = devices.get(device, 0) + 1
            first = state[2]
            if first is None:
                clickers[key] = clickers.get(key, 0) + 1
                state[2] = click.clicked_at_ms
            elif click.clicked_at_ms < first:
                state[2] = click.clicked_at_ms
            state[0] += 1  # type: ignore[operator]
        else:
            bot[key] = bot.get(key, 0) + 1
            hour[1] += 1
            state[1] += 1  # type: ignore[operator]
    for link_id, (h, b, first) in links.items():
        campaign_id, variant = variants[link_id]
        tally.links[link_id] = LinkState(campaign_id, variant, h or 0, b or 0, first)
    return tally
