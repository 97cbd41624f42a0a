"""``POST /api/v1/conversions``: conversions reported by a shop's server.

Authenticated by an API key with ``conversions:write``, or by the workspace's webhook
secret: ``Tracker-Signature`` over the raw body plus ``Tracker-Workspace: <workspace id>``
(the signature alone does not say whose secret signed it). A signed body is read whole and
verified before any of it is used.

The body is one object (answered with one result), a JSON array (all or nothing, answered
with an array in the same order) or NDJSON (answered line for line, streamed; the first bad
line ends the stream with an error line, every line before it is stored).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from tracker import signatures
from tracker.models import ConversionInput, ConversionResult
from tracker.store.base import StoreError
from tracker.web.api.auth import principal_of, require
from tracker.web.api.body import (
    is_ndjson,
    ndjson_items,
    parse_json,
    read_body,
    require_media_type,
)
from tracker.web.api.fields import Fields
from tracker.web.errors import ApiError, invalid
from tracker.web.responses import StreamResponse, json_response
from tracker.web.services import Services, services_of

# The events a conversion can be (docs/decisions/0007): the common ones of shops and lead
# forms, named as analytics tools name them. A typo should fail loudly, not start a new series.
EVENTS = frozenset(
    {
        "purchase", "lead", "sign_up", "subscribe", "start_trial", "add_to_cart",
        "begin_checkout", "contact", "booking", "download", "app_install",
    }
)  # fmt: skip
CLICK_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
CURRENCY = re.compile(r"[A-Z]{3}")
MAX_VALUE = Decimal(1_000_000_000)
MAX_ORDER_ID = 128
MAX_REF = 128
MAX_JSON_ITEMS = 10_000
NDJSON_CHUNK = 5_000
_FIELDS = {
    "click_id",
    "campaign_id",
    "ref",
    "event",
    "order_id",
    "value",
    "currency",
    "occurred_at",
}


def parse_conversion(
    item: object, prefix: str, source: str, now_ms: int, *, default_event: str | None = None
) -> ConversionInput:
    """One conversion object, checked field by field (``ApiError`` 422 names the field)."""
    fields = Fields(item, _FIELDS, prefix)
    event = fields.string("event", required=default_event is None, max_length=64)
    event = event or default_event
    assert event is not None
    if event not in EVENTS:
        raise invalid(
            fields.name("event"), f"must be one of {', '.join(sorted(EVENTS))}", "unknown_event"
        )
    click_id = fields.string(
        "click_id", max_length=64, pattern=CLICK_ID, hint="letters, digits, - and _"
    )
    campaign_id = fields.integer("campaign_id", minimum=1, maximum=2**63 - 1)
    ref = fields.string("ref", max_length=MAX_REF)
    if ref is not None and campaign_id is None:
        raise invalid(fields.name("campaign_id"), "is required with ref", "missing_field")
    value = fields.money("value", maximum=MAX_VALUE, places=4)
    currency = fields.string(
        "currency", max_length=3, pattern=CURRENCY, hint="an ISO 4217 code such as EUR"
    )
    if value is not None and currency is None:
        raise invalid(fields.name("currency"), "is required with value", "missing_field")
    if currency is not None and value is None:
        raise invalid(fields.name("value"), "is required with currency", "missing_field")
    return ConversionInput(
        event=event,
        occurred_at_ms=fields.event_time("occurred_at", now_ms),
        source=source,
        click_id=click_id,
        campaign_id=campaign_id,
        ref=ref,
        order_id=fields.string("order_id", max_length=MAX_ORDER_ID),
        value=value,
        currency=currency,
    )


def render(result: ConversionResult) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": result.id,
        "duplicate": result.duplicate,
        "attributed": result.attributed,
    }
    if result.attributed:
        body["campaign_id"] = result.campaign_id
        body["variant"] = result.variant
    else:
        body["reason"] = result.reason
    return body


async def post_conversions(request: Request) -> Response:
    services = services_of(request)
    signature = request.headers.get(signatures.HEADER)
    require_media_type(request, ndjson=True)
    body: Request | bytes
    if principal_of(request) is None and signature is not None:
        workspace_id, body = await _verify_signature(request, services, signature)
        source = "webhook"
    else:
        workspace_id = require(request, "conversions:write").workspace.id
        source = "api"
        body = request
    if is_ndjson(request):
        stream = _conversion_stream(body, services, workspace_id, source)
        return StreamResponse(stream, status_code=202, media_type="application/x-ndjson")
    if isinstance(body, Request):
        body = await read_body(body, services.settings.max_json_bytes)
    elif len(body) > services.settings.max_json_bytes:
        raise ApiError(413, "body_too_large", "a JSON body this large must be sent as NDJSON")
    data = parse_json(body)
    now = _now_ms()
    if isinstance(data, list):
        if len(data) > MAX_JSON_ITEMS:
            raise ApiError(
                413,
                "too_many_conversions",
                f"at most {MAX_JSON_ITEMS} conversions per JSON array; send NDJSON for more",
            )
        parsed = [parse_conversion(item, f"[{i}].", source, now) for i, item in enumerate(data)]
        results = await _record(services, workspace_id, parsed)
        return json_response([render(r) for r in results], status_code=202)
    (result,) = await _record(services, workspace_id, [parse_conversion(data, "", source, now)])
    return json_response(render(result), status_code=202)


async def _verify_signature(request: Request, services: Services, header: str) -> tuple[int, bytes]:
    """The workspace whose current webhook secret signed the request, and the body it
    signed; 401 otherwise. The header, its time and the workspace's secrets are checked
    before the body is read; an unknown workspace and a wrong signature get one answer."""
    claimed = request.headers.get("tracker-workspace", "")
    if not (claimed.isascii() and claimed.isdigit() and 0 < len(claimed) <= 18):
        raise ApiError(
            401, "unauthorized", "a signed request names its workspace: Tracker-Workspace: <id>"
        )
    workspace_id = int(claimed)
    store = services.store
    try:
        signature = signatures.parse(header, time.time())
        salts = await store.webhook_salts(workspace_id)
        if not salts:
            raise signatures.SignatureError("the signature does not match the body")
        raw = await read_body(request, services.settings.max_signed_bytes)
        secrets = [signatures.derive_secret(store.webhook_key, salt) for salt in salts]
        signatures.check(signature, raw, secrets)
    except signatures.SignatureError as error:
        raise ApiError(401, "bad_signature", str(error)) from None
    return workspace_id, raw


async def _record(
    services: Services, workspace_id: int, conversions: list[ConversionInput]
) -> list[ConversionResult]:
    results = await services.store.record_conversions(workspace_id, conversions)
    services.telemetry.count_conversions(results)
    return results


async def _conversion_stream(
    body: Request | bytes, services: Services, workspace_id: int, source: str
) -> AsyncIterator[bytes]:
    """Store and answer NDJSON conversions ``NDJSON_CHUNK`` lines at a time."""
    pending: list[ConversionInput] = []
    failure: ApiError | None = None
    limit = services.settings.max_line_bytes

    def parse(data: object) -> ConversionInput:
        return parse_conversion(data, "", source, _now_ms())

    try:
        async for item in ndjson_items(body, limit, parse):
            if isinstance(item, ApiError):
                failure = item
                break
            pending.append(item)
            if len(pending) >= NDJSON_CHUNK:
                yield _lines(await _record(services, workspace_id, pending))
                pending = []
        if pending:  # the lines before a bad one are stored too
            yield _lines(await _record(services, workspace_id, pending))
    except StoreError as error:
        failure = ApiError(503, "store_unavailable", f"conversions could not be stored: {error}")
    except ClientDisconnect:
        return  # nobody is left to answer
    if failure is not None:
        yield orjson.dumps(failure.document(), option=orjson.OPT_APPEND_NEWLINE)


def _lines(results: list[ConversionResult]) -> bytes:
    return b"".join(orjson.dumps(render(r), option=orjson.OPT_APPEND_NEWLINE) for r in results)


def _now_ms() -> int:
    return int(time.time() * 1000)
