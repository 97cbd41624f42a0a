from __future__ import annotations

import httpx
import pytest

from tests.conftest import MakeKey
from tracker import keys
from tracker.store.sqlite import SqliteStore

CAMPAIGN = {"name": "c", "destination": "https://shop.example/"}


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        "Bearer trk_000000000000_wrongsecret",
        "Bearer trk_short_x",
    ],
)
async def test_missing_or_bad_key_is_401(client: httpx.AsyncClient, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = await client.post("/api/v1/campaigns", json=CAMPAIGN, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_right_key_id_wrong_secret_is_401(
    client: httpx.AsyncClient, store: SqliteStore, auth: dict[str, str]
) -> None:
    key = auth["Authorization"].removeprefix("Bearer ")
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    response = await client.get(
        "/api/v1/campaigns", headers={"Authorization": f"Bearer {tampered}"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("scopes", "method", "path", "allowed"),
    [
        (("stats:read",), "POST", "/api/v1/campaigns", False),
        (("links:write",), "POST", "/api/v1/campaigns", True),
        (("links:write",), "GET", "/api/v1/campaigns", False),
        (("stats:read",), "GET", "/api/v1/campaigns", True),
        (("conversions:write",), "POST", "/api/v1/links", False),
        (("links:write",), "POST", "/api/v1/links", True),
        (("links:write",), "PATCH", "/api/v1/workspace", False),
        (("admin",), "GET", "/api/v1/campaigns", True),
    ],
)
async def test_scopes(
    client: httpx.AsyncClient,
    make_key: MakeKey,
    scopes: tuple[str, ...],
    method: str,
    path: str,
    allowed: bool,
) -> None:
    headers = await make_key("acme", *scopes)
    body = {
        "/api/v1/campaigns": CAMPAIGN,
        "/api/v1/links": {"destination": "https://x.example/"},
        "/api/v1/workspace": {"allowed_schemes": []},
    }[path]
    response = await client.request(
        method, path, json=body if method != "GET" else None, headers=headers
    )
    if allowed:
        assert response.status_code in (200, 201), response.text
    else:
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"


async def test_keys_are_stored_hashed(store: SqliteStore, auth: dict[str, str]) -> None:
    key = auth["Authorization"].removeprefix("Bearer ")
    rows = await store._read_all("SELECT key_id, key_hash FROM api_keys")
    assert len(rows) == 1
    assert key not in str(rows)
    assert rows[0][1] == keys.hash_key(key)


def test_key_format() -> None:
    new = keys.generate()
    assert keys.key_id_of(new.key) == new.key_id
    assert keys.matches(new.key, new.key_hash)
    assert not keys.matches(new.key + "x", new.key_hash)
    assert keys.key_id_of("trk_abc") is None
    with pytest.raises(ValueError, match="unknown scope"):
        keys.check_scopes(["links:write", "root"])


async def test_unknown_api_path_is_json_404(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await client.get("/api/v1/nothing", headers=auth)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_wrong_method_is_json_405(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.delete("/api/v1/campaigns", headers=auth)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
