"""The hot path: answers, clicks written, failures survived — through both doors (the
ASGI app, and uvicorn with ``RedirectProtocol`` as ``tracker serve`` runs it)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from tests.conftest import BASE_URL
from tests.web.doors import DOORS, http_client
from tests.web.stored import clicks
from tracker.app import create_app
from tracker.config import Settings
from tracker.store.base import StoreError
from tracker.store.sqlite import SqliteStore
from tracker.web.redirect import Front

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
WHATSAPP = "WhatsApp/2.23.20.0 A"


async def issue(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    campaign: dict[str, object],
    **recipient: object,
) -> str:
    response = await client.post(
        f"/api/v1/campaigns/{campaign['id']}/links",
        json={"recipients": [{"ref": "r1", **recipient}]},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["links"][0]["code"])


@pytest.fixture(params=DOORS)
def door(request: pytest.FixtureRequest) -> str:
    """conftest's ``client`` (and the tests below) through each door."""
    return str(request.param)


@pytest.fixture
async def campaign(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, object]:
    response = await client.post(
        "/api/v1/campaigns",
        json={
            "name": "Sale",
            "destination": "https://shop.example/sale?src=sms#top",
            "variants": [
                {"key": "A", "weight": 0},
                {"key": "B", "destination": "https://shop.example/b"},
            ],
        },
        headers=auth,
    )
    return dict(response.json())


