"""Settings, read once from ``TRACKER_*`` environment variables and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from tracker.addresses import Network, parse_networks


class SettingsError(ValueError):
    """A ``TRACKER_*`` variable holds a value that cannot be used."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service can be configured with.

    Each field is read from ``TRACKER_<FIELD NAME IN CAPITALS>``; the README lists them all.
    """

    database_url: str = "sqlite:///tracker.db"
    base_url: str = ""  # empty: http://<host>:<port>
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_json_bytes: int = 8 * 1024 * 1024
    max_line_bytes: int = 64 * 1024
    max_signed_bytes: int = 64 * 1024 * 1024  # a signed body is read whole before it is used
    log_level: str = "info"
    click_durability: str = "durable"  # or "fast"; see docs/decisions/0005
    click_queue_size: int = 100_000
    click_batch_size: int = 1_000
    click_retry_seconds: int = 60
    click_writer: str = "process"  # or "thread"; see docs/decisions/0011
    link_cache_size: int = 100_000
    link_index_size: int = 10_000_000  # newest link ids indexed, 4 bytes each; 0: none
    campaign_cache_seconds: int = 5
    rollup_seconds: int = 1  # 0: no background fold (stats fold what is pending)
    ip_storage: str = "truncated"  # or "full" or "none"
    trusted_proxies: str = ""  # comma-separated addresses or networks

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the settings from ``environ`` (default: the process environment).

        Keyword ``overrides`` (e.g. from command-line flags) win over the environment;
        ``None`` overrides are ignored.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = env.get("TRACKER_" + field.name.upper())
            if raw is None:
                continue
            values[field.name] = _convert(field.name, field.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.check()
        return settings

    def __post_init__(self) -> None:
        if not self.base_url:
            object.__setattr__(self, "base_url", f"http://{self.host}:{self.port}")

    def check(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise SettingsError("TRACKER_BASE_URL must start with http:// or https://")
        if self.workers < 1:
            raise SettingsError("TRACKER_WORKERS must be at least 1")
        if not 0 < self.port < 65536:
            raise SettingsError("TRACKER_PORT must be between 1 and 65535")
        if min(self.max_json_bytes, self.max_line_bytes, self.max_signed_bytes) < 1024:
            raise SettingsError("body limits must be at least 1024 bytes")
        if self.click_durability not in ("durable", "fast"):
            raise SettingsError("TRACKER_CLICK_DURABILITY must be durable or fast")
        if self.click_writer not in ("process", "thread"):
            raise SettingsError("TRACKER_CLICK_WRITER must be process or thread")
        if self.ip_storage not in ("truncated", "full", "none"):
            raise SettingsError("TRACKER_IP_STORAGE must be truncated, full or none")
        for name in ("click_queue_size", "click_batch_size", "link_cache_size"):
            if getattr(self, name) < 1:
                raise SettingsError(f"TRACKER_{name.upper()} must be at least 1")
        if self.click_batch_size > 2000:
            raise SettingsError("TRACKER_CLICK_BATCH_SIZE must be at most 2000")
        for name in (
            "click_retry_seconds",
            "campaign_cache_seconds",
            "rollup_seconds",
            "link_index_size",
        ):
            if getattr(self, name) < 0:
                raise SettingsError(f"TRACKER_{name.upper()} must not be negative")
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as error:
            raise SettingsError(f"TRACKER_TRUSTED_PROXIES: {error}") from None

    @property
    def proxy_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def short_url_prefix(self) -> str:
        """``base_url`` with exactly one trailing slash: a code appended gives the short URL."""
        return self.base_url.rstrip("/") + "/"


def _convert(name: str, kind: object, raw: str) -> Any:
    if kind in (int, "int"):
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"TRACKER_{name.upper()} must be an integer, not {raw!r}") from None
    return raw
