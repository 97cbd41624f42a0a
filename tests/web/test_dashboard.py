"""The dashboard through the ASGI app: sign-in, isolation, the numbers shown, empty states."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator

import httpx
import itsdangerous
import pytest

from tests.api.test_stats import IPHONE, Campaign, known  # noqa: F401  (the fixture)
from tests.conftest import MakeKey
from tracker import keys
from tracker.app import create_app
from tracker.config import Settings
from tracker.store.sqlite import SqliteStore

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def browser(settings: Settings, store: SqliteStore) -> AsyncIterator[httpx.AsyncClient]:
    """A second client on the same app, as a browser: its own cookie jar, over https (the
    session cookie is Secure because the base URL is https)."""
    app = create_app(settings, store=store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://s.example") as client:
        yield client
    await app.services.writer.close()


async def sign_in(browser: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    key = headers["Authorization"].removeprefix("Bearer ")
    return await browser.post("/dashboard/login", content=f"key={key}", headers=FORM)


def text(html: str) -> str:
    """The page's words, tags and extra spaces gone (what a reader sees)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_every_page_needs_a_sign_in(browser: httpx.AsyncClient, known: Campaign) -> None:  # noqa: F811
    for path in ("/dashboard/", f"/dashboard/campaigns/{known.id}",
                 f"/dashboard/campaigns/{known.id}/recipients.csv"):  # fmt: skip
        response = await browser.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/dashboard/login?next=/dashboard")
    login = await browser.get("/dashboard/login")
    assert login.status_code == 200 and 'name="key"' in login.text


async def test_sign_in_sets_a_safe_cookie_and_sign_out_clears_it(
    browser: httpx.AsyncClient,
    auth: dict[str, str],
) -> None:
    response = await sign_in(browser, auth)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"].lower()
    for flag in ("httponly", "samesite=lax", "path=/dashboard", "secure"):
        assert flag in cookie
    # Not the key's secret (all of it: trk_<id>_<secret>, and the secret may hold "_" too; its
    # last "_"-part alone can be two characters, found in any cookie by chance).
    secret = auth["Authorization"].removeprefix("Bearer ").split("_", 2)[2]
    assert secret.lower() not in cookie
    # What the cookie carries (signed, not encrypted) is the key's id and nothing else.
    payload = response.cookies["tracker_session"].split(".")[0]
    key_id = keys.key_id_of(auth["Authorization"].removeprefix("Bearer "))
    assert json.loads(base64.b64decode(payload)) == {"key_id": key_id}
    assert (await browser.get("/dashboard/")).status_code == 200
    out = await browser.post("/dashboard/logout")
    assert out.status_code == 303
    assert (await browser.get("/dashboard/")).status_code == 303


async def test_bad_keys_are_refused(browser: httpx.AsyncClient, make_key: MakeKey) -> None:
    wrong = await browser.post("/dashboard/login", content="key=trk_nope_nope", headers=FORM)
    assert wrong.status_code == 401 and "not valid" in wrong.text
    empty = await browser.post("/dashboard/login", content="", headers=FORM)
    assert empty.status_code == 401
    writer = await sign_in(browser, await make_key("acme", "links:write"))
    assert writer.status_code == 401 and "stats:read" in writer.text
    assert (await browser.get("/dashboard/")).status_code == 303


