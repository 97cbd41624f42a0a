"""The dashboard in headless Chromium, on the demo campaign, against the real server.

`tracker demo` fills a database the way real traffic would; the browser signs in with the
demo's key, opens the campaign from the list, and must show the funnel numbers the stats
API gives for it. Screenshots at desktop and phone widths are saved in ``test-artifacts/``
(the README's pictures are these, taken from the demo).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.server import TRACKER, running_server
from tests.e2e.test_browser import browser, pytestmark  # noqa: F401  (fixture, skip rule)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}
TIMEOUT_MS = 20_000


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A server over a database `tracker demo` filled: (its URL, the demo's key)."""
    database = tmp_path / "demo.db"
    done = subprocess.run(
        [TRACKER, "demo", "--db", str(database)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    key = re.search(r"\btrk_[0-9a-f]{12}_[A-Za-z0-9_-]+", done.stdout)
    assert key, done.stdout
    with running_server(database) as server:
        yield server.url, key.group(0)


def shown(page: Page, selector: str) -> str:
    return " ".join(page.locator(selector).inner_text(timeout=TIMEOUT_MS).split())


def test_sign_in_and_read_the_demo_campaign(demo: tuple[str, str], browser: Browser) -> None:  # noqa: F811
    url, key = demo
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
        (campaign,) = http.get("/api/v1/campaigns").json()["campaigns"]
        totals = http.get(f"/api/v1/campaigns/{campaign['id']}/stats").json()["totals"]
    assert totals["unique_clickers"] > 0 and totals["converters"] > 0  # a realistic demo
    ARTIFACTS.mkdir(exist_ok=True)
    for name, (width, height) in SIZES.items():
        context = browser.new_context(viewport={"width": width, "height": height})
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{url}/dashboard")
            assert "/dashboard/login" in page.url  # signed out: the sign-in page
            page.fill("#key", key)
            page.click("button[type=submit]")
            page.click(f"text={campaign['name']}")
            page.wait_for_url(f"**/dashboard/campaigns/{campaign['id']}")
            funnel = shown(page, "section[aria-labelledby=funnel]")
            base = "Delivered" if totals["ctr_base"] == "delivered" else "Issued"
            assert f"{base} {totals['base']:,}" in funnel
            assert f"Clicked {totals['unique_clickers']:,} · {totals['ctr'] * 100:.1f} %" in funnel
            assert (
                f"Converted {totals['converters']:,} · {totals['conversion_rate'] * 100:.1f} %"
                in funnel
            )
            kpis = shown(page, "section[aria-labelledby=kpis]")
            assert f"CTR {totals['ctr'] * 100:.1f} %" in kpis
            page.screenshot(path=ARTIFACTS / f"dashboard-{name}.png", full_page=True)
        finally:
            context.close()
    for name in SIZES:
        assert (ARTIFACTS / f"dashboard-{name}.png").stat().st_size > 10_000
