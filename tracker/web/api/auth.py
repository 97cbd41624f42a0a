"""API-key authentication for everything under ``/api``.

The middleware resolves ``Authorization: Bearer <key>`` into a ``Principal`` (or ``None``
when no key is sent) and answers 401 itself for a key that does not verify. Handlers then
ask ``require(request, scope)``: 401 without a key, 403 without the scope. ``admin`` holds
every scope.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tracker import keys
from tracker.models import Principal
from tracker.web.errors import ApiError, error_response
from tracker.web.services import services_of


class AuthMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                principal = await _authenticate(HTTPConnection(scope))
            except ApiError as error:
                response = error_response(error, {"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
            scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


async def _authenticate(conn: HTTPConnection) -> Principal | None:
    header = conn.headers.get("authorization")
    if header is None:
        return None
    kind, _, key = header.partition(" ")
    key = key.strip()
    if kind.lower() != "bearer" or not key:
        raise ApiError(401, "unauthorized", "Authorization must be 'Bearer <api key>'")
    principal = await principal_for_key(conn, key)
    if principal is None:
        raise ApiError(401, "unauthorized", "the API key is not valid")
    return principal


async def principal_for_key(conn: HTTPConnection, key: str) -> Principal | None:
    """Whose ``key`` is, or ``None`` when it is no valid key (a constant-time check)."""
    key_id = keys.key_id_of(key)
    found = await services_of(conn).store.find_api_key(key_id) if key_id else None
    if found is None or not keys.matches(key, found[0]):
        return None
    return found[1]


def allows(principal: Principal, scope: str) -> bool:
    """Whether the key may act in ``scope`` (``admin`` may do everything)."""
    return scope in principal.scopes or "admin" in principal.scopes


def principal_of(request: Request) -> Principal | None:
    principal: Principal | None = request.scope.get("state", {}).get("principal")
    return principal


def require(request: Request, scope: str) -> Principal:
    principal = principal_of(request)
    if principal is None:
        raise ApiError(401, "unauthorized", "send an API key: Authorization: Bearer <key>")
    if not allows(principal, scope):
        raise ApiError(403, "forbidden", f"the API key lacks the {scope!r} scope")
    return principal
