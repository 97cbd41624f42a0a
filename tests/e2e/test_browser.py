"""A real browser, a real shop, the real tracker: the conversion snippet end to end (issue 4).

Chromium (Debian's, driven by Playwright) opens an SMS short link served by ``tracker serve``;
the 302 takes it to a shop on another site (``shop.test``, mapped to a second loopback port),
whose landing page loads ``<tracker>/t.js``. The snippet keeps the click id from the URL in a
first-party cookie and in localStorage. The recipient then goes on to the thank-you page —
whose URL carries no click id — where ``tracker.convert(...)`` fires ``/p.gif`` at the tracker.

This proves, in a browser and across sites: the click is stored as a human click; the click
id survives into a later page of the shop (cookie and localStorage both hold it); the pixel
fires on the tracker's origin, taken from the script tag; and the conversion is stored with
its event, order id, exact value and currency, from the snippet, attributed to that click
and its campaign.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Response, sync_playwright

from tests.e2e.server import Server, running_server

CHROMIUM = "/usr/bin/chromium"  # Debian's package; Playwright never downloads a browser here
SHOP_HOST = "shop.test"  # a site of its own: the pixel is a cross-site request, as in real life
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # No background traffic: this machine's network refuses it, and it is noise anyway.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--host-resolver-rules=MAP {SHOP_HOST} 127.0.0.1",
]
# A phone's browser. Headless Chromium's own User-Agent says "HeadlessChrome", which the
# tracker rightly classifies as a scanner: its click would never be credited.
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
TIMEOUT_MS = 20_000  # for each browser step; a shared 2-core machine can be slow

LANDING = """<!doctype html>
<html lang="en"><meta charset="utf-8"><title>Shop</title>
<h1>Spring sale</h1>
<a id="buy" href="/thanks.html">Buy now</a>
<script src="{tracker}/t.js"></script>
</html>
"""
THANKS = """<!doctype html>
<html lang="en"><meta charset="utf-8"><title>Thank you</title>
<h1>Thank you for your order</h1>
<script src="{tracker}/t.js"></script>
<script>
  window.sentClickId = tracker.convert(
    {{event: "purchase", value: "49.90", currency: "EUR", order_id: "A17"}}
  );
</script>
</html>
"""

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)",
)


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path / "tracker.db") as server:
        yield server


@pytest.fixture
def shop(tracker: Server) -> Iterator[str]:
    """The shop's origin: two static pages that include the tracker's snippet."""
    pages = {
        "/landing.html": LANDING.format(tracker=tracker.url).encode(),
        "/thanks.html": THANKS.format(tracker=tracker.url).encode(),
    }

    class Shop(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = pages.get(urlsplit(self.path).path)
            self.send_response(200 if page else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page or b"")))
            self.end_headers()
            self.wfile.write(page or b"")

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Shop)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{SHOP_HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=60_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


def test_snippet_records_a_purchase_for_the_sms_click(
    tracker: Server, shop: str, browser: Browser, tmp_path: Path
) -> None:
    assert tracker.first_key, "\n".join(tracker.output)
    database = tmp_path / "tracker.db"
    auth = {"Authorization": f"Bearer {tracker.first_key}"}
    with httpx.Client(base_url=tracker.url, headers=auth, timeout=10) as http:
        created = http.post(
            "/api/v1/campaigns",
            json={"name": "Spring sale", "destination": f"{shop}/landing.html"},
        )
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        issued = http.post(
            f"/api/v1/campaigns/{campaign_id}/links", json={"recipients": [{"ref": "r1"}]}
        )
        assert issued.status_code == 200, issued.text
        short_url = issued.json()["links"][0]["short_url"]

    context = browser.new_context(user_agent=IPHONE_SAFARI)
    try:
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()

        # The SMS link: the tracker's 302 lands on the shop with the click id in the URL.
        page.goto(short_url)
        landed = urlsplit(page.url)
        assert f"{landed.scheme}://{landed.netloc}{landed.path}" == f"{shop}/landing.html"
        (click_id,) = parse_qs(landed.query)["tclid"]
        page.wait_for_function("window.tracker !== undefined")
        click = _wait_for_row(
            database,
            "SELECT id, campaign_id, kind, method, user_agent FROM clicks WHERE click_id = ?",
            click_id,
        )
        assert click[1:] == (campaign_id, "human", "GET", IPHONE_SAFARI)

        # The snippet kept the click id on the shop's site: a cookie and localStorage.
        (cookie,) = [c for c in context.cookies(shop) if c["name"] == "tracker_click_id"]
        assert cookie["value"] == click_id
        assert cookie["domain"] == SHOP_HOST
        assert (cookie["path"], cookie["sameSite"]) == ("/", "Lax")
        assert 6.9 * 86400 < cookie["expires"] - time.time() <= 7 * 86400
        kept = page.evaluate("JSON.parse(localStorage.getItem('tracker_click_id'))")
        assert kept["id"] == click_id
        assert page.evaluate("tracker.clickId()") == click_id
        assert context.cookies(tracker.url) == []  # the tracker itself sets none

        # On to the thank-you page (no click id in its URL): the snippet fires the pixel.
        with page.expect_response(_is_pixel) as pixel_response:
            page.click("#buy")
        pixel = pixel_response.value
        assert urlsplit(page.url).path == "/thanks.html"
        assert "tclid" not in urlsplit(page.url).query
        assert pixel.url.startswith(f"{tracker.url}/p.gif?")  # the script tag's origin
        assert pixel.status == 200
        assert pixel.headers["content-type"] == "image/gif"
        assert "cookie" not in pixel.request.all_headers()  # a cross-site pixel: none sent
        sent = parse_qs(urlsplit(pixel.url).query)
        assert sent == {
            "src": ["snippet"],
            "event": ["purchase"],
            "tclid": [click_id],
            "value": ["49.90"],
            "currency": ["EUR"],
            "order_id": ["A17"],
        }
        assert page.evaluate("window.sentClickId") == click_id
    finally:
        context.close()

    conversion = _wait_for_row(
        database,
        "SELECT event, order_id, value, currency, source, click_id, campaign_id,"
        " click_row_id, reason FROM conversions WHERE order_id = ?",
        "A17",
    )
    assert conversion == (
        "purchase",
        "A17",
        "49.90",
        "EUR",
        "snippet",
        click_id,
        campaign_id,
        click[0],
        None,
    )
    assert _rows(database, "SELECT count(*) FROM conversions") == [(1,)]
    metrics = httpx.get(f"{tracker.url}/metrics", timeout=10).text
    assert 'tracker_pixel_hits_total{outcome="recorded"} 1.0' in metrics


def _is_pixel(response: Response) -> bool:
    return urlsplit(response.url).path == "/p.gif"


def _wait_for_row(database: Path, query: str, *params: object) -> tuple[Any, ...]:
    """The first row ``query`` finds in the tracker's database, polled read-only for 15 s."""
    deadline = time.monotonic() + 15
    while not (rows := _rows(database, query, *params)):
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing in the database for {query!r} {params!r}")
        time.sleep(0.1)
    return rows[0]


def _rows(database: Path, query: str, *params: object) -> list[tuple[Any, ...]]:
    """``query``'s rows, read from the tracker's database while it runs (read-only)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return [tuple(row) for row in db.execute(query, params)]
