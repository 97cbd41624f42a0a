"""``/api/v1/workspace``: the key's own workspace and its allowed destination schemes."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from tracker import signatures
from tracker.models import WebhookSecret, Workspace
from tracker.urls import FORBIDDEN_SCHEMES, WEB_SCHEMES
from tracker.web.api.auth import require
from tracker.web.api.body import parse_json, read_body, read_json
from tracker.web.api.fields import Fields
from tracker.web.errors import invalid
from tracker.web.responses import json_response
from tracker.web.services import services_of

SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,31}")
DEFAULT_GRACE_HOURS = 24
MAX_GRACE_HOURS = 24 * 30


async def get_workspace(request: Request) -> Response:
    principal = require(request, "stats:read")
    return json_response(_render(principal.workspace))


async def update_workspace(request: Request) -> Response:
    principal = require(request, "admin")
    services = services_of(request)
    fields = Fields(await read_json(request, services.settings.max_json_bytes), {"allowed_schemes"})
    schemes = fields.array("allowed_schemes", required=True) or []
    for index, scheme in enumerate(schemes):
        where = f"allowed_schemes[{index}]"
        if not isinstance(scheme, str) or not SCHEME.fullmatch(scheme):
            raise invalid(where, "must be a lower-case URL scheme such as sms or myapp")
        if scheme in FORBIDDEN_SCHEMES:
            raise invalid(where, f"{scheme!r} can run code or read files in a browser")
    extra = [s for s in schemes if s not in WEB_SCHEMES]
    workspace = await services.store.set_allowed_schemes(principal.workspace.id, extra)
    return json_response(_render(workspace))


def _render(workspace: Workspace) -> dict[str, object]:
    return {
        "id": workspace.id,
        "name": workspace.name,
        "allowed_schemes": list(workspace.allowed_schemes),
    }


async def rotate_webhook_secret(request: Request) -> Response:
    """A new webhook secret, shown this once; the current ones keep verifying for
    ``grace_hours`` (default 24) so senders can switch without losing a request."""
    principal = require(request, "admin")
    services = services_of(request)
    raw = await read_body(request, services.settings.max_json_bytes)
    fields = Fields(parse_json(raw) if raw.strip() else {}, {"grace_hours"})
    grace = fields.integer("grace_hours", minimum=0, maximum=MAX_GRACE_HOURS)
    grace = DEFAULT_GRACE_HOURS if grace is None else grace
    store = services.store
    salt = signatures.new_salt()
    listed = await store.rotate_webhook_secret(principal.workspace.id, salt, grace * 3_600_000)
    body = {
        "secret": signatures.derive_secret(store.webhook_key, salt),
        "workspace_id": principal.workspace.id,
        **_render_secret(listed[0]),
        "secrets": [_render_secret(s) for s in listed],
    }
    return json_response(body, status_code=201)


async def list_webhook_secrets(request: Request) -> Response:
    principal = require(request, "admin")
    listed = await services_of(request).store.list_webhook_secrets(principal.workspace.id)
    return json_response({"secrets": [_render_secret(s) for s in listed]})


def _render_secret(secret: WebhookSecret) -> dict[str, object]:
    return {"id": secret.id, "created_at": secret.created_at, "expires_at": secret.expires_at}
