from __future__ import annotations

import httpx
import pytest

from tests.conftest import MakeKey

NEW = {"name": "Spring Sale 2026!", "destination": "https://shop.example/sale"}


async def create(
    client: httpx.AsyncClient, auth: dict[str, str], **fields: object
) -> httpx.Response:
    return await client.post("/api/v1/campaigns", json={**NEW, **fields}, headers=auth)


async def test_create_with_defaults(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await create(client, auth)
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Spring Sale 2026!"
    assert body["slug"] == "spring-sale-2026"
    assert body["utm"] == {
        "utm_source": "sms",
        "utm_medium": "sms",
        "utm_campaign": "spring-sale-2026",
    }
    assert body["click_id_param"] == "tclid"
    assert body["attribution_window_hours"] == 168
    assert body["variants"] == []
    assert body["disabled"] is False
    assert body["cost_per_message"] is None
    assert body["created_at"].endswith("Z")


async def test_create_with_everything(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await create(
        client,
        auth,
        slug="spring",
        utm={"utm_medium": None, "utm_term": "shoes"},
        click_id_param="cid",
        attribution_window_hours=48,
        cost_per_message=0.05,
        currency="EUR",
        expires_at="2026-12-31T23:00:00+01:00",
        fallback_url="https://shop.example/",
        variants=[
            {"key": "A"},
            {
                "key": "B",
                "weight": 3,
                "destination": "https://shop.example/b",
                "utm_content": "bee",
            },
        ],
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["utm"] == {"utm_source": "sms", "utm_campaign": "spring", "utm_term": "shoes"}
    assert body["click_id_param"] == "cid"
    assert body["cost_per_message"] == "0.05"
    assert body["currency"] == "EUR"
    assert body["expires_at"] == "2026-12-31T22:00:00Z"
    assert body["variants"] == [
        {"key": "A", "weight": 1, "destination": None, "utm_content": "A"},
        {"key": "B", "weight": 3, "destination": "https://shop.example/b", "utm_content": "bee"},
    ]
    fetched = await client.get(f"/api/v1/campaigns/{body['id']}", headers=auth)
    assert fetched.json() == body


async def test_click_id_param_can_be_disabled(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for off in (False, None):  # null removes the parameter, as it removes a UTM default
        response = await create(client, auth, click_id_param=off)
        assert response.json()["click_id_param"] is None


@pytest.mark.parametrize(
    ("fields", "status", "code", "field"),
    [
        ({"name": None}, 422, "missing_field", "name"),
        ({"name": ""}, 422, "invalid_field", "name"),
        ({"name": "x" * 201}, 422, "invalid_field", "name"),
        ({"destination": "ftp://x.example/"}, 422, "invalid_url", "destination"),
        ({"destination": "javascript:alert(1)"}, 422, "invalid_url", "destination"),
        ({"destination": "/relative"}, 422, "invalid_url", "destination"),
        ({"destination": "https://x.example/" + "a" * 2048}, 422, "invalid_url", "destination"),
        ({"destination": 5}, 422, "invalid_url", "destination"),
        ({"bogus": 1}, 422, "unknown_field", "bogus"),
        ({"utm": {"utm_bogus": "x"}}, 422, "unknown_field", "utm.utm_bogus"),
        ({"utm": "sms"}, 422, "invalid_field", "utm"),
        ({"slug": "Not A Slug"}, 422, "invalid_field", "slug"),
        ({"click_id_param": "has space"}, 422, "invalid_field", "click_id_param"),
        ({"attribution_window_hours": 0}, 422, "invalid_field", "attribution_window_hours"),
        ({"attribution_window_hours": "7"}, 422, "invalid_field", "attribution_window_hours"),
        ({"cost_per_message": "abc", "currency": "EUR"}, 422, "invalid_field", "cost_per_message"),
        ({"cost_per_message": -1, "currency": "EUR"}, 422, "invalid_field", "cost_per_message"),
        ({"cost_per_message": "0.05"}, 422, "missing_field", "currency"),
        ({"cost_per_message": "0.05", "currency": "EURO"}, 422, "invalid_field", "currency"),
        ({"expires_at": "tomorrow"}, 422, "invalid_field", "expires_at"),
        ({"expires_at": "2026-12-31T23:00:00"}, 422, "invalid_field", "expires_at"),
        ({"expires_at": "0001-01-01T00:00:00+14:00"}, 422, "invalid_field", "expires_at"),
        ({"expires_at": 1767225600}, 422, "invalid_field", "expires_at"),
        ({"cost_per_message": "NaN", "currency": "EUR"}, 422, "invalid_field", "cost_per_message"),
        (
            {"cost_per_message": "0.0000001", "currency": "EUR"},
            422,
            "invalid_field",
            "cost_per_message",
        ),
        ({"variants": {"key": "A"}}, 422, "invalid_field", "variants"),
        ({"variants": [{"key": "A"}, {"key": "A"}]}, 422, "duplicate_variant", "variants[1].key"),
        ({"variants": [{"key": "A", "weight": 0}]}, 422, "invalid_field", "variants"),
        ({"variants": [{"key": "A", "colour": "red"}]}, 422, "unknown_field", "variants[0].colour"),
        ({"variants": ["A"]}, 422, "invalid_field", "variants[0]"),
        ({"variants": [{"key": f"v{n}"} for n in range(27)]}, 422, "invalid_field", "variants"),
    ],
)
async def test_invalid_campaigns_are_refused(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    fields: dict[str, object],
    status: int,
    code: str,
    field: str,
) -> None:
    response = await create(client, auth, **fields)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["field"] == field
    listed = await client.get("/api/v1/campaigns", headers=auth)
    assert listed.json()["campaigns"] == []


async def test_body_must_be_a_json_object(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post("/api/v1/campaigns", json=[NEW], headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "the body"


async def test_list_is_paged_newest_first(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for n in range(5):
        await create(client, auth, name=f"c{n}")
    first = (await client.get("/api/v1/campaigns?limit=2", headers=auth)).json()
    assert [c["name"] for c in first["campaigns"]] == ["c4", "c3"]
    second = await client.get(
        f"/api/v1/campaigns?limit=2&cursor={first['next_cursor']}", headers=auth
    )
    third = await client.get(
        f"/api/v1/campaigns?limit=2&cursor={second.json()['next_cursor']}", headers=auth
    )
    assert [c["name"] for c in second.json()["campaigns"]] == ["c2", "c1"]
    assert [c["name"] for c in third.json()["campaigns"]] == ["c0"]
    assert third.json()["next_cursor"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=x", "cursor=-1", "cursor=1e3"])
async def test_bad_paging_parameters(
    client: httpx.AsyncClient, auth: dict[str, str], query: str
) -> None:
    response = await client.get(f"/api/v1/campaigns?{query}", headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_parameter"


async def test_patch(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    campaign = (await create(client, auth, expires_at="2027-01-01T00:00:00Z")).json()
    url = f"/api/v1/campaigns/{campaign['id']}"
    response = await client.patch(
        url,
        json={
            "name": "Renamed",
            "disabled": True,
            "fallback_url": "https://shop.example/over",
            "expires_at": None,
        },
        headers=auth,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["disabled"], body["fallback_url"], body["expires_at"]) == (
        "Renamed",
        True,
        "https://shop.example/over",
        None,
    )
    assert body["slug"] == campaign["slug"]
    again = await client.patch(url, json={"disabled": False, "fallback_url": None}, headers=auth)
    assert (again.json()["disabled"], again.json()["fallback_url"]) == (False, None)


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"destination": "https://x.example/"}, "unknown_field", "destination"),
        ({"disabled": "yes"}, "invalid_field", "disabled"),
        ({"disabled": None}, "invalid_field", "disabled"),
        ({"name": None}, "missing_field", "name"),
        ({"fallback_url": "nope"}, "invalid_url", "fallback_url"),
    ],
)
async def test_bad_patch_changes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], body: dict[str, object], code: str, field: str
) -> None:
    campaign = (await create(client, auth)).json()
    url = f"/api/v1/campaigns/{campaign['id']}"
    response = await client.patch(url, json={"name": "changed?", **body}, headers=auth)
    assert response.status_code == 422
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == (code, field)
    assert (await client.get(url, headers=auth)).json() == campaign


@pytest.mark.parametrize("campaign_id", ["999", "0", "abc", "99999999999999999999999", "1.5", "-1"])
async def test_unknown_campaign_is_404(
    client: httpx.AsyncClient, auth: dict[str, str], campaign_id: str
) -> None:
    await create(client, auth)
    for method in ("GET", "PATCH"):
        response = await client.request(
            method, f"/api/v1/campaigns/{campaign_id}", json={"name": "x"}, headers=auth
        )
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "campaign not found"}}


async def test_other_workspace_sees_404_never_403(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: MakeKey
) -> None:
    campaign = (await create(client, auth)).json()
    other = await make_key("rival", "admin")
    url = f"/api/v1/campaigns/{campaign['id']}"
    assert (await client.get(url, headers=other)).status_code == 404
    assert (await client.patch(url, json={"disabled": True}, headers=other)).status_code == 404
    links = await client.post(url + "/links", json={"recipients": [{"ref": "r"}]}, headers=other)
    assert links.status_code == 404
    assert (await client.get("/api/v1/campaigns", headers=other)).json()["campaigns"] == []
    assert (await client.get(url, headers=auth)).json()["disabled"] is False
