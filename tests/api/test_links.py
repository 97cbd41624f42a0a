from __future__ import annotations

import sqlite3

import httpx
import orjson
import pytest

from tests.conftest import BASE_URL, MakeKey
from tracker.store.sqlite import SqliteStore
from tracker.web.api import links as links_api

NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture
async def campaign(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, object]:
    response = await client.post(
        "/api/v1/campaigns",
        json={
            "name": "Sale",
            "destination": "https://shop.example/",
            "variants": [{"key": "A", "weight": 1}, {"key": "B", "weight": 3}],
        },
        headers=auth,
    )
    assert response.status_code == 201
    return dict(response.json())


def links_url(campaign: dict[str, object]) -> str:
    return f"/api/v1/campaigns/{campaign['id']}/links"


def ndjson(*items: object) -> bytes:
    return b"".join(orjson.dumps(item) + b"\n" for item in items)


def lines(response: httpx.Response) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in response.content.splitlines()]


async def count_links(store: SqliteStore) -> int:
    row = await store._read_one("SELECT count(*) FROM links")
    return int(row[0])


async def test_bulk_json_in_request_order(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object]
) -> None:
    recipients = [
        {"ref": "c-3", "variant": "B", "params": {"coupon": "X1", "n": 7}},
        {"ref": "c-1"},
        {"ref": "c-2", "destination": "https://shop.example/special"},
    ]
    response = await client.post(links_url(campaign), json={"recipients": recipients}, headers=auth)
    assert response.status_code == 200, response.text
    issued = response.json()["links"]
    assert [link["ref"] for link in issued] == ["c-3", "c-1", "c-2"]
    assert issued[0]["variant"] == "B"
    for link in issued:
        assert link["short_url"] == f"{BASE_URL}/{link['code']}"
        assert link["variant"] in ("A", "B")
    assert len({link["code"] for link in issued}) == 3


async def test_bulk_is_idempotent_per_ref(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object], store: SqliteStore
) -> None:
    first = await client.post(
        links_url(campaign), json={"recipients": [{"ref": "a"}, {"ref": "b"}]}, headers=auth
    )
    again = await client.post(
        links_url(campaign),
        json={"recipients": [{"ref": "b", "variant": "A"}, {"ref": "c"}, {"ref": "a"}]},
        headers=auth,
    )
    by_ref = {link["ref"]: link for link in first.json()["links"]}
    second = {link["ref"]: link for link in again.json()["links"]}
    assert second["a"] == by_ref["a"]
    assert second["b"] == by_ref["b"]  # the stored variant wins over the one sent again
    assert second["c"]["code"] not in {by_ref["a"]["code"], by_ref["b"]["code"]}
    assert await count_links(store) == 3


async def test_same_ref_in_two_campaigns_gets_two_links(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object]
) -> None:
    other = await client.post(
        "/api/v1/campaigns",
        json={"name": "Other", "destination": "https://x.example/"},
        headers=auth,
    )
    one = await client.post(links_url(campaign), json={"recipients": [{"ref": "r"}]}, headers=auth)
    two = await client.post(
        links_url(other.json()), json={"recipients": [{"ref": "r"}]}, headers=auth
    )
    assert one.json()["links"][0]["code"] != two.json()["links"][0]["code"]
    assert two.json()["links"][0]["variant"] is None


async def test_variant_split_follows_weights_deterministically(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object]
) -> None:
    recipients = [{"ref": f"r{n}"} for n in range(4000)]
    response = await client.post(links_url(campaign), json={"recipients": recipients}, headers=auth)
    variants = [link["variant"] for link in response.json()["links"]]
    share_b = variants.count("B") / len(variants)
    assert 0.72 < share_b < 0.78  # weight 3 of 4; 4000 draws: sd ≈ 0.007
    from tracker.models import Variant
    from tracker.variants import assign_variant

    split = (Variant("A", 1), Variant("B", 3))
    expected = [assign_variant(split, int(str(campaign["id"])), f"r{n}") for n in range(4000)]
    assert variants == expected


@pytest.mark.parametrize(
    ("recipients", "status", "code", "field"),
    [
        ([{"ref": "ok"}, {"ref": "x" * 129}], 422, "invalid_field", "recipients[1].ref"),
        ([{"ref": "ok"}, {}], 422, "missing_field", "recipients[1].ref"),
        ([{"ref": ""}], 422, "invalid_field", "recipients[0].ref"),
        ([{"ref": 17}], 422, "invalid_field", "recipients[0].ref"),
        ([{"ref": "a"}, {"ref": "b"}, {"ref": "a"}], 422, "duplicate_ref", "recipients[2].ref"),
        ([{"ref": "a", "phone": "+4915"}], 422, "unknown_field", "recipients[0].phone"),
        ([{"ref": "a", "variant": "Z"}], 422, "invalid_field", "recipients[0].variant"),
        (
            [{"ref": "a", "destination": "ftp://x/"}],
            422,
            "invalid_url",
            "recipients[0].destination",
        ),
        ([{"ref": "a", "params": ["x"]}], 422, "invalid_field", "recipients[0].params"),
        ([{"ref": "a", "params": {"k": {"x": 1}}}], 422, "invalid_field", "recipients[0].params.k"),
        (
            [{"ref": "a", "params": {f"k{n}": "v" for n in range(21)}}],
            422,
            "invalid_field",
            "recipients[0].params",
        ),
        (["a"], 422, "invalid_field", "recipients[0]"),
        ("a", 422, "invalid_field", "recipients"),
        (None, 422, "missing_field", "recipients"),
    ],
)
async def test_bad_json_batch_writes_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    campaign: dict[str, object],
    store: SqliteStore,
    recipients: object,
    status: int,
    code: str,
    field: str,
) -> None:
    response = await client.post(links_url(campaign), json={"recipients": recipients}, headers=auth)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["field"] == field
    assert await count_links(store) == 0


