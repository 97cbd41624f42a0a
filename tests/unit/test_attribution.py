"""Attribution decisions (DESIGN.md §4), edge by edge, on the pure module."""

from __future__ import annotations

import pytest

from tracker import attribution as a
from tracker.attribution import ClickFact

S = 1000  # ms
H = 3600 * S
WEEK = 168 * H
T0 = 1_800_000_000_000  # a click time, ms


def click(row_id: int = 1, at: int = T0, kind: str = "human", window: int = WEEK) -> ClickFact:
    return ClickFact(row_id, 10, 3, "B", at, kind, window)


@pytest.mark.parametrize(
    ("occurred", "reason"),
    [
        (T0, None),  # at the click itself
        (T0 + 1, None),
        (T0 + WEEK - S, None),
        (T0 + WEEK, None),  # the window's last millisecond still counts
        (T0 + WEEK + 1, a.OUTSIDE_WINDOW),
        (T0 + WEEK + S, a.OUTSIDE_WINDOW),  # one second after the window
        (T0 - 1, a.BEFORE_CLICK),
        (T0 - S, a.BEFORE_CLICK),  # one second before the click
    ],
)
def test_by_click_window_edges(occurred: int, reason: str | None) -> None:
    outcome = a.by_click(click(), occurred)
    assert outcome.reason == reason
    assert outcome.attributed is (reason is None)
    assert outcome.click == (click() if reason is None else None)


def test_by_click_uses_the_campaigns_own_window() -> None:
    one_hour = click(window=H)
    assert a.by_click(one_hour, T0 + H).attributed
    assert a.by_click(one_hour, T0 + H + S).reason == a.OUTSIDE_WINDOW


def test_unknown_click_is_unattributed() -> None:
    assert a.by_click(None, T0) == a.Outcome(None, a.UNKNOWN_CLICK)


@pytest.mark.parametrize("kind", ["preview", "scanner", "crawler", "library"])
def test_conversions_from_bot_clicks_are_not_attributed(kind: str) -> None:
    assert a.by_click(click(kind=kind), T0 + S).reason == a.BOT_CLICK
    assert a.by_recipient([click(kind=kind)], T0 + S).reason == a.BOT_CLICK


def test_by_recipient_takes_the_last_human_click_before_the_conversion() -> None:
    first = click(1, T0)
    second = click(2, T0 + 2 * H)
    third = click(3, T0 + 5 * H)  # after the conversion: not a cause
    preview = click(4, T0 + 3 * H, kind="preview")  # a bot, later than `second`
    outcome = a.by_recipient([third, preview, first, second], T0 + 4 * H)
    assert outcome.click == second


def test_by_recipient_same_millisecond_clicks_pick_the_later_row() -> None:
    assert a.by_recipient([click(7, T0), click(8, T0)], T0).click == click(8, T0)


def test_by_recipient_window_runs_from_the_last_human_click() -> None:
    early, late = click(1, T0), click(2, T0 + 3 * 24 * H)
    # A week after the first click is outside its window but inside the second click's.
    assert a.by_recipient([early, late], T0 + WEEK + S).click == late
    assert a.by_recipient([early], T0 + WEEK + S).reason == a.OUTSIDE_WINDOW
    assert a.by_recipient([early, late], late.clicked_at_ms + WEEK).click == late
    assert a.by_recipient([early, late], late.clicked_at_ms + WEEK + S).reason == a.OUTSIDE_WINDOW


def test_by_recipient_reasons() -> None:
    assert a.by_recipient([], T0).reason == a.NO_CLICK
    assert a.by_recipient([click(at=T0 + S)], T0).reason == a.BEFORE_CLICK
    # A human click later than the conversion and a bot click before it: still no credit.
    mixed = [click(1, T0 - H, kind="preview"), click(2, T0 + S)]
    assert a.by_recipient(mixed, T0).reason == a.BEFORE_CLICK


def test_two_campaigns_reaching_one_ref_are_decided_apart() -> None:
    # The store hands over only the clicks of the (campaign, ref) the conversion names.
    spring = ClickFact(1, 10, 1, None, T0, "human", WEEK)
    summer = ClickFact(2, 20, 2, "A", T0 + H, "human", WEEK)
    assert a.by_recipient([spring], T0 + 2 * H).click == spring
    assert a.by_recipient([summer], T0 + 2 * H).click == summer


def test_unattributed_carries_its_reason() -> None:
    assert a.unattributed(a.NO_CLICK_ID) == a.Outcome(None, a.NO_CLICK_ID)
    assert not a.unattributed(a.NO_CLICK_ID).attributed


@pytest.mark.parametrize(
    ("order_id", "click_id", "campaign_id", "ref", "key"),
    [
        ("A17", "cid", 3, "r1", "o:A17"),  # the order id wins
        (None, "cid", 3, "r1", "c:cid"),
        (None, None, 3, "r1", "r:3:r1"),
        (None, None, 3, None, None),
        (None, None, None, "r1", None),
        (None, None, None, None, None),
    ],
)
def test_dedupe_key(
    order_id: str | None, click_id: str | None, campaign_id: int | None, ref: str | None, key: str
) -> None:
    assert a.dedupe_key(order_id, click_id, campaign_id, ref) == key


def test_every_reason_is_listed_once() -> None:
    assert len(set(a.REASONS)) == len(a.REASONS) == 8
