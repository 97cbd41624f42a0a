"""``/api/v1/campaigns``: create, list, read and update campaigns."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tracker import report
from tracker.models import Campaign, CampaignSpec, Principal, Variant
from tracker.web.api.auth import require
from tracker.web.api.body import read_json
from tracker.web.api.fields import Fields
from tracker.web.errors import ApiError, invalid, not_found
from tracker.web.responses import json_response
from tracker.web.services import services_of

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
PARAM_NAME = re.compile(r"[A-Za-z0-9_.~-]{1,32}")
VARIANT_KEY = re.compile(r"[A-Za-z0-9_-]{1,32}")
CURRENCY = re.compile(r"[A-Z]{3}")
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_id")
MAX_VARIANTS = 26
MAX_PAGE = 200

_CREATE_FIELDS = {
    "name", "slug", "destination", "utm", "click_id_param", "attribution_window_hours",
    "cost_per_message", "currency", "expires_at", "fallback_url", "disabled", "variants",
}  # fmt: skip
_PATCH_FIELDS = {"name", "fallback_url", "expires_at", "disabled"}
_VARIANT_FIELDS = {"key", "weight", "destination", "utm_content"}


async def create_campaign(request: Request) -> Response:
    principal = require(request, "links:write")
    services = services_of(request)
    body = await read_json(request, services.settings.max_json_bytes)
    spec = parse_spec(body, principal)
    campaign = await services.store.add_campaign(principal.workspace.id, spec)
    return json_response(render(campaign), status_code=201)


async def list_campaigns(request: Request) -> Response:
    principal = require(request, "stats:read")
    limit = _query_int(request, "limit", default=50, maximum=MAX_PAGE)
    before = _query_int(request, "cursor", default=None, maximum=2**63 - 1)
    store = services_of(request).store
    campaigns = await store.list_campaigns(principal.workspace.id, limit + 1, before)
    page = campaigns[:limit]
    next_cursor = page[-1].id if len(campaigns) > limit else None
    listed = []
    for campaign in page:  # with the numbers campaigns are compared by
        results = await store.campaign_results(campaign.id)
        listed.append({**render(campaign), "kpis": report.headline(campaign, results)})
    return json_response({"campaigns": listed, "next_cursor": next_cursor})


async def get_campaign(request: Request) -> Response:
    principal = require(request, "stats:read")
    campaign = await find_campaign(request, principal)
    return json_response(render(campaign))


async def update_campaign(request: Request) -> Response:
    principal = require(request, "links:write")
    services = services_of(request)
    campaign = await find_campaign(request, principal)
    fields = Fields(await read_json(request, services.settings.max_json_bytes), _PATCH_FIELDS)
    changes: dict[str, Any] = {}
    if fields.has("name"):
        changes["name"] = fields.string("name", required=True, max_length=200)
    if fields.has("fallback_url"):
        changes["fallback_url"] = fields.url("fallback_url", principal.workspace.allowed_schemes)
    if fields.has("expires_at"):
        changes["expires_at"] = fields.time("expires_at")
    if fields.has("disabled"):
        disabled = fields.boolean("disabled")
        if disabled is None:
            raise invalid("disabled", "must be true or false")
        changes["disabled"] = disabled
    updated = await services.store.update_campaign(principal.workspace.id, campaign.id, changes)
    services.links.forget_campaign(campaign.id)  # this process redirects the new way at once
    if updated is None:
        raise not_found("campaign")
    return json_response(render(updated))


async def find_campaign(request: Request, principal: Principal) -> Campaign:
    """The campaign named in the path, if it belongs to the principal's workspace; else 404."""
    campaign_id = parse_id(request.path_params["campaign_id"])
    store = services_of(request).store
    campaign = None
    if campaign_id is not None:
        campaign = await store.get_campaign(principal.workspace.id, campaign_id)
    if campaign is None:
        raise not_found("campaign")
    return campaign


