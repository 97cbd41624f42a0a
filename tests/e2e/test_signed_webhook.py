"""The README's signing example, run as written against the real server."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.e2e.server import running_server

README = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)


def readme_signing_example() -> str:
    section = README.split("## Conversions: closing the loop", 1)[1]
    match = re.search(r"```python\n(.+?)\n```", section, re.S)
    assert match, "the README shows how to sign a conversion in Python"
    return match.group(1)


def test_the_readme_signing_example_reports_a_conversion(tmp_path: Path) -> None:
    with running_server(tmp_path / "tracker.db") as server:
        auth = {"Authorization": f"Bearer {server.first_key}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=10) as http:
            campaign = http.post(
                "/api/v1/campaigns", json={"name": "Hook", "destination": "https://shop.example/"}
            ).json()
            issued = http.post(
                f"/api/v1/campaigns/{campaign['id']}/links", json={"recipients": [{"ref": "r1"}]}
            ).json()
            tap = http.get("/" + issued["links"][0]["code"], headers={"User-Agent": IPHONE})
            click_id = dict(parse_qsl(urlsplit(tap.headers["location"]).query))["tclid"]
            made = http.post("/api/v1/workspace/webhook-secrets").json()
            assert made["workspace_id"] == 1  # the example's Tracker-Workspace
            names = {"BASE": server.url, "SECRET": made["secret"], "click_id": click_id}
            exec(readme_signing_example(), names)  # raises on any status but 2xx
            again = http.post(
                "/api/v1/conversions",
                json={"click_id": click_id, "event": "purchase", "order_id": "A17"},
            ).json()
            assert again["duplicate"] is True  # so the example's conversion was stored
            assert again["attributed"] is True and again["campaign_id"] == campaign["id"]
