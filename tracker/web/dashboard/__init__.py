"""``/dashboard``: server-rendered pages over the same results as the stats API."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from tracker.web.dashboard import views

DASHBOARD = Mount(
    "/dashboard",
    routes=[
        Route("/", views.campaigns_page, methods=["GET"]),
        Route("/login", views.login_page, methods=["GET"]),
        Route("/login", views.login, methods=["POST"]),
        Route("/logout", views.logout, methods=["POST"]),
        Route("/campaigns/{campaign_id}", views.campaign_page, methods=["GET"]),
        Route("/campaigns/{campaign_id}/recipients.csv", views.recipients_csv, methods=["GET"]),
    ],
    middleware=[Middleware(views.Sessions)],
)