def parse_id(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def parse_spec(body: object, principal: Principal) -> CampaignSpec:
    fields = Fields(body, _CREATE_FIELDS)
    schemes = principal.workspace.allowed_schemes
    name = fields.string("name", required=True, max_length=200)
    assert name is not None
    slug = fields.string(
        "slug", max_length=64, pattern=SLUG, hint="lower-case letters, digits, - and _"
    )
    slug = slug or slugify(name)
    destination = fields.url("destination", schemes, required=True)
    assert destination is not None
    cost = fields.money("cost_per_message", maximum=Decimal(1000))
    currency = fields.string(
        "currency", max_length=3, pattern=CURRENCY, hint="an ISO 4217 code such as EUR"
    )
    if cost is not None and currency is None:
        raise invalid("currency", "is required with cost_per_message", "missing_field")
    window = fields.integer("attribution_window_hours", minimum=1, maximum=24 * 365)
    return CampaignSpec(
        name=name,
        slug=slug,
        destination=destination,
        utm=_parse_utm(fields, slug),
        click_id_param=_parse_click_id_param(fields),
        attribution_window_hours=168 if window is None else window,
        cost_per_message=cost,
        currency=currency,
        expires_at=fields.time("expires_at"),
        fallback_url=fields.url("fallback_url", schemes),
        disabled=bool(fields.boolean("disabled")),
        variants=_parse_variants(fields, schemes),
    )


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")
    return slug or "campaign"


def _parse_utm(fields: Fields, slug: str) -> dict[str, str]:
    """UTM defaults, changed by what was sent: a string sets a key, ``null`` removes it."""
    utm = {"utm_source": "sms", "utm_medium": "sms", "utm_campaign": slug}
    given = fields.raw("utm")
    if given is None:
        return utm
    if not isinstance(given, dict):
        raise invalid("utm", 'must be an object such as {"utm_source": "sms"}')
    for key, value in given.items():
        if key not in UTM_KEYS:
            raise ApiError(
                422,
                "unknown_field",
                f"unknown field utm.{key}; known: {', '.join(UTM_KEYS)}",
                f"utm.{key}",
            )
        if value is None:
            utm.pop(key, None)
        elif isinstance(value, str) and 0 < len(value) <= 256:
            utm[key] = value
        else:
            raise invalid(f"utm.{key}", "must be a string of 1 to 256 characters, or null")
    return utm


def _parse_click_id_param(fields: Fields) -> str | None:
    if not fields.has("click_id_param"):
        return "tclid"
    if fields.raw("click_id_param") is False:
        return None
    name = fields.string(
        "click_id_param", max_length=32, pattern=PARAM_NAME, hint="letters, digits, _ . ~ -"
    )
    return name


def _parse_variants(fields: Fields, schemes: tuple[str, ...]) -> tuple[Variant, ...]:
    items = fields.array("variants") or []
    if len(items) > MAX_VARIANTS:
        raise invalid("variants", f"must have at most {MAX_VARIANTS} entries")
    variants: list[Variant] = []
    for index, item in enumerate(items):
        entry = Fields(item, _VARIANT_FIELDS, f"variants[{index}].")
        key = entry.string(
            "key", required=True, pattern=VARIANT_KEY, hint="letters, digits, _ and -"
        )
        assert key is not None
        if any(v.key == key for v in variants):
            raise invalid(entry.name("key"), f"repeats variant {key!r}", "duplicate_variant")
        weight = entry.integer("weight", minimum=0, maximum=1_000_000)
        variants.append(
            Variant(
                key=key,
                weight=1 if weight is None else weight,
                destination=entry.url("destination", schemes),
                utm_content=entry.string("utm_content", max_length=256) or key,
            )
        )
    if variants and not any(v.weight > 0 for v in variants):
        raise invalid("variants", "need at least one variant with a weight above 0")
    return tuple(variants)


def _query_int(request: Request, name: str, default: int | None, maximum: int) -> Any:
    text = request.query_params.get(name)
    if text is None:
        return default
    value = parse_id(text)
    if value is None or not 1 <= value <= maximum:
        raise ApiError(
            422, "invalid_parameter", f"{name} must be an integer from 1 to {maximum}", name
        )
    return value


def render(campaign: Campaign) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "slug": campaign.slug,
        "destination": campaign.destination,
        "utm": campaign.utm,
        "click_id_param": campaign.click_id_param,
        "attribution_window_hours": campaign.attribution_window_hours,
        "cost_per_message": None
        if campaign.cost_per_message is None
        else str(campaign.cost_per_message),
        "currency": campaign.currency,
        "expires_at": campaign.expires_at,
        "fallback_url": campaign.fallback_url,
        "disabled": campaign.disabled,
        "variants": [
            {
                "key": v.key,
                "weight": v.weight,
                "destination": v.destination,
                "utm_content": v.utm_content,
            }
            for v in campaign.variants
        ],
        "created_at": campaign.created_at,
    }
