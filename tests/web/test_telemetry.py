"""The redirect's metrics: latencies appended as they come, counted into buckets later."""

from __future__ import annotations

import asyncio

from tracker.config import Settings
from tracker.store import open_store
from tracker.web.services import Services
from tracker.web.telemetry import LATENCY_BUCKETS, Telemetry


def buckets(*pairs: tuple[int, int]) -> list[float]:
    row = [0.0] * (len(LATENCY_BUCKETS) + 1)
    for index, count in pairs:
        row[index] = count
    return row


def test_appended_latencies_are_counted_when_read() -> None:
    telemetry = Telemetry()
    timings = telemetry.redirect_timings("GET", 302)
    # A bound is the upper edge of its bucket (Prometheus' "le"); past the last, "+Inf".
    timings.extend([0.0001, 0.0005, 0.0006, 0.0006, 10, 11])
    telemetry.observe_redirect("HEAD", 404, 0.003)
    assert telemetry.request_counts() == {("redirect", "GET", 302): 6, ("redirect", "HEAD", 404): 1}
    assert timings == []  # emptied in place: the redirect keeps appending to this list
    latency = telemetry.latencies()["redirect"]
    assert latency[:-1] == buckets((0, 2), (1, 2), (3, 1), (12, 1), (13, 1))
    assert latency[-1] == 0.0001 + 0.0005 + 0.0006 + 0.0006 + 10 + 11 + 0.003
    timings.append(0.02)  # folded into the same row, on top of what it counted before
    assert telemetry.request_counts()[("redirect", "GET", 302)] == 7
    assert telemetry.redirect_timings("GET", 302) is timings


def test_redirect_rows_and_other_routes_add_up_in_the_histogram() -> None:
    telemetry = Telemetry()
    telemetry.redirect_timings("GET", 302).append(0.002)
    telemetry.observe("redirect", "GET", 404, 0.002)  # a 404 that went through Starlette
    telemetry.observe("api", "POST", 201, 0.02)
    latencies = telemetry.latencies()
    assert latencies["redirect"][:-1] == buckets((2, 2))
    assert latencies["api"][:-1] == buckets((5, 1))


async def folded_on_its_own(telemetry: Telemetry) -> None:
    """Append a GET 302's latency and wait (3 s at most) for a fold nobody asked for."""
    timings = telemetry.redirect_timings("GET", 302)
    timings.append(0.001)
    for _ in range(300):
        if not timings:
            break
        await asyncio.sleep(0.01)
    assert timings == []
    assert telemetry.redirects["GET"][302][1] == 1  # counted without a read


async def test_started_it_folds_on_its_own_until_stopped() -> None:
    telemetry = Telemetry()
    telemetry.start(every=0.01)
    await folded_on_its_own(telemetry)
    timings = telemetry.redirect_timings("GET", 302)
    telemetry.stop()
    timings.append(0.001)
    await asyncio.sleep(0.05)
    assert timings == [0.001]  # stopped: left for the next read


async def test_a_started_service_folds_the_redirect_latencies(settings: Settings) -> None:
    """``Services.start`` starts the fold (once a second), so that the lists the redirect
    appends to stay short in a server nobody scrapes; ``stop`` ends it."""
    services = Services(settings, open_store(settings.database_url))
    await services.start()
    try:
        await folded_on_its_own(services.telemetry)
    finally:
        await services.stop()