async def test_json_limit_of_recipients(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object], store: SqliteStore
) -> None:
    recipients = [{"ref": f"r{n}"} for n in range(10_001)]
    response = await client.post(links_url(campaign), json={"recipients": recipients}, headers=auth)
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "too_many_recipients",
        "message": "at most 10000 recipients per JSON request; stream more as NDJSON",
        "field": "recipients",
    }
    assert await count_links(store) == 0
    exactly = await client.post(
        links_url(campaign), json={"recipients": recipients[:10_000]}, headers=auth
    )
    assert exactly.status_code == 200
    assert await count_links(store) == 10_000


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"recipients": [', "application/json", 400, "malformed_json"),
        (b"", "application/json", 400, "malformed_json"),
        (b'{"recipients": []}', "text/plain", 415, "unsupported_media_type"),
        (b'{"recipients": []}', "", 415, "unsupported_media_type"),
        (b'{"recipients": [], "extra": 1}', "application/json", 422, "unknown_field"),
        (b"\xff\xfe", "application/json", 400, "malformed_json"),
    ],
)
async def test_malformed_bodies(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    campaign: dict[str, object],
    content: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    headers = {**auth, "Content-Type": content_type}
    response = await client.post(links_url(campaign), content=content, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


async def test_oversized_body_is_413(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object], store: SqliteStore
) -> None:
    body = b'{"recipients": [' + b" " * (8 * 1024 * 1024) + b"]}"
    response = await client.post(
        links_url(campaign), content=body, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"

    async def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(9):
            yield b" " * (1024 * 1024)

    streamed = await client.post(
        links_url(campaign), content=chunks(), headers={**auth, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert await count_links(store) == 0


async def test_ndjson_streams_links_in_order(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    campaign: dict[str, object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(links_api, "NDJSON_CHUNK", 7)  # cross several chunks
    refs = [f"n{n}" for n in range(50)]
    body = ndjson(*({"ref": r} for r in refs)).replace(b'"n10"}\n', b'"n10"}\r\n\n  \n')
    response = await client.post(links_url(campaign), content=body, headers={**auth, **NDJSON})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    out = lines(response)
    assert [item["ref"] for item in out] == refs
    again = await client.post(links_url(campaign), content=body, headers={**auth, **NDJSON})
    assert lines(again) == out


async def test_ndjson_repeated_ref_gets_the_same_link(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object], store: SqliteStore
) -> None:
    body = ndjson({"ref": "a"}, {"ref": "b"}, {"ref": "a"})
    out = lines(await client.post(links_url(campaign), content=body, headers={**auth, **NDJSON}))
    assert out[0] == out[2]
    assert await count_links(store) == 2


@pytest.mark.parametrize(
    ("bad_line", "code", "field"),
    [
        (b'{"ref": "bad", "variant": "Z"}', "invalid_field", "variant"),
        (b'{"ref": ', "malformed_json", None),
        (b'["not", "an", "object"]', "invalid_field", "the body"),
        (b'{"ref": "' + b"x" * 129 + b'"}', "invalid_field", "ref"),
        (b'{"nope": 1}', "unknown_field", "nope"),
    ],
)
async def test_ndjson_bad_line_in_the_middle(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    campaign: dict[str, object],
    store: SqliteStore,
    monkeypatch: pytest.MonkeyPatch,
    bad_line: bytes,
    code: str,
    field: str | None,
) -> None:
    """Lines before the bad one are issued and answered; the bad one and all after are not."""
    monkeypatch.setattr(links_api, "NDJSON_CHUNK", 4)
    before = [{"ref": f"b{n}"} for n in range(10)]
    after = [{"ref": f"a{n}"} for n in range(5)]
    body = ndjson(*before) + bad_line + b"\n" + ndjson(*after)
    response = await client.post(links_url(campaign), content=body, headers={**auth, **NDJSON})
    assert response.status_code == 200
    out = lines(response)
    assert [item["ref"] for item in out[:-1]] == [f"b{n}" for n in range(10)]
    error = out[-1]["error"]
    assert isinstance(error, dict)
    assert error["code"] == code
    assert error["line"] == 11
    assert error.get("field") == field
    assert str(error["message"]).startswith("line 11: ")
    assert await count_links(store) == 10
    refs = await store._read_all("SELECT ref FROM links ORDER BY id")
    assert [row[0] for row in refs] == [f"b{n}" for n in range(10)]


async def test_ndjson_line_too_long(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object], store: SqliteStore
) -> None:
    body = ndjson({"ref": "ok"}) + b'{"ref": "' + b"x" * 70_000 + b'"}\n' + ndjson({"ref": "late"})
    response = await client.post(links_url(campaign), content=body, headers={**auth, **NDJSON})
    out = lines(response)
    assert out[0]["ref"] == "ok"
    assert out[1]["error"] == {
        "code": "line_too_long",
        "message": "line 2 is longer than 65536 bytes",
        "line": 2,
    }
    assert await count_links(store) == 1


async def test_ndjson_empty_stream(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object]
) -> None:
    response = await client.post(links_url(campaign), content=b"\n\n", headers={**auth, **NDJSON})
    assert response.status_code == 200
    assert response.content == b""


async def test_single_link_ad_hoc(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post(
        "/api/v1/links",
        json={"destination": "https://shop.example/x", "params": {"a": "1"}},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["campaign_id"] is None
    assert body["ref"] is None
    assert body["destination"] == "https://shop.example/x"
    assert body["params"] == {"a": "1"}
    assert body["short_url"] == f"{BASE_URL}/{body['code']}"
    second = await client.post(
        "/api/v1/links", json={"destination": "https://shop.example/x"}, headers=auth
    )
    assert second.json()["code"] != body["code"]


async def test_single_link_for_a_recipient_is_idempotent(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object]
) -> None:
    payload = {"campaign_id": campaign["id"], "ref": "solo", "variant": "A"}
    first = await client.post("/api/v1/links", json=payload, headers=auth)
    second = await client.post("/api/v1/links", json=payload, headers=auth)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert first.json()["variant"] == "A"
    bulk = await client.post(
        links_url(campaign), json={"recipients": [{"ref": "solo"}]}, headers=auth
    )
    assert bulk.json()["links"][0]["code"] == first.json()["code"]


async def test_campaign_level_link(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object]
) -> None:
    response = await client.post(
        "/api/v1/links", json={"campaign_id": campaign["id"]}, headers=auth
    )
    assert response.status_code == 201
    assert response.json()["campaign_id"] == campaign["id"]
    assert response.json()["ref"] is None


@pytest.mark.parametrize(
    ("payload", "status", "code", "field"),
    [
        ({}, 422, "missing_field", "destination"),
        ({"destination": "mailto:x@y.z"}, 422, "invalid_url", "destination"),
        ({"ref": "r", "destination": "https://x.example/"}, 422, "missing_field", "ref"),
        ({"campaign_id": "1"}, 422, "invalid_field", "campaign_id"),
        ({"campaign_id": 424242}, 404, "not_found", None),
        ({"campaign_id": 10**30}, 422, "invalid_field", "campaign_id"),
        ({"destination": "https://x.example/", "extra": True}, 422, "unknown_field", "extra"),
    ],
)
async def test_single_link_errors(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    store: SqliteStore,
    payload: dict[str, object],
    status: int,
    code: str,
    field: str | None,
) -> None:
    response = await client.post("/api/v1/links", json=payload, headers=auth)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"].get("field") == field
    assert await count_links(store) == 0


async def test_allowed_schemes_per_workspace(
    client: httpx.AsyncClient, auth: dict[str, str], make_key: MakeKey
) -> None:
    payload = {"destination": "myapp://product/42"}
    assert (await client.post("/api/v1/links", json=payload, headers=auth)).status_code == 422
    allowed = await client.patch(
        "/api/v1/workspace", json={"allowed_schemes": ["myapp", "https"]}, headers=auth
    )
    assert allowed.json()["allowed_schemes"] == ["myapp"]
    assert (await client.post("/api/v1/links", json=payload, headers=auth)).status_code == 201
    other = await make_key("rival", "admin")
    assert (await client.post("/api/v1/links", json=payload, headers=other)).status_code == 422
    refused = await client.patch(
        "/api/v1/workspace", json={"allowed_schemes": ["javascript"]}, headers=auth
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "allowed_schemes[0]"


async def test_ndjson_store_failure_ends_with_an_error_line(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    campaign: dict[str, object],
    store: SqliteStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(links_api, "NDJSON_CHUNK", 5)
    writer = store._w
    real = writer.executemany
    calls = 0

    async def failing_second_time(sql: str, *args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += sql.startswith("INSERT INTO links")
        if calls == 2:  # what the driver raises, not our StoreError: the store must wrap it
            raise sqlite3.OperationalError("disk I/O error")
        return await real(sql, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "executemany", failing_second_time)
    body = ndjson(*({"ref": f"r{n}"} for n in range(12)))
    response = await client.post(links_url(campaign), content=body, headers={**auth, **NDJSON})
    out = lines(response)
    assert [item["ref"] for item in out[:5]] == [f"r{n}" for n in range(5)]
    assert out[5]["error"]["code"] == "store_unavailable"  # type: ignore[index]
    assert len(out) == 6
    assert await count_links(store) == 5
