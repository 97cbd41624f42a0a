"""Folding clicks: in one go or in pieces, the totals are the same."""

from __future__ import annotations

import random

import pytest

from tracker.rollup import (
    HOUR_MS,
    ClickFacts,
    LinkState,
    Tally,
    bucket_seconds,
    delay_bucket,
    fold,
)

T0 = 1_800_000_000_000


def click(link: int, at: int, human: bool = True, variant: str = "A") -> ClickFacts:
    return ClickFacts(link, 1, variant, at, human, "mobile", "iOS")


def test_unique_clickers_count_a_link_once() -> None:
    tally = fold([click(1, T0), click(1, T0 + 5), click(2, T0, human=False)], {})
    assert tally.human == {(1, "A"): 2}
    assert tally.bot == {(1, "A"): 1}
    assert tally.clickers == {(1, "A"): 1}
    assert tally.links[1] == LinkState(1, "A", 2, 0, T0)
    assert tally.links[2] == LinkState(1, "A", 0, 1, None)
    assert tally.hours == {(1, T0 // HOUR_MS): [2, 1]}
    assert tally.devices == {(1, "mobile", "iOS"): 2}


def test_a_link_already_clicked_is_not_a_new_clicker() -> None:
    known = {1: LinkState(1, "A", 1, 0, T0)}
    tally = fold([click(1, T0 - 10)], known)
    assert tally.clickers == {}
    assert tally.links[1].first_human_at == T0 - 10  # an earlier click, folded late


def test_a_bot_then_a_human_click_makes_a_clicker() -> None:
    known = {1: LinkState(1, "A", 0, 3, None)}
    assert fold([click(1, T0)], known).clickers == {(1, "A"): 1}


def merge(into: Tally, later: Tally) -> None:
    """Increments of later clicks added to earlier ones (what the rollup tables do)."""
    pairs: list[tuple[dict, dict]] = [  # type: ignore[type-arg]
        (into.human, later.human),
        (into.bot, later.bot),
        (into.clickers, later.clickers),
        (into.devices, later.devices),
    ]
    for mine, theirs in pairs:
        for key, n in theirs.items():
            mine[key] = mine.get(key, 0) + n
    for hour, (human, bot) in later.hours.items():
        row = into.hours.setdefault(hour, [0, 0])
        row[0] += human
        row[1] += bot
    into.links.update(later.links)


def test_folding_in_pieces_equals_folding_at_once() -> None:
    rng = random.Random(11)
    links = [rng.randint(1, 50) for _ in range(2000)]
    clicks = [  # a link's variant never changes
        click(link, T0 + rng.randint(0, 30 * HOUR_MS), rng.random() < 0.7, "AB"[link % 2])
        for link in links
    ]
    whole = fold(clicks, {})
    pieces, known = Tally(), {}
    for start in range(0, len(clicks), 137):
        part = fold(clicks[start : start + 137], known)
        known.update(part.links)
        merge(pieces, part)
    assert pieces == whole


@pytest.mark.parametrize(
    ("ms", "bucket", "seconds"),
    [
        (-5_000, 0, 0.0),  # a click before its delivery receipt's time
        (0, 0, 0.0),
        (999, 0, 0.0),
        (1_000, 1, 1.0),
        (999_999, 999, 999.0),
        (1_000_000, 1000, 1000.0),
        (1_001_000, 1001, 1001.0),
    ],
)
def test_delay_buckets(ms: int, bucket: int, seconds: float) -> None:
    assert delay_bucket(ms) == bucket
    assert bucket_seconds(bucket) == seconds


def test_delay_buckets_are_at_most_a_thousandth_wide() -> None:
    previous = delay_bucket(0)
    for seconds in range(1, 40 * 86_400, 97):
        bucket = delay_bucket(seconds * 1000)
        assert bucket >= previous  # monotone
        low = bucket_seconds(bucket)
        assert low <= seconds + 1e-6 and seconds < max(low * 1.001, low + 1) + 1e-6
        previous = bucket
    assert delay_bucket(30 * 86_400_000) < 9_000  # a month: a few thousand buckets
