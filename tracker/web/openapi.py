"""The OpenAPI 3.1 description of every route (a test checks that none is missing)."""

from __future__ import annotations

from typing import Any

from tracker import __version__

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(s): {"description": _REASONS[s], "content": {"application/json": {"schema": _ERROR}}}
        for s in statuses
    }


_REASONS = {
    400: "Malformed JSON",
    401: "No or bad API key",
    403: "The key lacks the scope",
    404: "Unknown, or in another workspace",
    413: "Body too large",
    415: "Wrong content type",
    422: "Invalid field",
    503: "Store unavailable",
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


_CAMPAIGN_ID = {
    "name": "campaign_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer"},
}
_SECURED = [{"bearer": []}]
_SIGNED_OR_KEY = [{"bearer": []}, {"signature": []}]

_PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/campaigns": {
        "post": {
            "summary": "Create a campaign",
            "description": "Scope links:write.",
            "security": _SECURED,
            "requestBody": {"required": True, "content": _json(_ref("CampaignInput"))},
            "responses": {
                "201": {"description": "Created", "content": _json(_ref("Campaign"))},
                **_errors(400, 401, 403, 413, 415, 422),
            },
        },
        "get": {
            "summary": "List campaigns, newest first",
            "description": "Scope stats:read. Pass next_cursor back as cursor for the next page.",
            "security": _SECURED,
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 200}},
                {"name": "cursor", "in": "query", "schema": {"type": "integer"}},
            ],
            "responses": {
                "200": {
                    "description": "A page of campaigns",
                    "content": _json(
                        {
                            "type": "object",
                            "properties": {
                                "campaigns": {"type": "array", "items": _ref("Campaign")},
                                "next_cursor": {"type": ["integer", "null"]},
                            },
                        }
                    ),
                },
                **_errors(401, 403, 422),
            },
        },
    },
    "/api/v1/campaigns/{campaign_id}": {
        "get": {
            "summary": "Read a campaign",
            "description": "Scope stats:read.",
            "security": _SECURED,
            "parameters": [_CAMPAIGN_ID],
            "responses": {
                "200": {"description": "The campaign", "content": _json(_ref("Campaign"))},
                **_errors(401, 403, 404),
            },
        },
        "patch": {
            "summary": "Rename, set fallback or expiry, disable or enable a campaign",
            "description": "Scope links:write. Only name, fallback_url, expires_at, disabled.",
            "security": _SECURED,
            "parameters": [_CAMPAIGN_ID],
            "requestBody": {
                "required": True,
                "content": _json(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "fallback_url": {"type": ["string", "null"]},
                            "expires_at": {"type": ["string", "null"], "format": "date-time"},
                            "disabled": {"type": "boolean"},
                        },
                    }
                ),
            },
            "responses": {
                "200": {"description": "The campaign", "content": _json(_ref("Campaign"))},
                **_errors(400, 401, 403, 404, 415, 422),
            },
        },
    },
    "/api/v1/campaigns/{campaign_id}/links": {
        "post": {
            "summary": "Issue per-recipient links (bulk, idempotent per ref)",
            "description": (
                "Scope links:write. JSON: up to 10 000 recipients, all or nothing. NDJSON: one "
                "recipient per line, unlimited, answered line for line; a bad line ends the "
                "stream with an error line after the links of every line before it."
            ),
            "security": _SECURED,
            "parameters": [_CAMPAIGN_ID],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["recipients"],
                            "properties": {
                                "recipients": {
                                    "type": "array",
                                    "maxItems": 10000,
                                    "items": _ref("Recipient"),
                                }
                            },
                        }
                    },
                    "application/x-ndjson": {"schema": _ref("Recipient")},
                },
            },
            "responses": {
                "200": {
                    "description": "Links in request order",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "links": {"type": "array", "items": _ref("IssuedLink")}
                                },
                            }
                        },
                        "application/x-ndjson": {"schema": _ref("IssuedLink")},
                    },
                },
                **_errors(400, 401, 403, 404, 413, 415, 422),
            },
        }
    },
    "/api/v1/campaigns/{campaign_id}/events": {
        "post": {
            "summary": "Report delivery receipts and opt-outs",
            "description": (
                "Scope events:write. A JSON array (up to 10 000, all or nothing) or NDJSON."
                " Idempotent per (link, status); a later status never erases an earlier one."
                " Events naming no recipient of the campaign are counted and listed."
            ),
            "security": _SECURED,
            "parameters": [_CAMPAIGN_ID],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"type": "array", "maxItems": 10000, "items": _ref("Event")}
                    },
                    "application/x-ndjson": {"schema": _ref("Event")},
                },
            },
            "responses": {
                "200": {"description": "What was stored", "content": _json(_ref("EventsSummary"))},
                **_errors(400, 401, 403, 404, 413, 415, 422, 503),
            },
        }
    },
    "/api/v1/campaigns/{campaign_id}/stats": {
        "get": {
            "summary": "The campaign's KPIs, per variant with A/B verdicts, and a time series",
            "description": (
                "Scope stats:read. KPIs as DESIGN.md §4 defines them; rates with a zero"
                " denominator are null. from/to limit clicks and conversions (links and"
                " receipts are the whole campaign)."
            ),
            "security": _SECURED,
            "parameters": [
                _CAMPAIGN_ID,
                {
                    "name": "from",
                    "in": "query",
                    "schema": {"type": "string", "format": "date-time"},
                },
                {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                {"name": "bucket", "in": "query", "schema": {"enum": ["hour", "day"]}},
            ],
            "responses": {
                "200": {"description": "The results", "content": _json(_ref("Stats"))},
                **_errors(401, 403, 404, 422, 503),
            },
        }
    },
    "/api/v1/campaigns/{campaign_id}/recipients.csv": {
        "get": {
            "summary": "One CSV row per recipient (streamed): the retargeting lists",
            "description": (
                "Scope stats:read. Columns: ref, code, variant, status, first_click_at,"
                " human_clicks, bot_clicks, conversions, revenue. RFC 4180."
            ),
            "security": _SECURED,
            "parameters": [
                _CAMPAIGN_ID,
                {
                    "name": "only",
                    "in": "query",
                    "schema": {"enum": ["delivered_not_clicked", "clicked_not_converted"]},
                },
            ],
            "responses": {
                "200": {"description": "CSV", "content": {"text/csv": {}}},
                **_errors(401, 403, 404, 422, 503),
            },
        }
    },
    "/api/v1/conversions": {
        "post": {
            "summary": "Report conversions (server to server)",
            "description": (
                "Scope conversions:write, or signed: Tracker-Signature: t=<unix seconds>,"
                "v1=<hex HMAC-SHA256(secret, '<t>.<raw body>')> with Tracker-Workspace: <id>."
                " One object, a JSON array (up to 10 000, all or nothing) or NDJSON"
                " (answered line for line)."
            ),
            "security": _SIGNED_OR_KEY,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                _ref("ConversionInput"),
                                {"type": "array", "items": _ref("ConversionInput")},
                            ]
                        }
                    },
                    "application/x-ndjson": {"schema": _ref("ConversionInput")},
                },
            },
            "responses": {
                "202": {
                    "description": "Stored (or found to repeat a stored one)",
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    _ref("ConversionResult"),
                                    {"type": "array", "items": _ref("ConversionResult")},
                                ]
                            }
                        },
                        "application/x-ndjson": {"schema": _ref("ConversionResult")},
                    },
                },
                **_errors(400, 401, 403, 413, 415, 422, 503),
            },
        }
    },
    "/api/v1/links": {
        "post": {
            "summary": "Issue one link: ad hoc, campaign-level, or for one recipient",
            "description": "Scope links:write. With campaign_id and ref it is idempotent.",
            "security": _SECURED,
            "requestBody": {
                "required": True,
                "content": _json(
                    {
                        "type": "object",
                        "properties": {
                            "campaign_id": {"type": "integer"},
                            "ref": {"type": "string", "maxLength": 128},
                            "variant": {"type": "string"},
                            "params": {"type": "object"},
                            "destination": {"type": "string", "maxLength": 2048},
                        },
                    }
                ),
            },
            "responses": {
                "201": {"description": "The link", "content": _json(_ref("Link"))},
                **_errors(400, 401, 403, 404, 415, 422),
            },
        }
    },
    "/api/v1/workspace": {
        "get": {
            "summary": "The key's workspace",
            "security": _SECURED,
            "responses": {
                "200": {"description": "The workspace", "content": _json(_ref("Workspace"))},
                **_errors(401),
            },
        },
        "patch": {
            "summary": "Allow destination schemes besides http and https",
            "description": "Scope admin.",
            "security": _SECURED,
            "requestBody": {
                "required": True,
                "content": _json(
                    {
                        "type": "object",
                        "properties": {
                            "allowed_schemes": {"type": "array", "items": {"type": "string"}}
                        },
                    }
                ),
            },
            "responses": {
                "200": {"description": "The workspace", "content": _json(_ref("Workspace"))},
                **_errors(400, 401, 403, 415, 422),
            },
        },
    },
    "/api/v1/workspace/webhook-secrets": {
        "get": {
            "summary": "The workspace's webhook secrets (never the secrets themselves)",
            "description": "Scope admin.",
            "security": _SECURED,
            "responses": {
                "200": {
                    "description": "Newest first",
                    "content": _json(
                        {
                            "type": "object",
                            "properties": {
                                "secrets": {"type": "array", "items": _ref("WebhookSecret")}
                            },
                        }
                    ),
                },
                **_errors(401, 403),
            },
        },
        "post": {
            "summary": "Make a new webhook secret (rotation)",
            "description": (
                "Scope admin. The secret is shown once. The current secrets keep verifying"
                " for grace_hours (default 24)."
            ),
            "security": _SECURED,
            "requestBody": {
                "required": False,
                "content": _json(
                    {
                        "type": "object",
                        "properties": {
                            "grace_hours": {"type": "integer", "minimum": 0, "maximum": 720}
                        },
                    }
                ),
            },
            "responses": {
                "201": {
                    "description": "The new secret",
                    "content": _json(
                        {
                            "allOf": [
                                _ref("WebhookSecret"),
                                {
                                    "type": "object",
                                    "properties": {
                                        "secret": {"type": "string"},
                                        "workspace_id": {"type": "integer"},
                                        "secrets": {
                                            "type": "array",
                                            "items": _ref("WebhookSecret"),
                                        },
                                    },
                                },
                            ]
                        }
                    ),
                },
                **_errors(400, 401, 403, 415, 422),
            },
        },
    },
    "/p.gif": {
        "get": {
            "summary": "Conversion pixel: always a 1x1 GIF",
            "description": "Bad input is counted in /metrics, never shown.",
            "parameters": [
                {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                for name in ("tclid", "event", "value", "currency", "order_id", "src")
            ],
            "responses": {"200": {"description": "The GIF", "content": {"image/gif": {}}}},
        }
    },
    "/t.js": {
        "get": {
            "summary": "The landing-page snippet: keeps the click id, offers tracker.convert()",
            "responses": {"200": {"description": "JavaScript", "content": {"text/javascript": {}}}},
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness: the process serves HTTP",
            "responses": {"200": {"description": "Up"}},
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: the store answers",
            "responses": {"200": {"description": "Ready"}, **_errors(503)},
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (text exposition format)",
            "responses": {"200": {"description": "Metrics", "content": {"text/plain": {}}}},
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.1", "content": _json({})}},
        }
    },
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": "string"},
                    "line": {"type": "integer", "description": "NDJSON line at fault"},
                },
            }
        },
    },
    "Variant": {
        "type": "object",
        "required": ["key"],
        "properties": {
            "key": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"},
            "weight": {"type": "integer", "minimum": 0, "default": 1},
            "destination": {"type": ["string", "null"]},
            "utm_content": {"type": ["string", "null"]},
        },
    },
    "CampaignInput": {
        "type": "object",
        "required": ["name", "destination"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "maxLength": 200},
            "slug": {"type": "string"},
            "destination": {"type": "string", "maxLength": 2048},
            "utm": {"type": "object", "description": "utm_* values; null removes a default"},
            "click_id_param": {"type": ["string", "boolean"], "default": "tclid"},
            "attribution_window_hours": {"type": "integer", "default": 168},
            "cost_per_message": {"type": ["string", "number"]},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "expires_at": {"type": "string", "format": "date-time"},
            "fallback_url": {"type": "string"},
            "disabled": {"type": "boolean"},
            "variants": {"type": "array", "items": _ref("Variant")},
        },
    },
    "Campaign": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "slug": {"type": "string"},
            "destination": {"type": "string"},
            "utm": {"type": "object"},
            "click_id_param": {"type": ["string", "null"]},
            "attribution_window_hours": {"type": "integer"},
            "cost_per_message": {"type": ["string", "null"]},
            "currency": {"type": ["string", "null"]},
            "expires_at": {"type": ["string", "null"], "format": "date-time"},
            "fallback_url": {"type": ["string", "null"]},
            "disabled": {"type": "boolean"},
            "variants": {"type": "array", "items": _ref("Variant")},
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "Recipient": {
        "type": "object",
        "required": ["ref"],
        "additionalProperties": False,
        "properties": {
            "ref": {"type": "string", "maxLength": 128},
            "variant": {"type": "string"},
            "params": {"type": "object", "additionalProperties": {"type": "string"}},
            "destination": {"type": "string", "maxLength": 2048},
        },
    },
    "IssuedLink": {
        "type": "object",
        "properties": {
            "ref": {"type": ["string", "null"]},
            "code": {"type": "string"},
            "short_url": {"type": "string"},
            "variant": {"type": ["string", "null"]},
        },
    },
    "Link": {
        "allOf": [
            _ref("IssuedLink"),
            {
                "type": "object",
                "properties": {
                    "campaign_id": {"type": ["integer", "null"]},
                    "destination": {"type": ["string", "null"]},
                    "params": {"type": ["object", "null"]},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
        ]
    },
    "Kpis": {
        "type": "object",
        "description": "DESIGN.md §4 KPI definitions; rates are null when undefined.",
        "properties": {
            name: {"type": ["number", "integer", "string", "object", "null"]}
            for name in (
                "issued",
                "sent",
                "delivered",
                "failed",
                "opted_out",
                "ctr_base",
                "base",
                "delivery_rate",
                "human_clicks",
                "bot_clicks",
                "unique_clickers",
                "ctr",
                "conversions",
                "converters",
                "conversion_rate",
                "click_conversion_rate",
                "revenue",
                "cost",
                "roi",
                "cost_per_conversion",
                "opt_out_rate",
            )
        },
    },
    "Stats": {
        "type": "object",
        "properties": {
            "campaign_id": {"type": "integer"},
            "from": {"type": ["string", "null"]},
            "to": {"type": ["string", "null"]},
            "totals": _ref("Kpis"),
            "variants": {"type": "array", "items": {"allOf": [_ref("Kpis")]}},
            "devices": {"type": "array", "items": {"type": "object"}},
            "os": {"type": "array", "items": {"type": "object"}},
            "time_to_first_click": {"type": "object"},
            "series": {"type": "object"},
        },
    },
    "Event": {
        "type": "object",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {
            "ref": {"type": "string", "maxLength": 128},
            "code": {"type": "string"},
            "status": {"enum": ["sent", "delivered", "failed", "opted_out"]},
            "at": {"type": "string", "format": "date-time"},
            "error": {"type": "string", "maxLength": 128},
        },
    },
    "EventsSummary": {
        "type": "object",
        "properties": {
            "received": {"type": "integer"},
            "recorded": {"type": "integer"},
            "duplicates": {"type": "integer"},
            "unknown_count": {"type": "integer"},
            "unknown": {"type": "array", "items": {"type": "object"}, "maxItems": 1000},
        },
    },
    "ConversionInput": {
        "type": "object",
        "required": ["event"],
        "additionalProperties": False,
        "properties": {
            "click_id": {"type": "string", "maxLength": 64},
            "campaign_id": {"type": "integer"},
            "ref": {"type": "string", "maxLength": 128},
            "event": {"type": "string"},
            "order_id": {"type": "string", "maxLength": 128},
            "value": {"type": ["string", "number"]},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "occurred_at": {"type": "string", "format": "date-time"},
        },
    },
    "ConversionResult": {
        "type": "object",
        "required": ["id", "duplicate", "attributed"],
        "properties": {
            "id": {"type": "integer"},
            "duplicate": {"type": "boolean"},
            "attributed": {"type": "boolean"},
            "campaign_id": {"type": ["integer", "null"]},
            "variant": {"type": ["string", "null"]},
            "reason": {"type": "string"},
        },
    },
    "WebhookSecret": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "expires_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "Workspace": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "allowed_schemes": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def spec(base_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tracker",
            "version": __version__,
            "description": "Link shortener and click/conversion tracker for SMS campaigns.",
        },
        "servers": [{"url": base_url}],
        "paths": _PATHS,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "signature": {"type": "apiKey", "in": "header", "name": "Tracker-Signature"},
            },
        },
    }
