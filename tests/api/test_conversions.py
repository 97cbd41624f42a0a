"""``POST /api/v1/conversions``: key or signature, one/array/NDJSON, dedupe, bad input."""

from __future__ import annotations

import time
from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson
import pytest

from tests.conftest import MakeKey
from tracker import signatures
from tracker.app import create_app
from tracker.config import Settings
from tracker.store.sqlite import SqliteStore

NDJSON = {"Content-Type": "application/x-ndjson"}
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
URL = "/api/v1/conversions"


async def make_campaign(client: httpx.AsyncClient, auth: dict[str, str]) -> int:
    response = await client.post(
        "/api/v1/campaigns",
        json={
            "name": "Sale",
            "destination": "https://shop.example/",
            "variants": [{"key": "A"}, {"key": "B", "weight": 0}],
        },
        headers=auth,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def click(
    client: httpx.AsyncClient, auth: dict[str, str], campaign_id: int, ref: str, ua: str = IPHONE
) -> str:
    """Issue the recipient's link, tap it, and return the click id the shop would get."""
    response = await client.post(
        f"/api/v1/campaigns/{campaign_id}/links", json={"recipients": [{"ref": ref}]}, headers=auth
    )
    code = response.json()["links"][0]["code"]
    redirect = await client.get(f"/{code}", headers={"User-Agent": ua})
    assert redirect.status_code == 302
    return dict(parse_qsl(urlsplit(redirect.headers["location"]).query))["tclid"]


async def stored(store: SqliteStore) -> list[tuple[object, ...]]:
    return await store._read_all(
        "SELECT event, order_id, value, currency, source, campaign_id, variant, reason"
        " FROM conversions ORDER BY id"
    )


def ndjson(*items: object) -> bytes:
    return b"".join(orjson.dumps(item) + b"\n" for item in items)


async def test_one_conversion_by_click_id(
    client: httpx.AsyncClient, auth: dict[str, str], store: SqliteStore
) -> None:
    campaign = await make_campaign(client, auth)
    click_id = await click(client, auth, campaign, "r1")
    body = {
        "click_id": click_id,
        "event": "purchase",
        "order_id": "A17",
        "value": "49.90",
        "currency": "EUR",
    }
    response = await client.post(URL, json=body, headers=auth)
    assert response.status_code == 202, response.text
    first = response.json()
    assert first == {
        "id": first["id"],
        "duplicate": False,
        "attributed": True,
        "campaign_id": campaign,
        "variant": "A",
    }
    again = await client.post(URL, json={**body, "value": 99}, headers=auth)
    assert again.json() == {**first, "duplicate": True}
    assert await stored(store) == [("purchase", "A17", "49.90", "EUR", "api", campaign, "A", None)]


async def test_by_recipient_and_unattributed_reasons(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: MakeKey
) -> None:
    campaign = await make_campaign(client, auth)
    await click(client, auth, campaign, "r1")
    await click(client, auth, campaign, "r2", ua="WhatsApp/2.23.20.0 A")  # a link preview
    other_auth = await make_key("other", "admin")
    other_campaign = await make_campaign(client, other_auth)
    their_click = await click(client, other_auth, other_campaign, "r1")
    items = [
        {"event": "lead", "campaign_id": campaign, "ref": "r1"},
        {"event": "lead", "campaign_id": campaign, "ref": "r2"},
        {"event": "lead", "campaign_id": campaign, "ref": "nobody"},
        {"event": "lead", "click_id": their_click},
        {"event": "lead", "click_id": "x" * 20},
        {"event": "lead", "campaign_id": other_campaign, "ref": "r1"},
        {"event": "lead", "campaign_id": 999999, "ref": "r1"},
        {"event": "lead"},
    ]
    response = await client.post(URL, json=items, headers=auth)
    assert response.status_code == 202, response.text
    results = response.json()
    assert [r["attributed"] for r in results] == [True] + [False] * 7
    assert [r.get("reason") for r in results] == [
        None,
        "bot_click",
        "unknown_ref",
        "unknown_click",
        "unknown_click",
        "unknown_campaign",
        "unknown_campaign",
        "no_click_id",
    ]
    # Another workspace's click and campaign answer exactly like ones that do not exist.
    for result in results[3:7]:
        assert set(result) == {"id", "duplicate", "attributed", "reason"}


async def test_ndjson_answers_line_for_line_and_stops_at_a_bad_line(
    client: httpx.AsyncClient, auth: dict[str, str], store: SqliteStore
) -> None:
    body = ndjson(
        {"event": "purchase", "order_id": "o1"},
        {"event": "purchase", "order_id": "o1"},
        {"event": "purchase", "order_id": "o2", "value": "abc", "currency": "EUR"},
        {"event": "purchase", "order_id": "o3"},
    )
    response = await client.post(URL, content=body, headers={**auth, **NDJSON})
    assert response.status_code == 202
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    assert [line.get("duplicate") for line in lines[:2]] == [False, True]
    assert lines[2]["error"]["line"] == 3
    assert lines[2]["error"]["field"] == "value"
    assert len(lines) == 3
    assert [row[1] for row in await stored(store)] == ["o1"]


async def test_a_json_array_is_all_or_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], store: SqliteStore
) -> None:
    items = [{"event": "purchase", "order_id": "o1"}, {"event": "purchase", "value": -1}]
    response = await client.post(URL, json=items, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "[1].value"
    assert await stored(store) == []


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"value": "abc"}, "value", "invalid_field"),
        ({"value": "-1"}, "value", "invalid_field"),
        ({"value": -0.01}, "value", "invalid_field"),
        ({"value": "1e12"}, "value", "invalid_field"),
        ({"value": "NaN"}, "value", "invalid_field"),
        ({"value": "1.23456"}, "value", "invalid_field"),
        ({"value": True}, "value", "invalid_field"),
        ({"currency": "EURO"}, "currency", "invalid_field"),
        ({"currency": "eur"}, "currency", "invalid_field"),
        ({"value": None, "currency": "EUR"}, "value", "missing_field"),
        ({"currency": None}, "currency", "missing_field"),
        ({"event": "purchased"}, "event", "unknown_event"),
        ({"event": None}, "event", "missing_field"),
        ({"order_id": "x" * 129}, "order_id", "invalid_field"),
        ({"order_id": 17}, "order_id", "invalid_field"),
        ({"click_id": "not a click id"}, "click_id", "invalid_field"),
        ({"ref": "r1"}, "campaign_id", "missing_field"),
        ({"campaign_id": "3", "ref": "r1"}, "campaign_id", "invalid_field"),
        ({"occurred_at": "yesterday"}, "occurred_at", "invalid_field"),
        ({"occurred_at": "2126-01-01T00:00:00Z"}, "occurred_at", "invalid_field"),
        ({"coupon": "X"}, "coupon", "unknown_field"),
    ],
)
async def test_bad_fields_are_422_and_store_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    store: SqliteStore,
    change: dict[str, object],
    field: str,
    code: str,
) -> None:
    body = {"event": "purchase", "order_id": "A1", "value": "10", "currency": "EUR", **change}
    body = {k: v for k, v in body.items() if v is not None}
    response = await client.post(URL, json=body, headers=auth)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert response.json()["error"]["code"] == code
    assert await stored(store) == []


