"""The dashboard's pages: sign-in, the campaigns list, a campaign's results.

Signed in means a session cookie (signed, HttpOnly, SameSite=Lax, path /dashboard) that
names an API key holding ``stats:read``; the key itself is never stored in it, and every
page checks that the key still exists, so revoking it signs its sessions out.
"""

from __future__ import annotations

import hashlib
import hmac
import weakref
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.datastructures import Secret
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from tracker import report
from tracker.models import RECIPIENT_FILTERS, Campaign, Principal
from tracker.web.api.auth import allows, principal_for_key
from tracker.web.api.body import read_body
from tracker.web.api.campaigns import parse_id
from tracker.web.api.stats import csv_download
from tracker.web.dashboard import charts
from tracker.web.errors import ApiError
from tracker.web.services import Services, services_of

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
SORTS = ("name", "created", "issued", "ctr", "conversion_rate", "revenue", "roi")
MAX_LISTED = 200
METRIC_NAMES = {"ctr": "CTR", "conversion_rate": "conversion rate"}
SESSION_SECONDS = 12 * 3600
MAX_FORM_BYTES = 4096
# No script at all, styles only inline, forms only to us, never in a frame.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self';"
    " frame-ancestors 'none'"
)


def number(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:,.1f} %"


def p_value(p: float | None) -> str:
    if p is None:
        return "—"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def money(amount: str | None, currency: str | None = None) -> str:
    if amount is None:
        return "—"
    text = format(Decimal(amount), ",f")
    return f"{text} {currency}" if currency else text


def revenue(by_currency: dict[str, str]) -> str:
    return " + ".join(money(v, c) for c, v in by_currency.items()) or "—"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 89.5:
        return f"{seconds:.0f} s"
    if seconds < 89.5 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def verdict(variant: dict[str, Any], control: str, metric: str) -> str:
    """A comparison in plain words."""
    c = variant["vs_control"][metric]
    name = METRIC_NAMES[metric]
    if c["significant"]:
        verb = "beats" if c["lift"] > 0 else "trails"
        return f"{variant['key']} {verb} {control} on {name}, 95 % confidence"
    if c["more_recipients_needed"]:
        return f"not enough data yet: about {c['more_recipients_needed']:,} more recipients needed"
    if c["p_value"] is None:
        return "not enough data yet"
    return f"no difference on {name} so far"


templates.env.filters.update(
    number=number, percent=percent, money=money, revenue=revenue, duration=duration,
    p_value=p_value,
)  # fmt: skip


