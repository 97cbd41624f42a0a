"""The real server, over real HTTP: first start, campaign, links in both forms."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import orjson

from tests.e2e.server import TRACKER, running_server


def test_first_start_issue_links_and_restart(tmp_path: Path) -> None:
    database = tmp_path / "tracker.db"
    with running_server(database) as server:
        key = server.first_key
        assert key, "the first start prints an admin key:\n" + "\n".join(server.output)
        assert any("curl" in line for line in server.output)
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=10) as http:
            assert http.get("/readyz").json() == {"status": "ready"}
            campaign = http.post(
                "/api/v1/campaigns",
                json={
                    "name": "E2E",
                    "destination": "https://shop.example/",
                    "variants": [{"key": "A"}, {"key": "B"}],
                },
            ).json()
            links_url = f"/api/v1/campaigns/{campaign['id']}/links"
            as_json = http.post(
                links_url, json={"recipients": [{"ref": f"r{n}"} for n in range(100)]}
            )
            assert as_json.status_code == 200
            body = b"".join(orjson.dumps({"ref": f"r{n}"}) + b"\n" for n in range(50, 300))
            as_ndjson = http.post(
                links_url, content=body, headers={"Content-Type": "application/x-ndjson"}
            )
            assert as_ndjson.status_code == 200
            streamed = [orjson.loads(line) for line in as_ndjson.content.splitlines()]
            assert [item["ref"] for item in streamed] == [f"r{n}" for n in range(50, 300)]
            from_json = {item["ref"]: item for item in as_json.json()["links"]}
            for item in streamed[:50]:
                assert item == from_json[item["ref"]]
            assert all(item["short_url"] == f"{server.url}/{item['code']}" for item in streamed)
    # A restart prints no new key and keeps the links.
    with running_server(database) as server:
        assert server.first_key is None
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as http:
            again = http.post(links_url, json={"recipients": [{"ref": "r7"}]}).json()
            assert again["links"][0]["code"] == from_json["r7"]["code"]
            # The links issued before the restart were indexed at startup.
            deadline = time.monotonic() + 10
            while not any("link index: 300 links up to id 300" in x for x in server.output):
                assert time.monotonic() < deadline, "\n".join(server.output)
                time.sleep(0.05)
            assert http.get(f"/{from_json['r7']['code']}").status_code == 302


def test_a_port_in_use_ends_serve_with_uvicorns_startup_failure(tmp_path: Path) -> None:
    """One worker runs tracker's own uvicorn Server (decision 0013): it exits as
    ``uvicorn.run`` did when it cannot listen, with status 3 and the reason."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        run = subprocess.run(
            [TRACKER, "serve", "--db", str(tmp_path / "t.db"), "--host", "127.0.0.1",
             "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert run.returncode == 3, run.stderr
    assert "address already in use" in run.stderr
