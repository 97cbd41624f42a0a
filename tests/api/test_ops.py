from __future__ import annotations

import httpx

from tracker.store.sqlite import SqliteStore


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_follows_the_store(client: httpx.AsyncClient, store: SqliteStore) -> None:
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    await store.close()
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_unavailable"
    await store.open()


async def test_metrics_count_requests_by_route_class(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await client.get("/healthz")
    await client.get("/api/v1/campaigns", headers=auth)
    await client.get("/api/v1/campaigns")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'tracker_http_requests_total{method="GET",route_class="ops",status="200"} 1.0' in text
    assert 'tracker_http_requests_total{method="GET",route_class="api",status="200"} 1.0' in text
    assert 'tracker_http_requests_total{method="GET",route_class="api",status="401"} 1.0' in text
    assert 'tracker_http_request_duration_seconds_count{route_class="api"} 2.0' in text


async def test_links_issued_counter(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    await client.post("/api/v1/links", json={"destination": "https://x.example/"}, headers=auth)
    text = (await client.get("/metrics")).text
    assert "tracker_links_issued_total 1.0" in text


async def test_unknown_page_outside_api_is_html_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/some/where")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


async def test_metrics_count_redirects_by_method_and_status(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    issued = await client.post(
        "/api/v1/links", json={"destination": "https://x.example/"}, headers=auth
    )
    code = issued.json()["code"]
    assert (await client.get(f"/{code}")).status_code == 302
    assert (await client.get(f"/{code}")).status_code == 302
    assert (await client.head(f"/{code}")).status_code == 302
    assert (await client.get("/abcdefgh")).status_code == 404  # a code whose tag fails
    assert (await client.get("/some/where")).status_code == 404  # no code: through Starlette
    text = (await client.get("/metrics")).text
    counted = 'tracker_http_requests_total{method="%s",route_class="redirect",status="%s"} %s'
    assert counted % ("GET", 302, "2.0") in text
    assert counted % ("HEAD", 302, "1.0") in text
    assert counted % ("GET", 404, "2.0") in text  # the redirect's own and Starlette's, summed
    assert 'tracker_http_request_duration_seconds_count{route_class="redirect"} 5.0' in text