class Sessions:
    """Starlette's SessionMiddleware, keyed once the store is open: the signing key is
    derived from the server secret, so sessions survive restarts and work across workers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # One per app (its own secret and settings); forgotten with the app.
        self._inner: weakref.WeakKeyDictionary[Services, SessionMiddleware] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = scope["app"].state.services
        inner = self._inner.get(services)
        if inner is None:
            secret = hmac.new(services.store.code_secret, b"dashboard session", hashlib.sha256)
            inner = self._inner[services] = SessionMiddleware(
                self.app,
                secret_key=Secret(secret.hexdigest()),
                session_cookie="tracker_session",
                max_age=SESSION_SECONDS,
                path="/dashboard",
                same_site="lax",
                https_only=services.settings.base_url.startswith("https://"),
            )
        await inner(scope, receive, send)


async def signed_in(request: Request) -> Principal | None:
    key_id = request.session.get("key_id")
    if not isinstance(key_id, str):
        return None
    found = await services_of(request).store.find_api_key(key_id)
    if found is None or not allows(found[1], "stats:read"):
        request.session.clear()
        return None
    return found[1]


async def login_page(request: Request) -> Response:
    return _page(request, "login.html", {"next": _next(request.query_params.get("next"))})


async def login(request: Request) -> Response:
    if not _same_origin(request):
        return _page(request, "login.html", {"next": "/dashboard", "error": CROSS_SITE}, 403)
    try:
        body = await read_body(request, MAX_FORM_BYTES)
    except ApiError:
        return _page(request, "login.html", {"next": "/dashboard", "error": TOO_LONG}, 413)
    form = parse_qs(body.decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    target = _next((form.get("next") or [""])[0])
    principal = await principal_for_key(request, key)
    if principal is None:
        error = "That API key is not valid."
    elif not allows(principal, "stats:read"):
        error = "That API key cannot read results: it needs the stats:read scope."
    else:
        request.session.clear()
        request.session["key_id"] = principal.key_id
        return RedirectResponse(target, status_code=303)
    return _page(request, "login.html", {"next": target, "error": error}, status_code=401)


async def logout(request: Request) -> Response:
    if not _same_origin(request):
        return _page(request, "login.html", {"next": "/dashboard", "error": CROSS_SITE}, 403)
    request.session.clear()
    return RedirectResponse("/dashboard/login", status_code=303)


async def campaigns_page(request: Request) -> Response:
    principal = await signed_in(request)
    if principal is None:
        return _to_login(request)
    store = services_of(request).store
    rows = []
    for campaign in await store.list_campaigns(principal.workspace.id, MAX_LISTED, None):
        kpis = report.headline(campaign, await store.campaign_results(campaign.id))
        rows.append({"campaign": campaign, "kpis": kpis})
    sort = request.query_params.get("sort", "created")
    sort = sort if sort in SORTS else "created"
    descending = request.query_params.get("dir", "desc") != "asc"
    rows.sort(key=lambda row: _sort_key(row, sort), reverse=descending)
    return _page(
        request,
        "campaigns.html",
        {
            "rows": rows,
            "sort": sort,
            "descending": descending,
            "principal": principal,
            "limited": len(rows) == MAX_LISTED,
        },
    )


async def campaign_page(request: Request) -> Response:
    principal = await signed_in(request)
    if principal is None:
        return _to_login(request)
    campaign = await _campaign(request, principal)
    if campaign is None:
        return _page(request, "missing.html", {"principal": principal}, status_code=404)
    bucket = request.query_params.get("bucket", "day")
    bucket = bucket if bucket in report.BUCKETS else "day"
    results = await services_of(request).store.campaign_results(campaign.id)
    note = None
    try:
        stats = report.document(campaign, results, bucket=bucket)
    except report.TooManyPoints:
        note = f"Too many hours to draw one bar each (at most {report.MAX_POINTS:,}): by day."
        bucket = "day"
        stats = report.document(campaign, results, bucket=bucket)
    totals = stats["totals"]
    control = stats["variants"][0]["key"] if stats["variants"] else None
    context = {
        "principal": principal,
        "campaign": campaign,
        "stats": stats,
        "totals": totals,
        "bucket": bucket,
        "funnel": charts.funnel(totals),
        "clicks": charts.split(
            [("Human", totals["human_clicks"]), ("Bots and previews", totals["bot_clicks"])]
        ),
        "devices": charts.split([(d["device"], d["human_clicks"]) for d in stats["devices"]]),
        "series": charts.series(stats["series"]["points"]),
        "control": control,
        "verdicts": {
            v["key"]: {m: verdict(v, control or "", m) for m in METRIC_NAMES}
            for v in stats["variants"][1:]
        },
        "snippet": services_of(request).settings.short_url_prefix + "t.js",
        "series_note": note,
    }
    return _page(request, "campaign.html", context)


async def recipients_csv(request: Request) -> Response:
    principal = await signed_in(request)
    if principal is None:
        return _to_login(request)
    campaign = await _campaign(request, principal)
    only = request.query_params.get("only")
    if campaign is None or (only is not None and only not in RECIPIENT_FILTERS):
        return _page(request, "missing.html", {"principal": principal}, status_code=404)
    return csv_download(services_of(request), campaign, only, for_spreadsheets=True)


CROSS_SITE = "Sign-in forms are accepted only from this site's own pages."
TOO_LONG = "That form was too long."


def _same_origin(request: Request) -> bool:
    """A form posted from another site (login CSRF) is refused. Browsers send Origin with
    a POST, and Sec-Fetch-Site where they know it; a request with neither is not a
    browser's cross-site form."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def _campaign(request: Request, principal: Principal) -> Campaign | None:
    campaign_id = parse_id(request.path_params["campaign_id"])
    if campaign_id is None:
        return None
    return await services_of(request).store.get_campaign(principal.workspace.id, campaign_id)


def _sort_key(row: dict[str, Any], sort: str) -> Any:
    campaign, kpis = row["campaign"], row["kpis"]
    if sort == "name":
        return campaign.name.lower()
    if sort == "created":
        return campaign.created_at
    if sort == "revenue":  # by currency, then amount: sums in different money mean nothing
        return sorted((c, Decimal(v)) for c, v in kpis["revenue"].items())
    value = kpis[sort]
    return (value is not None, value or 0)  # campaigns without the number sort last


def _next(target: str | None) -> str:
    """Only a dashboard path: never an open redirect to another site."""
    if target and target.startswith("/dashboard") and "//" not in target and "\\" not in target:
        return target
    return "/dashboard"


def _to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/dashboard/login?next={quote(target)}", status_code=303)


def _page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = CSP
    return response