async def test_only_dashboard_paths_are_followed_after_sign_in(
    browser: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    key = auth["Authorization"].removeprefix("Bearer ")
    for target, expected in (
        ("/dashboard/campaigns/1", "/dashboard/campaigns/1"),
        ("https://evil.example/", "/dashboard"),
        ("//evil.example/dashboard", "/dashboard"),
        ("/dashboard//evil.example", "/dashboard"),
    ):
        response = await browser.post(
            "/dashboard/login", content=f"key={key}&next={target}", headers=FORM
        )
        assert response.headers["location"] == expected


async def test_the_campaigns_list(
    browser: httpx.AsyncClient,
    known: Campaign,  # noqa: F811
    client: httpx.AsyncClient,
    auth: dict[str, str],
) -> None:
    quiet = Campaign(client, auth, {"name": "Quiet", "destination": "https://shop.example/"})
    await quiet.create({"q1": None, "q2": None})  # type: ignore[dict-item]
    await sign_in(browser, auth)
    page = await browser.get("/dashboard/")
    words = text(page.text)
    row = re.search(r"Truth .*? 10 62\.5 % 50\.0 % 60\.00 EUR \+ 5 USD", words)
    assert row, words
    assert re.search(r"Quiet .*? 2 0\.0 % 0\.0 % —", words), words
    by_ctr = text((await browser.get("/dashboard/?sort=ctr&dir=desc")).text)
    assert by_ctr.index("Truth") < by_ctr.index("Quiet")
    by_ctr_up = text((await browser.get("/dashboard/?sort=ctr&dir=asc")).text)
    assert by_ctr_up.index("Quiet") < by_ctr_up.index("Truth")
    assert (await browser.get("/dashboard/?sort=nonsense")).status_code == 200
    assert "<script" not in page.text  # readable without JavaScript: there is none


async def test_the_campaign_page_shows_the_numbers(
    browser: httpx.AsyncClient,
    known: Campaign,  # noqa: F811
) -> None:
    await sign_in(browser, known.auth)
    page = await browser.get(f"/dashboard/campaigns/{known.id}")
    assert page.status_code == 200
    words = text(page.text)
    # The funnel: 8 delivered → 5 clicked (62.5 %) → 4 converted (50.0 %).
    assert "Delivered 8 Clicked 5 · 62.5 % Converted 4 · 50.0 %" in words
    assert "Human 6 · 66.7 % Bots and previews 3 · 33.3 %" in words
    assert "Revenue 60.00 EUR + 5 USD" in words
    assert "Cost 0.40 EUR" in words
    assert "Delivery rate 80.0 % · 1 failed · 1 opted out (12.5 %)" in words
    # Variants side by side, and B against A in plain words.
    assert "CTR 50.0 % 75.0 %" in words
    assert "not enough data yet: about 108 more recipients needed" in words
    assert "no difference on conversion rate so far" in words
    assert "mobile 5 · 83.3 % desktop 1 · 16.7 %" in words
    assert 'href="?bucket=hour"' in page.text and "<svg" in page.text
    hourly = await browser.get(f"/dashboard/campaigns/{known.id}?bucket=hour")
    assert hourly.status_code == 200 and 'aria-current="page">hour' in hourly.text
    csv = await browser.get(
        f"/dashboard/campaigns/{known.id}/recipients.csv?only=delivered_not_clicked"
    )
    assert csv.status_code == 200 and csv.text.splitlines()[1].startswith("a3,")


async def test_a_key_sees_only_its_workspace(
    browser: httpx.AsyncClient,
    known: Campaign,  # noqa: F811
    make_key: MakeKey,
) -> None:
    await sign_in(browser, await make_key("other", "stats:read"))
    assert "Truth" not in (await browser.get("/dashboard/")).text
    page = f"/dashboard/campaigns/{known.id}"
    for path in (
        page,
        page + "/recipients.csv",
        "/dashboard/campaigns/999",
        "/dashboard/campaigns/abc",
    ):
        assert (await browser.get(path)).status_code == 404, path


async def test_empty_states(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    c = Campaign(
        client,
        auth,
        {"name": "Fresh", "destination": "https://shop.example/", "variants": [{"key": "A"}]},
    )
    await c.create({"r1": "A"})
    await sign_in(browser, auth)
    words = text((await browser.get(f"/dashboard/campaigns/{c.id}")).text)
    assert "No delivery receipts yet" in words
    assert "No conversions yet" in words and "t.js" in words
    assert "No clicks yet." in words
    assert "Nothing has happened yet." in words
    assert "One variant: nothing to compare." in words
    assert "Issued 1 Clicked 0 · 0.0 % Converted 0 · 0.0 %" in words
    empty = await browser.get("/dashboard/")
    assert "Fresh" in empty.text


async def test_no_campaigns_yet(browser: httpx.AsyncClient, auth: dict[str, str]) -> None:
    await sign_in(browser, auth)
    assert "No campaigns yet" in (await browser.get("/dashboard/")).text


async def test_forms_from_other_sites_and_huge_forms_are_refused(
    browser: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    key = auth["Authorization"].removeprefix("Bearer ")
    evil = {**FORM, "Origin": "https://evil.example"}
    assert (
        await browser.post("/dashboard/login", content=f"key={key}", headers=evil)
    ).status_code == 403
    fetch = {**FORM, "Sec-Fetch-Site": "cross-site"}
    assert (
        await browser.post("/dashboard/login", content=f"key={key}", headers=fetch)
    ).status_code == 403
    ours = {**FORM, "Origin": "https://s.example", "Sec-Fetch-Site": "same-origin"}
    assert (
        await browser.post("/dashboard/login", content=f"key={key}", headers=ours)
    ).status_code == 303
    huge = await browser.post("/dashboard/login", content=b"key=" + b"x" * 100_000, headers=FORM)
    assert huge.status_code == 413
    assert (
        await browser.post("/dashboard/logout", headers={"Origin": "https://evil.example"})
    ).status_code == 403
    assert (await browser.get("/dashboard/")).status_code == 200  # still signed in


async def test_a_revoked_key_is_signed_out(
    browser: httpx.AsyncClient, auth: dict[str, str], store: SqliteStore
) -> None:
    await sign_in(browser, auth)
    assert (await browser.get("/dashboard/")).status_code == 200
    await store._w.execute("UPDATE api_keys SET revoked_at = 1")
    assert (await browser.get("/dashboard/")).status_code == 303


async def test_names_are_escaped_and_the_download_defuses_formulas(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    c = Campaign(
        client, auth, {"name": "<script>x()</script>", "destination": "https://shop.example/"}
    )
    await c.create({'=HYPERLINK("http://evil","x")': None, "-1+1": None, "plain": None})  # type: ignore[dict-item]
    await sign_in(browser, auth)
    page = await browser.get(f"/dashboard/campaigns/{c.id}")
    assert "<script>x()" not in page.text and "&lt;script&gt;x()" in page.text
    download = await browser.get(f"/dashboard/campaigns/{c.id}/recipients.csv")
    assert download.headers["cache-control"] == "no-store"
    refs = [line.split(",")[0] for line in download.text.splitlines()[1:]]
    assert "'-1+1" in refs and "plain" in refs
    assert any(r.startswith("\"'=HYPERLINK(") for r in refs)
    raw = await client.get(f"/api/v1/campaigns/{c.id}/recipients.csv", headers=auth)
    assert "\n-1+1," in raw.text  # the API's file is for programs: bytes as issued


async def test_each_app_keys_and_flags_its_own_sessions(
    tmp_path,
    store: SqliteStore,
    auth: dict[str, str],  # type: ignore[no-untyped-def]
) -> None:
    key = auth["Authorization"].removeprefix("Bearer ")
    cookies = {}
    for base in ("http://plain.example", "https://tls.example"):
        app = create_app(
            Settings(database_url=f"sqlite:///{store.path}", base_url=base), store=store
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base) as c:
            response = await c.post("/dashboard/login", content=f"key={key}", headers=FORM)
            cookies[base] = response.headers["set-cookie"].lower()
        await app.services.writer.close()
    assert "secure" not in cookies["http://plain.example"]
    assert "secure" in cookies["https://tls.example"]


async def test_sessions_are_signed_with_a_key_derived_from_the_server_secret(
    browser: httpx.AsyncClient, store: SqliteStore, auth: dict[str, str]
) -> None:
    """A cookie naming a valid key id is accepted only when signed with this server's
    session key: one signed with any other key is ignored (the sign-in page again)."""
    key_id = keys.key_id_of(auth["Authorization"].removeprefix("Bearer "))
    payload = base64.b64encode(json.dumps({"key_id": key_id}).encode())
    ours = hmac.new(store.code_secret, b"dashboard session", hashlib.sha256).hexdigest()
    for secret, status in (("not-secret", 303), (ours, 200)):
        cookie = itsdangerous.TimestampSigner(secret).sign(payload).decode()
        browser.cookies.set("tracker_session", cookie, domain="s.example", path="/dashboard")
        assert (await browser.get("/dashboard/")).status_code == status, secret
