"""``GET /api/v1/campaigns/{id}/recipients.csv``: one row per recipient, and the
retargeting lists."""

from __future__ import annotations

import csv
import io

import httpx

from tests.api.test_stats import IPHONE, Campaign, known  # noqa: F401  (the fixture)
from tests.conftest import MakeKey


async def fetch(c: Campaign, query: str = "") -> tuple[httpx.Response, list[dict[str, str]]]:
    response = await c.client.get(f"/api/v1/campaigns/{c.id}/recipients.csv{query}", headers=c.auth)
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text, newline="")))
    return response, rows


async def test_one_row_per_recipient(known: Campaign) -> None:  # noqa: F811
    response, rows = await fetch(known)
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="truth-recipients.csv"' in response.headers["content-disposition"]
    assert response.text.startswith(
        "ref,code,variant,status,first_click_at,human_clicks,bot_clicks,conversions,revenue\r\n"
    )
    assert [r["ref"] for r in rows] == [f"a{n}" for n in range(1, 6)] + [
        f"b{n}" for n in range(1, 6)
    ]
    by_ref = {r["ref"]: r for r in rows}
    a1 = by_ref["a1"]
    assert (a1["code"], a1["variant"]) == (known.codes["a1"], "A")
    assert a1["status"] == "delivered"  # its "sent" arrived later, but delivered is further
    assert (a1["human_clicks"], a1["bot_clicks"], a1["conversions"]) == ("2", "1", "1")
    assert a1["revenue"] == "10.00 EUR"
    assert a1["first_click_at"].endswith("Z")
    assert by_ref["a2"]["revenue"] == "5 USD"
    assert by_ref["a3"] | {"code": ""} == {
        "ref": "a3", "code": "", "variant": "A", "status": "delivered", "first_click_at": "",
        "human_clicks": "0", "bot_clicks": "1", "conversions": "0", "revenue": "",
    }  # fmt: skip
    assert by_ref["a5"]["status"] == "failed"
    assert by_ref["b3"]["status"] == "opted_out"
    assert by_ref["b2"]["conversions"] == "2" and by_ref["b2"]["revenue"] == "30.00 EUR"
    assert by_ref["b3"]["conversions"] == "0"  # its conversion came too late to count


async def test_retargeting_lists(known: Campaign) -> None:  # noqa: F811
    _, silent = await fetch(known, "?only=delivered_not_clicked")
    assert [r["ref"] for r in silent] == ["a3", "a4", "b5"]  # a3 was only previewed
    response, unconverted = await fetch(known, "?only=clicked_not_converted")
    assert [r["ref"] for r in unconverted] == []  # b3 is the only one, and b3 opted out
    assert "clicked_not_converted" in response.headers["content-disposition"]
    await known.post("events", [{"ref": "a4", "status": "opted_out"}])
    _, silent_now = await fetch(known, "?only=delivered_not_clicked")
    assert [r["ref"] for r in silent_now] == ["a3", "b5"]  # a4 opted out: never again


async def test_fields_are_quoted_as_rfc_4180_says(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    c = Campaign(client, auth, {"name": "Quotes", "destination": "https://shop.example/"})
    odd = ["comma, inside", 'a "quote"', "line\nbreak", "plain"]
    await c.create({ref: None for ref in odd})  # type: ignore[misc]
    response, rows = await fetch(c)
    assert sorted(r["ref"] for r in rows) == sorted(odd)
    assert '"a ""quote"""' in response.text
    assert '"comma, inside"' in response.text


async def test_bad_requests(known: Campaign, make_key: MakeKey) -> None:  # noqa: F811
    url = f"/api/v1/campaigns/{known.id}/recipients.csv"
    bad = await known.client.get(url + "?only=everyone", headers=known.auth)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "only"
    assert (await known.client.get(url)).status_code == 401
    other = await make_key("other", "stats:read")
    assert (await known.client.get(url, headers=other)).status_code == 404
