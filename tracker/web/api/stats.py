"""Campaign results: ``GET /api/v1/campaigns/{id}/stats`` and the per-recipient CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tracker import report
from tracker.models import RECIPIENT_FILTERS, Campaign, RecipientRow
from tracker.web.api.auth import require
from tracker.web.api.campaigns import find_campaign
from tracker.web.api.fields import parse_time
from tracker.web.errors import invalid
from tracker.web.responses import json_response
from tracker.web.services import Services, services_of

CSV_COLUMNS = (
    "ref", "code", "variant", "status", "first_click_at", "human_clicks", "bot_clicks",
    "conversions", "revenue",
)  # fmt: skip


async def get_stats(request: Request) -> Response:
    principal = require(request, "stats:read")
    campaign = await find_campaign(request, principal)
    since = _query_time(request, "from")
    until = _query_time(request, "to")
    if since is not None and until is not None and since >= until:
        raise invalid("to", "must be after from")
    bucket = request.query_params.get("bucket", "day")
    if bucket not in report.BUCKETS:
        raise invalid("bucket", "must be hour or day")
    store = services_of(request).store
    results = await store.campaign_results(campaign.id, since, until)
    try:
        body = report.document(campaign, results, since_ms=since, until_ms=until, bucket=bucket)
    except report.TooManyPoints as error:
        hint = "a shorter range" if bucket == "day" else "bucket=day, or a shorter range"
        raise invalid("bucket", f"gives too many points ({error}): ask for {hint}") from None
    return json_response(body)


async def get_recipients_csv(request: Request) -> Response:
    principal = require(request, "stats:read")
    campaign = await find_campaign(request, principal)
    only = request.query_params.get("only")
    if only is not None and only not in RECIPIENT_FILTERS:
        raise invalid("only", f"must be one of {', '.join(RECIPIENT_FILTERS)}")
    return csv_download(services_of(request), campaign, only)


def csv_download(
    services: Services, campaign: Campaign, only: str | None, for_spreadsheets: bool = False
) -> StreamingResponse:
    """The recipients CSV as a download named after the campaign and the filter."""
    filename = f"{campaign.slug}-recipients{'-' + only if only else ''}.csv"
    return StreamingResponse(  # stops reading the store if the client goes away
        csv_chunks(services, campaign, only, for_spreadsheets),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


async def csv_chunks(
    services: Services, campaign: Campaign, only: str | None, for_spreadsheets: bool = False
) -> AsyncIterator[bytes]:
    """RFC 4180: CRLF line ends, fields quoted when they need it; one page in memory.
    ``for_spreadsheets``: a text cell that a spreadsheet would run as a formula (= + - @,
    tab, CR first) gets a leading ' (the dashboard's download, meant to be opened)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    async for page in services.store.recipient_rows(campaign.id, only):
        for row in page:
            cells = _csv_row(row)
            writer.writerow([_defused(c) for c in cells] if for_spreadsheets else cells)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def _defused(cell: object) -> object:
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + cell
    return cell


def _csv_row(row: RecipientRow) -> list[object]:
    revenue = " ".join(f"{format(v, 'f')} {cur}" for cur, v in sorted(row.revenue.items()))
    return [
        row.ref,
        row.code,
        row.variant or "",
        row.status or "",
        report.iso(row.first_click_at) or "",
        row.human_clicks,
        row.bot_clicks,
        row.conversions,
        revenue,
    ]


def _query_time(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    # A "+" in a query string arrives as a space: 2026-01-31T18:00:00+01:00 unencoded.
    return int(parse_time(text.replace(" ", "+"), name).timestamp() * 1000)
