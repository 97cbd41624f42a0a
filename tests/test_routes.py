"""Routes are data: every route is listed here, documented in openapi.json, and answers."""

from __future__ import annotations

import httpx
from starlette.routing import Mount, Route

from tracker.app import ROUTES
from tracker.web.openapi import spec

EXPECTED = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/api/v1/campaigns"),
    ("GET", "/api/v1/campaigns"),
    ("GET", "/api/v1/campaigns/{campaign_id}"),
    ("PATCH", "/api/v1/campaigns/{campaign_id}"),
    ("POST", "/api/v1/campaigns/{campaign_id}/links"),
    ("POST", "/api/v1/campaigns/{campaign_id}/events"),
    ("GET", "/api/v1/campaigns/{campaign_id}/stats"),
    ("GET", "/api/v1/campaigns/{campaign_id}/recipients.csv"),
    ("POST", "/api/v1/links"),
    ("POST", "/api/v1/conversions"),
    ("GET", "/api/v1/workspace"),
    ("PATCH", "/api/v1/workspace"),
    ("GET", "/api/v1/workspace/webhook-secrets"),
    ("POST", "/api/v1/workspace/webhook-secrets"),
    ("GET", "/p.gif"),
    ("GET", "/t.js"),
}
DASHBOARD = {  # HTML pages: not in openapi.json
    ("GET", "/dashboard/"),
    ("GET", "/dashboard/login"),
    ("POST", "/dashboard/login"),
    ("POST", "/dashboard/logout"),
    ("GET", "/dashboard/campaigns/{campaign_id}"),
    ("GET", "/dashboard/campaigns/{campaign_id}/recipients.csv"),
}


def declared_routes() -> set[tuple[str, str]]:
    found = set()

    def walk(routes: list, prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                walk(route.routes, prefix + route.path)
            elif isinstance(route, Route):
                for method in route.methods or ():
                    if method != "HEAD":
                        found.add((method, prefix + route.path))

    walk(ROUTES, "")
    return found


def test_route_table_is_what_we_expect() -> None:
    assert declared_routes() == EXPECTED | DASHBOARD


def test_every_route_is_in_openapi() -> None:
    paths = spec("https://s.example")["paths"]
    documented = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    assert declared_routes() - DASHBOARD <= documented
    assert documented <= declared_routes(), "openapi.json documents a route that does not exist"


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    body = response.json()
    assert body["openapi"].startswith("3.1")
    assert body["servers"] == [{"url": "https://s.example"}]
    refs = {v for v in _walk_refs(body)}
    assert refs <= {f"#/components/schemas/{name}" for name in body["components"]["schemas"]}


def _walk_refs(node: object):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _walk_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_refs(item)
