"""``GET /p.gif`` always answers the GIF; ``GET /t.js`` serves the snippet."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.api.test_conversions import click, make_campaign, stored
from tracker.store.base import StoreError
from tracker.store.sqlite import SqliteStore
from tracker.web.pixel import GIF


def assert_pixel(response: httpx.Response) -> None:
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.headers["cache-control"] == "no-store"
    assert response.content == GIF
    assert len(GIF) == 43 and GIF.startswith(b"GIF89a")


def pixel_count(text: str, outcome: str) -> float:
    match = re.search(rf'^tracker_pixel_hits_total{{outcome="{outcome}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


async def metrics(client: httpx.AsyncClient) -> str:
    return (await client.get("/metrics")).text


async def test_a_pixel_conversion_is_stored_once(
    client: httpx.AsyncClient, auth: dict[str, str], store: SqliteStore
) -> None:
    campaign = await make_campaign(client, auth)
    click_id = await click(client, auth, campaign, "r1")
    query = {"tclid": click_id, "value": "49.90", "currency": "EUR", "order_id": "A17"}
    assert_pixel(await client.get("/p.gif", params=query))
    assert_pixel(await client.get("/p.gif", params=query))  # the thank-you page reloaded
    assert_pixel(await client.get("/p.gif", params={**query, "order_id": "A18", "src": "snippet"}))
    assert await stored(store) == [
        ("purchase", "A17", "49.90", "EUR", "pixel", campaign, "A", None),
        ("purchase", "A18", "49.90", "EUR", "snippet", campaign, "A", None),
    ]
    text = await metrics(client)
    assert pixel_count(text, "recorded") == 2
    assert pixel_count(text, "duplicate") == 1


@pytest.mark.parametrize(
    ("query", "outcome"),
    [
        ("tclid={click}&value=abc&currency=EUR", "invalid"),
        ("tclid={click}&value=-5&currency=EUR", "invalid"),
        ("tclid={click}&value=5&currency=EURO", "invalid"),
        ("tclid={click}&event=bogus", "invalid"),
        ("tclid={click}&order_id=" + "x" * 129, "invalid"),
        ("tclid=%FF%FE&value=1", "invalid"),
        ("tclid={click}&value=5", "invalid"),  # a value without a currency
        ("", "unknown_click"),
        ("value=5&currency=EUR", "unknown_click"),
        ("tclid=AAAAAAAAAAAAAAAAAAAA", "unknown_click"),
    ],
)
async def test_bad_pixels_are_counted_never_shown(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    store: SqliteStore,
    query: str,
    outcome: str,
) -> None:
    campaign = await make_campaign(client, auth)
    click_id = await click(client, auth, campaign, "r1")
    before = pixel_count(await metrics(client), outcome)
    assert_pixel(await client.get("/p.gif?" + query.format(click=click_id)))
    assert pixel_count(await metrics(client), outcome) == before + 1
    assert await stored(store) == []


async def test_the_pixel_survives_a_failing_store(
    client: httpx.AsyncClient, auth: dict[str, str], store: SqliteStore
) -> None:
    campaign = await make_campaign(client, auth)
    click_id = await click(client, auth, campaign, "r1")

    async def broken(*args: object) -> None:
        raise StoreError("disk I/O error")

    store.record_conversions = broken  # type: ignore[method-assign, assignment]
    assert_pixel(await client.get("/p.gif", params={"tclid": click_id}))
    assert pixel_count(await metrics(client), "error") == 1


async def test_head_and_odd_requests_still_get_the_gif(
    client: httpx.AsyncClient, auth: dict[str, str], store: SqliteStore
) -> None:
    campaign = await make_campaign(client, auth)
    click_id = await click(client, auth, campaign, "r1")
    head = await client.head("/p.gif", params={"tclid": click_id})
    assert head.status_code == 200
    assert head.headers["content-type"] == "image/gif"
    assert_pixel(await client.get("/p.gif?tclid=" + click_id + "&tclid=other&&=&x"))
    assert [row[4] for row in await stored(store)] == ["pixel"]  # the HEAD stored nothing


async def test_the_snippet_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/t.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "tracker" in response.text and "/p.gif?" in response.text
    assert len(response.content) < 4096  # small enough to put on every page
