"""Issuing links: ``POST /api/v1/campaigns/{id}/links`` (bulk) and ``POST /api/v1/links``.

The bulk endpoint takes a JSON object (up to ``MAX_JSON_RECIPIENTS``, all or nothing) or an
NDJSON stream (unlimited, answered line for line as it is read). An NDJSON line that is
invalid ends the stream: every line before it is issued and answered, then one error line
says which line failed, and nothing from that line on is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from tracker.models import Campaign, IssuedLink, LinkRequest, Principal
from tracker.store.base import StoreError
from tracker.variants import assign_variant
from tracker.web.api.auth import require
from tracker.web.api.body import is_ndjson, ndjson_items, read_json, require_media_type
from tracker.web.api.campaigns import find_campaign, parse_id
from tracker.web.api.fields import Fields
from tracker.web.errors import ApiError, invalid, not_found
from tracker.web.responses import StreamResponse, json_response
from tracker.web.services import Services, services_of

MAX_JSON_RECIPIENTS = 10_000
NDJSON_CHUNK = 5_000
MAX_REF = 128
MAX_PARAMS = 20
_RECIPIENT_FIELDS = {"ref", "variant", "params", "destination"}
_LINK_FIELDS = _RECIPIENT_FIELDS | {"campaign_id"}


class Recipients:
    """Turns recipient objects into ``LinkRequest``s for one campaign."""

    def __init__(self, campaign: Campaign, principal: Principal) -> None:
        self.campaign = campaign
        self.schemes = principal.workspace.allowed_schemes
        self.variant_keys = {v.key for v in campaign.variants}

    def parse(self, item: object, prefix: str, ref_required: bool = True) -> LinkRequest:
        fields = Fields(item, _RECIPIENT_FIELDS, prefix)
        ref = fields.string("ref", required=ref_required, max_length=MAX_REF)
        variant = fields.string("variant", max_length=32)
        if variant is not None and variant not in self.variant_keys:
            known = ", ".join(sorted(self.variant_keys)) or "none: the campaign has no variants"
            raise invalid(
                fields.name("variant"), f"is not a variant of the campaign (known: {known})"
            )
        if variant is None and ref is not None:
            variant = assign_variant(self.campaign.variants, self.campaign.id, ref)
        return LinkRequest(
            ref=ref,
            variant=variant,
            params=fields.string_map("params", max_items=MAX_PARAMS),
            destination=fields.url("destination", self.schemes),
        )


async def issue_links(request: Request) -> Response:
    principal = require(request, "links:write")
    services = services_of(request)
    campaign = await find_campaign(request, principal)
    require_media_type(request, ndjson=True)
    recipients = Recipients(campaign, principal)
    if is_ndjson(request):
        return StreamResponse(
            _issue_stream(request, services, recipients), media_type="application/x-ndjson"
        )
    body = Fields(await read_json(request, services.settings.max_json_bytes), {"recipients"})
    items = body.array("recipients", required=True) or []
    if len(items) > MAX_JSON_RECIPIENTS:
        raise ApiError(
            413,
            "too_many_recipients",
            f"at most {MAX_JSON_RECIPIENTS} recipients per JSON request; stream more as NDJSON",
            "recipients",
        )
    requests, seen = [], set()
    for index, item in enumerate(items):
        link_request = recipients.parse(item, f"recipients[{index}].")
        if link_request.ref in seen:
            raise invalid(
                f"recipients[{index}].ref", f"repeats ref {link_request.ref!r}", "duplicate_ref"
            )
        seen.add(link_request.ref)
        requests.append(link_request)
    issued = await _issue(services, campaign, requests)
    return json_response({"links": [_render(services, link) for link in issued]})


async def create_link(request: Request) -> Response:
    principal = require(request, "links:write")
    services = services_of(request)
    body = await read_json(request, services.settings.max_json_bytes)
    fields = Fields(body, _LINK_FIELDS)
    campaign = None
    raw_campaign_id = fields.raw("campaign_id")
    if raw_campaign_id is not None:
        if isinstance(raw_campaign_id, bool) or not isinstance(raw_campaign_id, int):
            raise invalid("campaign_id", "must be an integer")
        campaign_id = parse_id(str(raw_campaign_id))
        if campaign_id is not None:
            campaign = await services.store.get_campaign(principal.workspace.id, campaign_id)
        if campaign is None:
            raise not_found("campaign")
        link_request = Recipients(campaign, principal).parse(
            {k: v for k, v in body.items() if k != "campaign_id"}, "", ref_required=False
        )
    else:
        for key in ("ref", "variant"):
            if fields.has(key):
                raise invalid(key, "needs a campaign_id", "missing_field")
        destination = fields.url("destination", principal.workspace.allowed_schemes, required=True)
        params = fields.string_map("params", max_items=MAX_PARAMS)
        link_request = LinkRequest(ref=None, params=params, destination=destination)
    (issued,) = await _issue(services, campaign, [link_request], principal.workspace.id)
    link_id = services.codes.decode(issued.code)
    link = None if link_id is None else await services.store.find_link(link_id)
    if link is None:
        raise StoreError("a link vanished right after it was written")
    return json_response(
        {
            **_render(services, issued),
            "campaign_id": link.campaign_id,
            "destination": link.destination,
            "params": link.params,
            "created_at": link.created_at,
        },
        status_code=201,
    )


async def _issue(
    services: Services,
    campaign: Campaign | None,
    requests: list[LinkRequest],
    workspace_id: int | None = None,
) -> list[IssuedLink]:
    workspace = campaign.workspace_id if campaign is not None else workspace_id
    assert workspace is not None
    issued = await services.store.issue_links(
        workspace, None if campaign is None else campaign.id, requests, services.codes.encode
    )
    services.telemetry.links_issued.inc(len(issued))
    return issued


def _render(services: Services, link: IssuedLink) -> dict[str, Any]:
    return {
        "ref": link.ref,
        "code": link.code,
        "short_url": services.short_url(link.code),
        "variant": link.variant,
    }


async def _issue_stream(
    request: Request, services: Services, recipients: Recipients
) -> AsyncIterator[bytes]:
    """Issue and answer NDJSON recipients ``NDJSON_CHUNK`` lines at a time.

    One chunk is written while the next is read and parsed (SQLite releases the GIL while it
    works), and each chunk starts only after the one before it committed, so the answer
    keeps the request's order and a ref repeated across chunks finds its link.
    """
    pending: list[LinkRequest] = []
    writing: asyncio.Task[bytes] | None = None
    failure: ApiError | None = None
    campaign = recipients.campaign
    try:
        limit = services.settings.max_line_bytes
        async for item in ndjson_items(request, limit, lambda data: recipients.parse(data, "")):
            if isinstance(item, ApiError):
                failure = item
                break
            pending.append(item)
            if len(pending) >= NDJSON_CHUNK:
                if writing is not None:
                    yield await writing
                writing = asyncio.ensure_future(_issue_chunk(services, campaign, pending))
                pending = []
        if writing is not None:
            yield await writing
            writing = None
        if pending:
            yield await _issue_chunk(services, campaign, pending)
    except StoreError as error:
        failure = ApiError(503, "store_unavailable", f"links could not be written: {error}")
    except ClientDisconnect:
        return  # nobody is left to answer; the chunk being written still commits
    finally:
        if writing is not None and not writing.done():
            await asyncio.wait([writing])
    if failure is not None:
        yield orjson.dumps(failure.document(), option=orjson.OPT_APPEND_NEWLINE)


async def _issue_chunk(
    services: Services, campaign: Campaign, requests: list[LinkRequest]
) -> bytes:
    issued = await _issue(services, campaign, requests)
    prefix = services.settings.short_url_prefix
    return b"".join(
        orjson.dumps(
            {
                "ref": link.ref,
                "code": link.code,
                "short_url": prefix + link.code,
                "variant": link.variant,
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
        for link in issued
    )
