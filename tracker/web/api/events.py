"""``POST /api/v1/campaigns/{id}/events``: delivery receipts and opt-outs from the sender.

A JSON array (up to ``MAX_JSON_EVENTS``, all or nothing) or NDJSON (unlimited, stored
``NDJSON_CHUNK`` lines at a time) of ``{"ref" | "code", "status", "at"?, "error"?}``.
Each (link, status) is stored once: a repeat changes nothing, and a later status never
erases an earlier one. Events naming no recipient of the campaign are reported back, not
fatal. The answer is one summary; for NDJSON a bad line stops the stream there (every line
before it is stored) and the answer is the error, with the summary of what was stored.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tracker.models import MessageEvent
from tracker.web.api.auth import require
from tracker.web.api.body import is_ndjson, ndjson_items, parse_json, read_body, require_media_type
from tracker.web.api.campaigns import find_campaign
from tracker.web.api.fields import Fields
from tracker.web.errors import ApiError, invalid
from tracker.web.responses import json_response
from tracker.web.services import Services, services_of

STATUSES = ("sent", "delivered", "failed", "opted_out")
MAX_JSON_EVENTS = 10_000
NDJSON_CHUNK = 5_000
MAX_UNKNOWN_LISTED = 1_000
_FIELDS = {"ref", "code", "status", "at", "error"}


def parse_event(item: object, prefix: str, now_ms: int) -> MessageEvent:
    fields = Fields(item, _FIELDS, prefix)
    ref = fields.string("ref", max_length=128)
    code = fields.string("code", max_length=32)
    if (ref is None) == (code is None):
        raise invalid(fields.name("ref"), "or code is required (one of them, not both)")
    status = fields.string("status", required=True, max_length=32)
    if status not in STATUSES:
        raise invalid(
            fields.name("status"), f"must be one of {', '.join(STATUSES)}", "unknown_status"
        )
    return MessageEvent(
        status=status,
        at_ms=fields.event_time("at", now_ms),
        ref=ref,
        code=code,
        error=fields.string("error", max_length=128),
    )


class Summary:
    def __init__(self) -> None:
        self.received = self.recorded = self.duplicates = 0
        self.unknown: list[dict[str, str]] = []
        self.unknown_count = 0

    async def store(self, services: Services, campaign_id: int, events: list[MessageEvent]) -> None:
        result = await services.store.record_message_events(campaign_id, events)
        self.received += len(events)
        self.recorded += result.recorded
        self.duplicates += result.duplicates
        self.unknown_count += len(result.unknown)
        for index in result.unknown[: MAX_UNKNOWN_LISTED - len(self.unknown)]:
            event = events[index]
            self.unknown.append(
                {"ref": event.ref} if event.ref is not None else {"code": event.code or ""}
            )
        counter = services.telemetry.message_events
        counter.labels("recorded").inc(result.recorded)
        counter.labels("duplicate").inc(result.duplicates)
        counter.labels("unknown").inc(len(result.unknown))

    def document(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "unknown_count": self.unknown_count,
            "unknown": self.unknown,  # the first MAX_UNKNOWN_LISTED
        }


async def post_events(request: Request) -> Response:
    principal = require(request, "events:write")
    services = services_of(request)
    campaign = await find_campaign(request, principal)
    require_media_type(request, ndjson=True)
    summary = Summary()
    if not is_ndjson(request):
        data = parse_json(await read_body(request, services.settings.max_json_bytes))
        if not isinstance(data, list):
            raise invalid("the body", "must be a JSON array of events (or NDJSON)")
        if len(data) > MAX_JSON_EVENTS:
            raise ApiError(
                413,
                "too_many_events",
                f"at most {MAX_JSON_EVENTS} events per JSON array; send NDJSON for more",
            )
        now = _now_ms()
        events = [parse_event(item, f"[{i}].", now) for i, item in enumerate(data)]
        await summary.store(services, campaign.id, events)
        return json_response(summary.document())
    pending: list[MessageEvent] = []
    failure: ApiError | None = None
    limit = services.settings.max_line_bytes
    async for item in ndjson_items(request, limit, lambda data: parse_event(data, "", _now_ms())):
        if isinstance(item, ApiError):
            failure = item
            break
        pending.append(item)
        if len(pending) >= NDJSON_CHUNK:
            await summary.store(services, campaign.id, pending)
            pending = []
    if pending:  # the lines before a bad one are stored too
        await summary.store(services, campaign.id, pending)
    if failure is not None:
        return json_response({**failure.document(), **summary.document()}, failure.status)
    return json_response(summary.document())


def _now_ms() -> int:
    return int(time.time() * 1000)
