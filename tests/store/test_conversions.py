"""Conversions, receipts and webhook secrets in the SQLite store."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

import pytest

from tracker import attribution as a
from tracker.codes import CodeBook
from tracker.models import (
    CampaignSpec,
    ClickRow,
    ConversionInput,
    ConversionResult,
    LinkRequest,
    MessageEvent,
    Variant,
)
from tracker.store.sqlite import SqliteStore

H = 3_600_000
T0 = 1_800_000_000_000
SPEC = CampaignSpec(
    name="c",
    slug="c",
    destination="https://x.example/",
    attribution_window_hours=24,
    variants=(Variant("A"), Variant("B")),
)


class World(NamedTuple):
    workspace: int
    campaign: int
    links: dict[str, int]  # ref → link id
    codes: dict[str, str]  # ref → code


async def make_world(store: SqliteStore, name: str = "acme") -> World:
    workspace = await store.ensure_workspace(name)
    campaign = await store.add_campaign(workspace.id, SPEC)
    book = CodeBook(store.code_secret)
    refs = ["r1", "r2", "r3"]
    issued = await store.issue_links(
        workspace.id,
        campaign.id,
        [LinkRequest(ref, variant="B" if ref == "r2" else "A") for ref in refs],
        book.encode,
    )
    links = {}
    for link in issued:
        link_id = book.decode(link.code)
        assert link_id is not None and link.ref is not None
        links[link.ref] = link_id
    return World(workspace.id, campaign.id, links, {i.ref or "": i.code for i in issued})


async def add_click(
    store: SqliteStore, world: World, ref: str, click_id: str, at: int, kind: str = "human"
) -> None:
    row = ClickRow(
        world.links[ref], world.campaign, at, click_id, "GET", kind, "r", "phone", "iOS", "x",
        "ua", None, None,
    )  # fmt: skip
    await store.record_clicks([row])


def conv(event: str = "purchase", at: int = T0 + H, **kw: object) -> ConversionInput:
    return ConversionInput(event, at, "api", **kw)  # type: ignore[arg-type]


async def test_attributes_by_click_id_and_by_recipient(store: SqliteStore) -> None:
    world = await make_world(store)
    await add_click(store, world, "r2", "click-r2", T0)
    await add_click(store, world, "r1", "click-r1-early", T0 - 2 * H)
    await add_click(store, world, "r1", "click-r1-late", T0)
    await add_click(store, world, "r1", "click-r1-bot", T0 + 30 * 60_000, kind="preview")
    results = await store.record_conversions(
        world.workspace,
        [
            conv(click_id="click-r2", order_id="o1", value=Decimal("49.90"), currency="EUR"),
            conv(campaign_id=world.campaign, ref="r1", order_id="o2"),
            conv(campaign_id=world.campaign, ref="r3", order_id="o3"),
            conv(campaign_id=world.campaign, ref="nobody", order_id="o4"),
            conv(click_id="no-such-click", order_id="o5"),
            conv(order_id="o6"),
            conv(click_id="click-r2", at=T0 + 25 * H, order_id="o7"),
        ],
    )
    assert [(r.campaign_id, r.variant, r.reason) for r in results] == [
        (world.campaign, "B", None),
        (world.campaign, "A", None),
        (None, None, a.NO_CLICK),
        (None, None, a.UNKNOWN_REF),
        (None, None, a.UNKNOWN_CLICK),
        (None, None, a.NO_CLICK_ID),
        (None, None, a.OUTSIDE_WINDOW),
    ]
    assert not any(r.duplicate for r in results)
    rows = await store._read_all(
        "SELECT c.order_id, c.value, c.currency, k.click_id FROM conversions c"
        " LEFT JOIN clicks k ON k.id = c.click_row_id ORDER BY c.id"
    )
    assert rows[0] == ("o1", "49.90", "EUR", "click-r2")
    assert rows[1][3] == "click-r1-late"  # the last human click before the conversion
    assert [r[3] for r in rows[2:]] == [None] * 5


async def test_a_wrong_click_id_falls_back_to_the_recipient(store: SqliteStore) -> None:
    world = await make_world(store)
    await add_click(store, world, "r1", "click-r1", T0)
    (result,) = await store.record_conversions(
        world.workspace, [conv(click_id="mangled", campaign_id=world.campaign, ref="r1")]
    )
    assert result.reason is None and result.campaign_id == world.campaign


async def test_another_workspaces_click_and_campaign_are_unknown(store: SqliteStore) -> None:
    ours = await make_world(store, "ours")
    theirs = await make_world(store, "theirs")
    await add_click(store, theirs, "r1", "their-click", T0)
    results = await store.record_conversions(
        ours.workspace,
        [conv(click_id="their-click"), conv(campaign_id=theirs.campaign, ref="r1")],
    )
    assert [r.reason for r in results] == [a.UNKNOWN_CLICK, a.UNKNOWN_CAMPAIGN]
    assert await store.click_workspace("their-click") == theirs.workspace
    assert await store.click_workspace("nope") is None


async def test_duplicates_change_nothing(store: SqliteStore) -> None:
    world = await make_world(store)
    await add_click(store, world, "r1", "click-r1", T0)
    first = await store.record_conversions(
        world.workspace,
        [
            conv(click_id="click-r1", order_id="A17", value=Decimal(10), currency="EUR"),
            conv(click_id="click-r1"),  # no order id: one per (click id, event)
            conv(click_id="click-r1", order_id="A17", value=Decimal(99), currency="USD"),
        ],
    )
    assert [r.duplicate for r in first] == [False, False, True]
    assert first[2] == first[0]._replace(duplicate=True)
    again = await store.record_conversions(
        world.workspace,
        [
            conv(click_id="click-r1", order_id="A17"),
            conv(click_id="click-r1"),
            conv("lead", click_id="click-r1"),  # another event is another conversion
            conv(order_id="A17", campaign_id=world.campaign, ref="r2"),
        ],
    )
    assert again[0] == ConversionResult(first[0].id, True, world.campaign, "A", None)
    assert again[1] == first[1]._replace(duplicate=True)
    assert [r.duplicate for r in again[2:]] == [False, True]
    rows = await store._read_all("SELECT event, order_id, value FROM conversions ORDER BY id")
    assert rows == [("purchase", "A17", "10"), ("purchase", None, None), ("lead", None, None)]


async def test_conversions_without_any_key_are_all_kept(store: SqliteStore) -> None:
    world = await make_world(store)
    results = await store.record_conversions(world.workspace, [conv(), conv()])
    assert [r.duplicate for r in results] == [False, False]
    assert results[0].id != results[1].id


async def test_the_same_order_in_two_workspaces_is_two_conversions(store: SqliteStore) -> None:
    one, two = await make_world(store, "one"), await make_world(store, "two")
    (x,) = await store.record_conversions(one.workspace, [conv(order_id="A1")])
    (y,) = await store.record_conversions(two.workspace, [conv(order_id="A1")])
    assert not x.duplicate and not y.duplicate and x.id != y.id


async def test_receipts_are_idempotent_and_never_erased(store: SqliteStore) -> None:
    world = await make_world(store)
    other = await store.add_campaign(world.workspace, SPEC)
    first = await store.record_message_events(
        world.campaign,
        [
            MessageEvent("sent", T0, ref="r1"),
            MessageEvent("delivered", T0 + 1, ref="r1"),
            MessageEvent("delivered", T0 + 2, code=world.codes["r2"]),
            MessageEvent("delivered", T0 + 3, ref="ghost"),
            MessageEvent("delivered", T0 + 4, ref="r1"),  # repeated within the batch
        ],
    )
    assert (first.recorded, first.duplicates, first.unknown) == (3, 1, [3])
    second = await store.record_message_events(
        world.campaign,
        [
            MessageEvent("failed", T0 + 5, ref="r1", error="30007"),
            MessageEvent("delivered", T0 + 6, ref="r1"),
        ],
    )
    assert (second.recorded, second.duplicates, second.unknown) == (1, 1, [])
    # A code of another campaign names no link of this one.
    other_result = await store.record_message_events(
        other.id, [MessageEvent("sent", T0, code=world.codes["r1"])]
    )
    assert other_result.unknown == [0]
    rows = await store._read_all(
        "SELECT link_id, status, at, error FROM message_events ORDER BY link_id, status"
    )
    r1, r2 = world.links["r1"], world.links["r2"]
    assert rows == [
        (r1, "delivered", T0 + 1, None),
        (r1, "failed", T0 + 5, "30007"),
        (r1, "sent", T0, None),
        (r2, "delivered", T0 + 2, None),
    ]


async def test_webhook_secret_rotation_keeps_the_old_one_for_the_grace(
    store: SqliteStore,
) -> None:
    world = await make_world(store)
    assert await store.webhook_salts(world.workspace) == []
    await store.rotate_webhook_secret(world.workspace, b"first", grace_ms=0)
    assert await store.webhook_salts(world.workspace) == [b"first"]
    secrets = await store.rotate_webhook_secret(world.workspace, b"second", grace_ms=H)
    assert await store.webhook_salts(world.workspace) == [b"second", b"first"]
    assert secrets[0].expires_at is None and secrets[1].expires_at is not None
    # A rotation without grace ends every older secret now.
    await store.rotate_webhook_secret(world.workspace, b"third", grace_ms=0)
    assert await store.webhook_salts(world.workspace) == [b"third"]
    assert len(await store.list_webhook_secrets(world.workspace)) == 3
    other = await store.ensure_workspace("other")
    assert await store.webhook_salts(other.id) == []


@pytest.mark.parametrize("count", [1, 5001])
async def test_batches_of_any_size(store: SqliteStore, count: int) -> None:
    world = await make_world(store)
    results = await store.record_conversions(
        world.workspace, [conv(order_id=f"o{i}") for i in range(count)]
    )
    assert len({r.id for r in results}) == count
