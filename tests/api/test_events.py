"""``POST /api/v1/campaigns/{id}/events``: delivery receipts and opt-outs."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.api.test_conversions import make_campaign, ndjson
from tests.conftest import MakeKey
from tracker.store.sqlite import SqliteStore

NDJSON = {"Content-Type": "application/x-ndjson"}


async def setup(client: httpx.AsyncClient, auth: dict[str, str]) -> tuple[str, dict[str, str]]:
    campaign = await make_campaign(client, auth)
    response = await client.post(
        f"/api/v1/campaigns/{campaign}/links",
        json={"recipients": [{"ref": "r1"}, {"ref": "r2"}, {"ref": "r3"}]},
        headers=auth,
    )
    codes = {link["ref"]: link["code"] for link in response.json()["links"]}
    return f"/api/v1/campaigns/{campaign}/events", codes


async def stored(store: SqliteStore) -> list[tuple[object, ...]]:
    return await store._read_all(
        "SELECT l.ref, e.status, e.at, e.error FROM message_events e"
        " JOIN links l ON l.id = e.link_id ORDER BY l.ref, e.status"
    )


async def test_receipts_by_ref_and_code_idempotent_and_kept(
    client: httpx.AsyncClient, auth: dict[str, str], store: SqliteStore
) -> None:
    url, codes = await setup(client, auth)
    first = await client.post(
        url,
        json=[
            {"ref": "r1", "status": "sent", "at": "2026-11-01T10:00:00Z"},
            {"ref": "r1", "status": "delivered", "at": "2026-11-01T10:00:05+01:00"},
            {"code": codes["r2"], "status": "failed", "error": "30007"},
            {"ref": "ghost", "status": "delivered"},
            {"code": "AAAAAAAA", "status": "delivered"},
        ],
        headers=auth,
    )
    assert first.status_code == 200, first.text
    assert first.json() == {
        "received": 5,
        "recorded": 3,
        "duplicates": 0,
        "unknown_count": 2,
        "unknown": [{"ref": "ghost"}, {"code": "AAAAAAAA"}],
    }
    again = await client.post(
        url,
        json=[
            {"ref": "r1", "status": "delivered"},  # a repeat: the first time is kept
            {"ref": "r1", "status": "opted_out"},  # later, and does not erase "delivered"
        ],
        headers=auth,
    )
    assert again.json()["recorded"] == 1 and again.json()["duplicates"] == 1
    rows = await stored(store)
    assert [(ref, status) for ref, status, _, _ in rows] == [
        ("r1", "delivered"),
        ("r1", "opted_out"),
        ("r1", "sent"),
        ("r2", "failed"),
    ]
    assert rows[0][2] == 1_793_523_605_000  # 10:00:05+01:00 is 09:00:05 UTC
    assert rows[3][3] == "30007"


async def test_ndjson_receipts_and_a_bad_line(
    client: httpx.AsyncClient, auth: dict[str, str], store: SqliteStore
) -> None:
    url, _ = await setup(client, auth)
    good = await client.post(
        url,
        content=ndjson({"ref": "r1", "status": "sent"}, {"ref": "r2", "status": "sent"}),
        headers={**auth, **NDJSON},
    )
    assert good.status_code == 200
    assert good.json()["recorded"] == 2
    bad = await client.post(
        url,
        content=ndjson(
            {"ref": "r3", "status": "delivered"},
            {"ref": "r1", "status": "read"},
            {"ref": "r2", "status": "delivered"},
        ),
        headers={**auth, **NDJSON},
    )
    assert bad.status_code == 422
    body = bad.json()
    assert body["error"]["line"] == 2
    assert body["error"]["code"] == "unknown_status"
    assert body["recorded"] == 1  # the line before the bad one, and nothing after it
    assert ("r3", "delivered") in [(r[0], r[1]) for r in await stored(store)]
    assert ("r2", "delivered") not in [(r[0], r[1]) for r in await stored(store)]


@pytest.mark.parametrize(
    ("item", "field", "code"),
    [
        ({"ref": "r1", "status": "read"}, "[0].status", "unknown_status"),
        ({"ref": "r1"}, "[0].status", "missing_field"),
        ({"status": "sent"}, "[0].ref", "invalid_field"),
        ({"ref": "r1", "code": "abc", "status": "sent"}, "[0].ref", "invalid_field"),
        ({"ref": "r1", "status": "sent", "at": "soon"}, "[0].at", "invalid_field"),
        ({"ref": "r1", "status": "sent", "at": "2999-01-01T00:00:00Z"}, "[0].at", "invalid_field"),
        ({"ref": "r1", "status": "sent", "error": "e" * 129}, "[0].error", "invalid_field"),
        ({"ref": "x" * 129, "status": "sent"}, "[0].ref", "invalid_field"),
        ({"ref": "r1", "status": "sent", "extra": 1}, "[0].extra", "unknown_field"),
        ("r1", "[0]", "invalid_field"),
    ],
)
async def test_bad_events_are_422_and_store_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    store: SqliteStore,
    item: object,
    field: str,
    code: str,
) -> None:
    url, _ = await setup(client, auth)
    response = await client.post(url, json=[{"ref": "r2", "status": "sent"}, item], headers=auth)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["field"], error["code"]) == (field.replace("[0]", "[1]"), code)
    assert await stored(store) == []


async def test_requests_that_cannot_be_read(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: MakeKey
) -> None:
    url, _ = await setup(client, auth)
    event = [{"ref": "r1", "status": "sent"}]
    assert (await client.post(url, json=event)).status_code == 401
    assert (
        await client.post(url, json=event, headers=await make_key("acme", "stats:read"))
    ).status_code == 403
    other = await make_key("other", "events:write")
    assert (await client.post(url, json=event, headers=other)).status_code == 404
    assert (await client.post(url + "x", json=event, headers=auth)).status_code == 404
    assert (await client.post(url, json={"events": event}, headers=auth)).status_code == 422
    assert (
        await client.post(url, content=b"[", headers={**auth, "Content-Type": "application/json"})
    ).status_code == 400
    assert (
        await client.post(url, content=b"x", headers={**auth, "Content-Type": "text/csv"})
    ).status_code == 415
    too_many = [{"ref": "r1", "status": "sent"}] * 10_001
    assert (await client.post(url, json=too_many, headers=auth)).status_code == 413
    writer = await make_key("acme", "events:write")
    assert (await client.post(url, json=event, headers=writer)).status_code == 200


async def test_an_ndjson_line_too_long_stops_there(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    url, _ = await setup(client, auth)
    body = ndjson({"ref": "r1", "status": "sent"}) + b'{"ref": "' + b"x" * 70_000 + b'"}\n'
    response = await client.post(url, content=body, headers={**auth, **NDJSON})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "line_too_long"
    assert response.json()["recorded"] == 1
    assert orjson.loads(response.content)["received"] == 1
