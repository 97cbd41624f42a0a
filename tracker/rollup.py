"""Folding clicks into running totals — the same arithmetic for the rollup tables, for the
clicks not folded yet, and for a recount from the raw rows (decision 0009).

``fold(clicks, known)`` takes clicks in any order and what is already known of their links,
and returns the increments: human and bot clicks and new unique clickers per (campaign,
variant), clicks per (campaign, hour), human clicks per (campaign, device, OS), and each
touched link's new state. Applying those increments to totals made from earlier clicks
gives the totals of all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

HOUR_MS = 3_600_000
NO_VARIANT = ""  # the variant key of links of a campaign without variants


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

    def with_click(self, click: ClickFacts) -> LinkState:
        if not click.human:
            return self._replace(bot=self.bot + 1)
        first = self.first_human_at
        if first is None or click.clicked_at_ms < first:
            first = click.clicked_at_ms
        return self._replace(human=self.human + 1, first_human_at=first)


@dataclass
class Tally:
    """Increments, keyed as the rollup tables are."""

    human: dict[tuple[int, str], int] = field(default_factory=dict)  # (campaign, variant)
    bot: dict[tuple[int, str], int] = field(default_factory=dict)
    clickers: dict[tuple[int, str], int] = field(default_factory=dict)  # new unique clickers
    hours: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # → [human, bot]
    devices: dict[tuple[int, str, str], int] = field(default_factory=dict)  # human clicks
    links: dict[int, LinkState] = field(default_factory=dict)  # touched links, new state

    def add(self, other: Tally) -> None:
        """Merge ``other`` (increments for later clicks) into this one."""
        for mine, theirs in (
            (self.human, other.human),
            (self.bot, other.bot),
            (self.clickers, other.clickers),
        ):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n
        for hour, (human, bot) in other.hours.items():
            row = self.hours.setdefault(hour, [0, 0])
            row[0] += human
            row[1] += bot
        for device, n in other.devices.items():
            self.devices[device] = self.devices.get(device, 0) + n
        self.links.update(other.links)


def fold(clicks: Iterable[ClickFacts], known: Mapping[int, LinkState]) -> Tally:
    """The increments ``clicks`` make; ``known`` holds the state of links clicked before
    (a link absent from it has had no click)."""
    tally = Tally()
    for click in clicks:
        key = (click.campaign_id, click.variant)
        hour = tally.hours.setdefault((click.campaign_id, click.clicked_at_ms // HOUR_MS), [0, 0])
        state = tally.links.get(click.link_id) or known.get(click.link_id)
        if state is None:
            state = LinkState(click.campaign_id, click.variant, 0, 0, None)
        if click.human:
            tally.human[key] = tally.human.get(key, 0) + 1
            hour[0] += 1
            device = (click.campaign_id, click.device, click.os)
            tally.devices[device] = tally.devices.get(device, 0) + 1
            if state.first_human_at is None:
                tally.clickers[key] = tally.clickers.get(key, 0) + 1
        else:
            tally.bot[key] = tally.bot.get(key, 0) + 1
            hour[1] += 1
        tally.links[click.link_id] = state.with_click(click)
    return tally