async def test_money_is_stored_exact_and_plain(
    client: httpx.AsyncClient, auth: dict[str, str], store: SqliteStore
) -> None:
    for order, value in (("a", "5E+2"), ("b", "-0"), ("c", 0.1), ("d", "1000000000.0000")):
        response = await client.post(
            URL,
            json={"event": "purchase", "order_id": order, "value": value, "currency": "JPY"},
            headers=auth,
        )
        assert response.status_code == 202, response.text
    assert [row[2] for row in await stored(store)] == ["500", "0", "0.1", "1000000000.0000"]


async def test_requests_that_cannot_be_read(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: MakeKey, store: SqliteStore
) -> None:
    one = {"event": "purchase"}
    assert (await client.post(URL, json=one)).status_code == 401
    reader = await make_key("acme", "stats:read")
    forbidden = await client.post(URL, json=one, headers=reader)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "forbidden"
    wrong_type = await client.post(URL, content=b"event=purchase", headers=auth)
    assert wrong_type.status_code == 415
    malformed = await client.post(
        URL, content=b"{", headers={**auth, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    huge = b'{"event": "purchase", "order_id": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    too_large = await client.post(
        URL, content=huge, headers={**auth, "Content-Type": "application/json"}
    )
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "body_too_large"
    long_line = await client.post(URL, content=huge, headers={**auth, **NDJSON})
    assert long_line.status_code == 202
    assert orjson.loads(long_line.content)["error"]["code"] == "line_too_long"
    not_object = await client.post(URL, json=[1], headers=auth)
    assert not_object.status_code == 422
    assert await stored(store) == []


# Signed requests


async def new_secret(client: httpx.AsyncClient, auth: dict[str, str], **body: object) -> dict:
    response = await client.post("/api/v1/workspace/webhook-secrets", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return dict(response.json())


def signed(secret: str, workspace_id: int, body: bytes, at: float | None = None) -> dict:
    return {
        "Content-Type": "application/json",
        "Tracker-Signature": signatures.sign(secret, body, int(at or time.time())),
        "Tracker-Workspace": str(workspace_id),
    }


async def test_signed_requests_are_accepted_for_their_workspace(
    client: httpx.AsyncClient, auth: dict[str, str], store: SqliteStore
) -> None:
    campaign = await make_campaign(client, auth)
    click_id = await click(client, auth, campaign, "r1")
    made = await new_secret(client, auth)
    assert made["secret"].startswith("whsec_")
    body = orjson.dumps({"event": "purchase", "click_id": click_id, "order_id": "W1"})
    response = await client.post(
        URL, content=body, headers=signed(made["secret"], made["workspace_id"], body)
    )
    assert response.status_code == 202, response.text
    assert response.json()["attributed"] is True
    assert (await stored(store))[0][4] == "webhook"
    lines = ndjson({"event": "lead", "order_id": "W2"}, {"event": "lead", "order_id": "W3"})
    headers = {**signed(made["secret"], made["workspace_id"], lines), **NDJSON}
    streamed = await client.post(URL, content=lines, headers=headers)
    assert streamed.status_code == 202
    assert len(streamed.content.splitlines()) == 2


async def test_bad_signatures_are_401(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: MakeKey, store: SqliteStore
) -> None:
    made = await new_secret(client, auth)
    secret, workspace = made["secret"], made["workspace_id"]
    other = await new_secret(client, await make_key("other", "admin"))
    body = orjson.dumps({"event": "purchase", "order_id": "S1"})
    cases = {
        "wrong secret": signed("whsec_guess", workspace, body),
        "stale": signed(secret, workspace, body, at=time.time() - 301),
        "future": signed(secret, workspace, body, at=time.time() + 301),
        "other workspace's secret": signed(other["secret"], workspace, body),
        "unknown workspace": signed(secret, 987654, body),
        "no workspace": {
            k: v for k, v in signed(secret, workspace, body).items() if k != "Tracker-Workspace"
        },
        "malformed": {**signed(secret, workspace, body), "Tracker-Signature": "v1=abc"},
    }
    for name, headers in cases.items():
        response = await client.post(URL, content=body, headers=headers)
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] in ("bad_signature", "unauthorized"), name
    altered = body.replace(b"S1", b"S2")
    response = await client.post(URL, content=altered, headers=signed(secret, workspace, body))
    assert response.status_code == 401
    assert "does not match" in response.json()["error"]["message"]
    assert await stored(store) == []


async def test_rotation_keeps_the_old_secret_for_the_grace_period(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    old = await new_secret(client, auth)
    new = await new_secret(client, auth, grace_hours=1)
    assert new["secret"] != old["secret"]
    assert [s["expires_at"] is None for s in new["secrets"]] == [True, False]
    workspace = new["workspace_id"]
    for n, secret in enumerate((old["secret"], new["secret"])):
        body = orjson.dumps({"event": "purchase", "order_id": f"R{n}"})
        response = await client.post(URL, content=body, headers=signed(secret, workspace, body))
        assert response.status_code == 202, response.text
    newest = await new_secret(client, auth, grace_hours=0)  # ends both at once
    body = orjson.dumps({"event": "purchase", "order_id": "R9"})
    for secret, status in ((old["secret"], 401), (new["secret"], 401), (newest["secret"], 202)):
        response = await client.post(URL, content=body, headers=signed(secret, workspace, body))
        assert response.status_code == status
    listed = await client.get("/api/v1/workspace/webhook-secrets", headers=auth)
    assert len(listed.json()["secrets"]) == 3
    assert "secret" not in listed.json()["secrets"][0]


async def test_secrets_need_admin_and_a_sane_grace(
    client: httpx.AsyncClient, make_key: MakeKey, auth: dict[str, str]
) -> None:
    writer = await make_key("acme", "conversions:write")
    url = "/api/v1/workspace/webhook-secrets"
    assert (await client.post(url, headers=writer)).status_code == 403
    assert (await client.get(url, headers=writer)).status_code == 403
    for grace in (-1, 10_000, "24"):
        response = await client.post(url, json={"grace_hours": grace}, headers=auth)
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "grace_hours"
    assert (await client.post(url, headers=auth)).status_code == 201  # no body: defaults


async def test_backfill_of_100_000_conversions(
    client: httpx.AsyncClient, auth: dict[str, str], store: SqliteStore
) -> None:
    campaign = await make_campaign(client, auth)
    body = b"".join(
        b'{"event":"purchase","campaign_id":%d,"ref":"r%d","order_id":"o%d","value":"1.50",'
        b'"currency":"EUR","occurred_at":"2026-01-01T00:00:00Z"}\n' % (campaign, i, i)
        for i in range(100_000)
    )
    response = await client.post(URL, content=body, headers={**auth, **NDJSON}, timeout=120)
    assert response.status_code == 202
    lines = response.content.splitlines()
    assert len(lines) == 100_000
    assert orjson.loads(lines[-1])["reason"] == "unknown_ref"
    row = await store._read_one("SELECT count(*), count(DISTINCT order_id) FROM conversions")
    assert tuple(row) == (100_000, 100_000)


async def test_a_signature_is_checked_before_the_body_is_read(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: MakeKey
) -> None:
    made = await new_secret(client, auth)
    big = b'{"event": "purchase", "order_id": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    stale = signed(made["secret"], made["workspace_id"], big, at=time.time() - 3600)
    response = await client.post(URL, content=big, headers=stale)
    assert response.status_code == 401 and "300 s" in response.json()["error"]["message"]
    # A workspace without secrets: the same answer as a wrong signature, body unread.
    bare = await client.get("/api/v1/workspace", headers=await make_key("bare", "admin"))
    fresh = signed(made["secret"], bare.json()["id"], big)
    response = await client.post(URL, content=big, headers=fresh)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "the signature does not match the body"


@pytest.mark.parametrize(("ahead_s", "status"), [(240, 202), (360, 422)])
async def test_a_time_a_few_minutes_ahead_is_clock_skew_beyond_it_refused(
    client: httpx.AsyncClient, auth: dict[str, str], ahead_s: int, status: int
) -> None:
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + ahead_s))
    body = {"event": "lead", "order_id": f"skew{ahead_s}", "occurred_at": at}
    response = await client.post(URL, json=body, headers=auth)
    assert response.status_code == status, response.text


async def test_a_stale_signature_is_refused_before_a_body_too_big_is_read(
    settings: Settings, store: SqliteStore, auth: dict[str, str]
) -> None:
    """With the body over ``max_signed_bytes``, a check made after reading it would answer
    413: the header's 401 shows that nothing was read."""
    small = replace(settings, max_signed_bytes=1024 * 1024)
    app = create_app(small, store=store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        made = await new_secret(client, auth)
        big = b'{"event": "purchase", "order_id": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        stale = signed(made["secret"], made["workspace_id"], big, at=time.time() - 3600)
        response = await client.post(URL, content=big, headers=stale)
        assert response.status_code == 401 and "300 s" in response.json()["error"]["message"]
        fresh = signed(made["secret"], made["workspace_id"], big)
        assert (await client.post(URL, content=big, headers=fresh)).status_code == 413
    await app.services.writer.close()
