"""``/api/v1/workspace``: the key's own workspace and its allowed destination schemes."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from tracker.models import Workspace
from tracker.urls import FORBIDDEN_SCHEMES, WEB_SCHEMES
from tracker.web.api.auth import require
from tracker.web.api.body import read_json
from tracker.web.api.fields import Fields
from tracker.web.errors import invalid
from tracker.web.responses import json_response
from tracker.web.services import services_of

SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,31}")


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
