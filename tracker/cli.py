"""The ``tracker`` command: serve, migrate, keys, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import os
import sys
from collections.abc import Sequence
from typing import Any

from tracker import agents, keys, report, signatures
from tracker import demo as demo_campaign
from tracker.config import Settings, SettingsError
from tracker.store import open_store
from tracker.store.base import Store, StoreError
from tracker.store.migrations import SchemaTooNewError

_SETTING_FLAGS = {
    "database_url": ("--database-url", "--db"),
    "base_url": ("--base-url",),
    "host": ("--host",),
    "port": ("--port",),
    "workers": ("--workers",),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    overrides = {name: getattr(args, name, None) for name in _SETTING_FLAGS}
    try:
        settings = Settings.from_env(**overrides)
        result: int = args.run(args, settings)
        return result
    except (SettingsError, StoreError, ValueError) as error:
        print(f"tracker: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate the database and serve HTTP")
    _setting_flags(serve, "database_url", "base_url", "host", "port", "workers")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    _setting_flags(migrate, "database_url")
    migrate.set_defaults(run=_migrate)

    key_commands = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = key_commands.add_parser("create", help="create an API key (printed once)")
    _setting_flags(create, "database_url")
    create.add_argument("--workspace", required=True, help="workspace name (made if new)")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=keys.SCOPES,
        help="a scope to grant; repeat for several",
    )
    create.add_argument("--label", default="", help="a note on what the key is for")
    create.set_defaults(run=_create_key)

    hook_commands = commands.add_parser(
        "webhooks", help="manage the secrets that sign server-to-server conversions"
    ).add_subparsers(dest="webhooks_command", required=True)
    rotate = hook_commands.add_parser(
        "rotate", help="make a new webhook secret (printed once); older ones verify for a while"
    )
    _setting_flags(rotate, "database_url")
    rotate.add_argument("--workspace", required=True, help="workspace name (made if new)")
    rotate.add_argument(
        "--grace-hours",
        type=int,
        default=24,
        help="how long the current secrets keep verifying (default 24; 0 ends them now)",
    )
    rotate.set_defaults(run=_rotate_secret)

    reclassify = commands.add_parser(
        "reclassify", help="re-run the current bot/preview rules over every stored click"
    )
    _setting_flags(reclassify, "database_url")
    reclassify.set_defaults(run=_reclassify)

    demo = commands.add_parser(
        "demo", help="create a demo campaign with six days of receipts, clicks and conversions"
    )
    _setting_flags(demo, "database_url", "base_url")
    demo.set_defaults(run=_demo)
    return parser


def _setting_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    for name in names:
        env = "TRACKER_" + name.upper()
        kind = int if name in ("port", "workers") else str
        parser.add_argument(*_SETTING_FLAGS[name], dest=name, type=kind, help=f"default: ${env}")


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        applied = asyncio.run(_open_and_close(settings))
    except SchemaTooNewError as error:
        print(f"tracker: {error}", file=sys.stderr)
        return 3
    print(f"database {settings.database_url}: {applied}")
    return 0


async def _open_and_close(settings: Settings) -> str:
    store = open_store(settings.database_url)
    await store.open()
    await store.close()
    return "schema up to date"


def _create_key(args: argparse.Namespace, settings: Settings) -> int:
    key = asyncio.run(_new_key(settings, args.workspace, keys.check_scopes(args.scope), args.label))
    print(key)
    return 0


async def _new_key(settings: Settings, workspace: str, scopes: frozenset[str], label: str) -> str:
    store = open_store(settings.database_url)
    await store.open()
    try:
        return await _add_key(store, workspace, scopes, label)
    finally:
        await store.close()


async def _add_key(store: Store, workspace_name: str, scopes: frozenset[str], label: str) -> str:
    workspace = await store.ensure_workspace(workspace_name)
    new = keys.generate()
    await store.add_api_key(workspace.id, new.key_id, new.key_hash, scopes, label)
    return new.key


def _rotate_secret(args: argparse.Namespace, settings: Settings) -> int:
    if not 0 <= args.grace_hours <= 24 * 30:
        raise ValueError("--grace-hours must be between 0 and 720")
    workspace_id, secret = asyncio.run(_new_secret(settings, args.workspace, args.grace_hours))
    print(f"workspace id (send it as Tracker-Workspace): {workspace_id}")
    print(secret)
    return 0


async def _new_secret(settings: Settings, workspace_name: str, grace_hours: int) -> tuple[int, str]:
    store = open_store(settings.database_url)
    await store.open()
    try:
        workspace = await store.ensure_workspace(workspace_name)
        salt = signatures.new_salt()
        await store.rotate_webhook_secret(workspace.id, salt, grace_hours * 3_600_000)
        return workspace.id, signatures.derive_secret(store.webhook_key, salt)
    finally:
        await store.close()


def _reclassify(args: argparse.Namespace, settings: Settings) -> int:
    seen, changed = asyncio.run(_run_reclassify(settings))
    print(f"{seen} clicks read, {changed} reclassified")
    return 0


async def _run_reclassify(settings: Settings) -> tuple[int, int]:
    store = open_store(settings.database_url)
    await store.open()
    try:
        return await store.reclassify_clicks(agents.classify)
    finally:
        await store.close()


# How ``tracker serve`` runs uvicorn, apart from addresses and logging (the tests' in-process
# server uses the same): X-Forwarded-For is the app's to trust (TRACKER_TRUSTED_PROXIES),
# no Server header, and redirects answered in the HTTP protocol (docs/decisions/0012).
APP = "tracker.app:create_app_from_env"  # what uvicorn imports, in each worker
STARTUP_FAILURE = 3  # uvicorn's exit status when the server could not start
UVICORN_OPTIONS = {
    "proxy_headers": False,
    "server_header": False,
    "http": "tracker.web.protocol:RedirectProtocol",
}


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    try:
        first_key = asyncio.run(_prepare(settings))
    except SchemaTooNewError as error:
        print(f"tracker: {error}", file=sys.stderr)
        return 3
    if first_key:
        _welcome(settings, first_key)
    if "://0.0.0.0" in settings.base_url:
        print(
            f"tracker: warning: short URLs will start with {settings.base_url}/, which no phone"
            " can open; set TRACKER_BASE_URL to the public address of this service",
            file=sys.stderr,
            flush=True,
        )
    # Workers are separate processes that build the app from the environment.
    os.environ.update(
        {"TRACKER_" + name.upper(): str(getattr(settings, name)) for name in _SETTING_FLAGS}
    )
    options: dict[str, Any] = {
        "factory": True,
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": _log_config(settings.log_level),
        "access_log": args.access_log,
        "timeout_graceful_shutdown": 10,
        **UVICORN_OPTIONS,
    }
    if settings.workers > 1:  # uvicorn's own server in each worker process
        uvicorn.run(APP, workers=settings.workers, **options)
        return 0
    # One worker: uvicorn.run's way, with the server that accepts waiting connections
    # together (tracker.web.server).
    from tracker.web.server import Server

    server = Server(uvicorn.Config(APP, workers=1, **options))  # whatever WEB_CONCURRENCY says
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn raises a caught Ctrl-C again
        server.run()
    return 0 if server.started else STARTUP_FAILURE


def _log_config(level: str) -> dict[str, Any]:
    """Uvicorn's logging setup, with the service's own loggers (``tracker.*``) printed
    beside uvicorn's, in the same format, from ``level`` up."""
    import uvicorn.config

    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["tracker"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


async def _prepare(settings: Settings) -> str | None:
    """Migrate, and on a database without keys make the first admin key."""
    store = open_store(settings.database_url)
    await store.open()
    try:
        if await store.count_api_keys() == 0:
            return await _add_key(store, "default", frozenset({"admin"}), "first start")
        return None
    finally:
        await store.close()


def _welcome(settings: Settings, key: str) -> None:
    base = settings.base_url.rstrip("/")
    print(
        f"""
tracker: new database {settings.database_url}; an admin key was made for workspace "default".
It is shown only this once:

    {key}

Try it:

    curl -s -X POST {base}/api/v1/campaigns -H 'Authorization: Bearer {key}' \\
      -H 'Content-Type: application/json' \\
      -d '{{"name": "Spring sale", "destination": "https://shop.example/sale"}}'
""",
        flush=True,
    )


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    demo = asyncio.run(_fill_demo(settings))
    base = settings.base_url.rstrip("/")
    total = report.totals(demo.results)
    print(f"demo workspace key (stats:read links:write): {demo.key}")
    print(
        f'campaign {demo.campaign_id} "{demo_campaign.DEMO_NAME}": {total.issued} recipients'
        " in variants A (control) and B, texted 6 days ago"
    )
    print(
        f"  receipts: {total.delivered} delivered, {total.failed} failed,"
        f" {total.receipted - total.delivered - total.failed} only sent;"
        f" {total.opted_out} opted out"
    )
    print(
        f"  clicks: {total.human_clicks} by people ({total.unique_clickers} recipients),"
        f" {total.bot_clicks} by link previews and scanners"
    )
    revenue = ", ".join(f"{c} {v}" for c, v in sorted(total.revenue.items())) or "none"
    print(f"  conversions: {total.conversions} ({total.converters} recipients); revenue {revenue}")
    for key in sorted(demo.results.counts):
        counts = demo.results.counts[key]
        print(
            f"  {key}: {counts.issued} issued, {counts.unique_clickers} clicked,"
            f" {counts.conversions} conversions"
        )
    print("a few of its links:")
    for line in demo.lines:
        print("  " + line)
    print(f"look at it (with `tracker serve` running at {base}):")
    print(f"  {base}/dashboard  (sign in with the key above)")
    print(
        f"  curl -s {base}/api/v1/campaigns/{demo.campaign_id}/stats"
        f" -H 'Authorization: Bearer {demo.key}'"
    )
    return 0


async def _fill_demo(settings: Settings) -> demo_campaign.Demo:
    store = open_store(settings.database_url, 0)  # results fold what is pending
    await store.open()
    try:
        key = await _add_key(store, "demo", frozenset({"links:write", "stats:read"}), "demo")
        return await demo_campaign.fill(store, settings, key)
    finally:
        await store.close()


if __name__ == "__main__":
    raise SystemExit(main())