def count_link_reads(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, the id of every link the store is asked for, in order."""
    reads: list[int] = []
    real = store.find_link_target

    async def counting(link_id: int):  # type: ignore[no-untyped-def]
        reads.append(link_id)
        return await real(link_id)

    monkeypatch.setattr(store, "find_link_target", counting)
    return reads


async def test_redirect_writes_the_click(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object], store: SqliteStore
) -> None:
    code = await issue(client, auth, campaign, params={"coupon": "X 1"})
    response = await client.get(
        f"/{code}?gclid=g1", headers={"User-Agent": IPHONE, "Referer": "https://sms.example/"}
    )
    assert response.status_code == 302
    assert response.headers["cache-control"] == "no-store"
    location = response.headers["location"]
    assert location.startswith("https://shop.example/b?")
    query = dict(parse_qsl(urlsplit(location).query))
    assert query["utm_content"] == "B"
    assert query["utm_campaign"] == "sale"
    assert query["coupon"] == "X 1"
    assert query["gclid"] == "g1"
    # durable mode: the click is committed before the 302 is sent
    (click,) = await clicks(store)
    assert click["click_id"] == query["tclid"]
    assert len(str(click["click_id"])) == 20
    assert (click["method"], click["kind"], click["rule"]) == ("GET", "human", "default_human")
    assert (click["device"], click["os"], click["browser"]) == ("mobile", "iOS", "Mobile Safari")
    assert click["user_agent"] == IPHONE
    assert click["referrer"] == "https://sms.example/"
    assert click["ip"] == "127.0.0.0"  # httpx's ASGI transport says the client is 127.0.0.1
    assert click["campaign_id"] == campaign["id"]
    link = await store.find_link(client.app.services.codes.decode(code))  # type: ignore[attr-defined]
    assert link is not None
    assert link.code == code
    assert click["link_id"] == link.id


async def test_every_click_gets_a_fresh_click_id(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object], store: SqliteStore
) -> None:
    code = await issue(client, auth, campaign)
    locations = [(await client.get(f"/{code}")).headers["location"] for _ in range(20)]
    ids = [dict(parse_qsl(urlsplit(loc).query))["tclid"] for loc in locations]
    assert len(set(ids)) == 20
    assert [c["click_id"] for c in await clicks(store)] == ids


async def test_previews_and_head_are_recorded_as_non_human(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object], store: SqliteStore
) -> None:
    code = await issue(client, auth, campaign)
    preview = await client.get(f"/{code}", headers={"User-Agent": WHATSAPP})
    head = await client.head(f"/{code}", headers={"User-Agent": IPHONE})
    bare = await client.get(f"/{code}", headers={"User-Agent": ""})
    assert preview.status_code == head.status_code == bare.status_code == 302
    assert head.content == b""
    kinds = [(c["method"], c["kind"], c["rule"]) for c in await clicks(store)]
    assert kinds == [
        ("GET", "preview", "whatsapp"),
        ("HEAD", "scanner", "head_request"),
        ("GET", "library", "empty_user_agent"),
    ]


async def test_long_user_agent_and_referrer_are_truncated(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object], store: SqliteStore
) -> None:
    code = await issue(client, auth, campaign)
    await client.get(f"/{code}", headers={"User-Agent": "U" * 2000, "Referer": "R" * 5000})
    (click,) = await clicks(store)
    assert click["user_agent"] == "U" * 512
    assert click["referrer"] == "R" * 1024


async def test_click_id_param_disabled(
    client: httpx.AsyncClient, auth: dict[str, str], store: SqliteStore
) -> None:
    created = await client.post(
        "/api/v1/campaigns",
        json={"name": "No ids", "destination": "https://shop.example/", "click_id_param": False},
        headers=auth,
    )
    code = await issue(client, auth, created.json())
    response = await client.get(f"/{code}?tclid=theirs")
    assert response.headers["location"] == (
        "https://shop.example/?utm_source=sms&utm_medium=sms&utm_campaign=no-ids&tclid=theirs"
    )
    assert len(await clicks(store)) == 1  # the click is still recorded, with its own id


async def test_ad_hoc_link(
    client: httpx.AsyncClient, auth: dict[str, str], store: SqliteStore
) -> None:
    created = await client.post(
        "/api/v1/links", json={"destination": "https://x.example/p?a=1"}, headers=auth
    )
    response = await client.get(f"/{created.json()['code']}")
    assert response.status_code == 302
    assert response.headers["location"].startswith("https://x.example/p?a=1&tclid=")
    (click,) = await clicks(store)
    assert click["campaign_id"] is None


@pytest.mark.parametrize("path", ["/aaaaaaa", "/zzzzzzzz", "/abc", "/" + "a" * 30, "/ab-cd", "/é"])
async def test_unknown_codes_are_404_pages(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Link not found" in response.text


async def test_tampered_code_is_refused_without_a_store_read(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    campaign: dict[str, object],
    store: SqliteStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = await issue(client, auth, campaign)
    reads = count_link_reads(store, monkeypatch)
    tampered = code[:-1] + ("a" if code[-1] != "a" else "b")
    assert (await client.get(f"/{tampered}")).status_code == 404
    assert (await client.head(f"/{tampered}")).status_code == 404
    assert reads == []
    # A valid but unknown code does read the store once.
    book = client.app.services.codes  # type: ignore[attr-defined]
    unknown = book.encode(987_654)
    assert (await client.get(f"/{unknown}")).status_code == 404
    assert reads == [987_654]
    assert await clicks(store) == []


async def test_disabled_expired_and_fallback(
    client: httpx.AsyncClient, auth: dict[str, str], campaign: dict[str, object], store: SqliteStore
) -> None:
    code = await issue(client, auth, campaign)
    url = f"/api/v1/campaigns/{campaign['id']}"
    assert (await client.get(f"/{code}")).status_code == 302  # now cached
    await client.patch(url, json={"disabled": True}, headers=auth)
    gone = await client.get(f"/{code}")
    assert gone.status_code == 410  # immediately, although the link was cached
    assert "expired" in gone.text
    await client.patch(url, json={"fallback_url": "https://shop.example/over"}, headers=auth)
    fallback = await client.get(f"/{code}")
    assert fallback.status_code == 302
    assert fallback.headers["location"] == "https://shop.example/over"
    await client.patch(
        url, json={"disabled": False, "expires_at": "2001-01-01T00:00:00Z"}, headers=auth
    )
    assert (await client.get(f"/{code}")).headers["location"] == "https://shop.example/over"
    await client.patch(url, json={"fallback_url": None}, headers=auth)
    assert (await client.get(f"/{code}")).status_code == 410
    await client.patch(url, json={"expires_at": None}, headers=auth)
    assert (await client.get(f"/{code}")).status_code == 302
    assert len(await clicks(store)) == 2  # the two redirects to the destination


async def test_other_process_changes_are_seen_within_the_cache_time(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    campaign: dict[str, object],
    store: SqliteStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = await issue(client, auth, campaign)
    assert (await client.get(f"/{code}")).status_code == 302
    # Another process disables the campaign: straight into the store, not through our API.
    await store.update_campaign(1, int(str(campaign["id"])), {"disabled": True})
    assert (await client.get(f"/{code}")).status_code == 302  # still cached here
    links = client.app.services.links  # type: ignore[attr-defined]
    monkeypatch.setattr(links, "_campaign_seconds", 0)
    assert (await client.get(f"/{code}")).status_code == 410


async def test_redirect_survives_a_failing_store(
    tmp_path: pytest.TempPathFactory, store: SqliteStore, make_key: object
) -> None:
    settings = Settings(
        database_url=store.path,
        base_url=BASE_URL,
        click_retry_seconds=0,
        click_durability="durable",
    )

    async def broken(rows: object) -> None:
        raise StoreError("disk I/O error")

    store.record_clicks = broken  # type: ignore[method-assign]  # before the writer binds it
    app = create_app(settings, store=store)
    workspace = await store.ensure_workspace("w")
    code = app.services.codes.encode(1)
    from tracker.models import LinkRequest

    await store.issue_links(
        workspace.id,
        None,
        [LinkRequest(None, None, None, "https://x.example/")],
        app.services.codes.encode,
    )

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        answers = await asyncio.gather(*(http.get(f"/{code}") for _ in range(5)))
        assert [a.status_code for a in answers] == [302] * 5
        for _ in range(500):  # the writer gives the batches up after the redirects went out
            if app.services.writer.dropped >= 5:
                break
            await asyncio.sleep(0.01)
        metrics = (await http.get("/metrics")).text
    assert "tracker_clicks_dropped_total 5.0" in metrics
    assert "tracker_clicks_recorded_total 0.0" in metrics
    assert "tracker_click_write_failures_total" in metrics
    failures = re.search(r"^tracker_click_write_failures_total (\S+)$", metrics, re.M)
    assert failures is not None and float(failures.group(1)) >= 1
    await app.services.writer.close()


async def test_lookup_failure_is_a_503_page(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    campaign: dict[str, object],
    store: SqliteStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = await issue(client, auth, campaign)

    async def broken(link_id: int) -> None:
        raise StoreError("database is locked")

    monkeypatch.setattr(store, "find_link_target", broken)
    response = await client.get(f"/{code}")
    assert response.status_code == 503
    assert "Try again" in response.text


@pytest.fixture
async def proxied(
    settings: Settings, store: SqliteStore, door: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Settings(
            database_url=settings.database_url, base_url=BASE_URL, trusted_proxies="127.0.0.1"
        ),
        store=store,
    )
    async with http_client(app, door) as http:
        http.app = app  # type: ignore[attr-defined]
        yield http
    await app.services.writer.close()


async def test_forwarded_for_is_trusted_only_from_configured_proxies(
    client: httpx.AsyncClient,
    proxied: httpx.AsyncClient,
    auth: dict[str, str],
    campaign: dict[str, object],
    store: SqliteStore,
) -> None:
    code = await issue(client, auth, campaign)
    spoof = {"X-Forwarded-For": "198.51.100.23, 203.0.113.99"}
    await client.get(f"/{code}", headers=spoof)  # no trusted proxies: the peer is the client
    await proxied.get(f"/{code}", headers=spoof)  # from a trusted proxy: its last hop counts
    await proxied.get(f"/{code}", headers={"X-Forwarded-For": "2001:db8:1234:5678::9"})
    assert [c["ip"] for c in await clicks(store)] == ["127.0.0.0", "203.0.113.0", "2001:db8:1234::"]


@pytest.mark.parametrize(
    ("method", "path", "answered"),
    [
        ("GET", "/abcDEF123", True),
        ("HEAD", "/abcDEF123", True),
        ("POST", "/abcDEF123", False),
        ("GET", "/healthz", False),
        ("GET", "/metrics", False),
        ("GET", "/readyz", False),
        ("GET", "/api", False),
        ("GET", "/dashboard", False),
        ("GET", "/", False),
        ("GET", "/p.gif", False),
        ("GET", "/a/b", False),
        ("GET", "/ab_c", False),
        ("GET", "/ünï", False),
    ],
)
async def test_the_front_answers_code_paths_and_hands_the_rest_on(
    settings: Settings, store: SqliteStore, door: str, method: str, path: str, answered: bool
) -> None:
    handed: list[str] = []

    async def starlette(scope: Scope, receive: Receive, send: Send) -> None:
        handed.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    services = create_app(settings, store=store).services
    front = Front(starlette, services)
    async with http_client(front, door) as http:
        response = await http.request(method, path)
    await services.writer.close()
    if answered:  # by the front itself: a code whose tag does not verify is its 404 page
        assert handed == [] and response.status_code == 404
    else:
        assert handed == [path] and response.status_code == 204


async def test_fast_mode_answers_then_writes(
    settings: Settings, store: SqliteStore, door: str
) -> None:
    gate = asyncio.Event()
    record = store.record_clicks

    async def held(rows: object) -> None:  # nothing commits until the gate opens
        await gate.wait()
        await record(rows)  # type: ignore[arg-type]

    store.record_clicks = held  # type: ignore[method-assign]  # before the writer binds it
    app = create_app(
        Settings(database_url=settings.database_url, base_url=BASE_URL, click_durability="fast"),
        store=store,
    )
    workspace = await store.ensure_workspace("w")
    from tracker.models import LinkRequest

    (link,) = await store.issue_links(
        workspace.id,
        None,
        [LinkRequest(None, None, None, "https://x.example/")],
        app.services.codes.encode,
    )
    app.services.writer._max_wait = 60  # a durable writer would hold the answers this long
    async with http_client(app, door) as http:
        await http.get(f"/{link.code}")  # caches the link: the protocol answers the rest itself
        requests = asyncio.gather(*(http.get(f"/{link.code}") for _ in range(50)))
        answers = await asyncio.wait_for(requests, 5)  # durable mode would wait for the gate
    assert {a.status_code for a in answers} == {302}
    assert await clicks(store) == []  # answered before any click was written
    gate.set()
    await app.services.writer.close()  # what SIGTERM does: drain
    assert len(await clicks(store)) == 51  # the first one too


async def test_a_restarted_process_redirects_from_the_link_index(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    campaign: dict[str, object],
    settings: Settings,
    store: SqliteStore,
    door: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Links issued before a process starts are indexed at startup: opening each for the
    first time reads no link from the store, and leads where the store says it does."""
    recipients = [{"ref": f"r{n}"} for n in range(40)] + [{"ref": "p", "params": {"k": "v"}}]
    answer = await client.post(
        f"/api/v1/campaigns/{campaign['id']}/links", json={"recipients": recipients}, headers=auth
    )
    codes = [link["code"] for link in answer.json()["links"]]
    expected = {}
    for code in codes:
        location = (await client.get(f"/{code}")).headers["location"]
        expected[code] = re.sub(r"tclid=[^&#]+", "tclid=X", location)

    restarted = create_app(settings, store=store)
    await restarted.services.links.load_index()
    reads = count_link_reads(store, monkeypatch)
    async with http_client(restarted, door) as http:
        for code in codes:
            response = await http.get(f"/{code}")
            assert response.status_code == 302
            location = response.headers["location"]
            assert re.sub(r"tclid=[^&#]+", "tclid=X", location) == expected[code]
    await restarted.services.writer.close()
    book = restarted.services.codes
    # The first link (its campaign was not cached yet) and the one with params of its own.
    assert reads == [book.decode(codes[0]), book.decode(codes[-1])]
    assert len(await clicks(store)) == 2 * len(codes)
