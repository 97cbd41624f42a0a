"""The domain's values, shared by the store, the API and the hot path."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class Workspace:
    id: int
    name: str
    allowed_schemes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request speaks for: the workspace of an API key, and the key's scopes."""

    workspace: Workspace
    key_id: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class Variant:
    key: str
    weight: int = 1
    destination: str | None = None
    utm_content: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignSpec:
    """What a sender chooses for a campaign."""

    name: str
    slug: str
    destination: str
    utm: dict[str, str] = field(default_factory=dict)
    click_id_param: str | None = "tclid"
    attribution_window_hours: int = 168
    cost_per_message: Decimal | None = None
    currency: str | None = None
    expires_at: datetime | None = None
    fallback_url: str | None = None
    disabled: bool = False
    variants: tuple[Variant, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Campaign(CampaignSpec):
    id: int
    workspace_id: int
    created_at: datetime

    def variant(self, key: str | None) -> Variant | None:
        return next((v for v in self.variants if v.key == key), None)


class LinkRequest(NamedTuple):
    """One recipient of a bulk issue: ``ref`` is the sender's opaque id."""

    ref: str | None
    variant: str | None = None
    params: dict[str, str] | None = None
    destination: str | None = None


class IssuedLink(NamedTuple):
    ref: str | None
    code: str
    variant: str | None


class Link(NamedTuple):
    """A tuple, not a dataclass: the redirect makes one per cache miss, and a frozen
    dataclass costs a few microseconds more to build."""

    id: int
    code: str
    workspace_id: int
    campaign_id: int | None
    ref: str | None
    variant: str | None
    destination: str | None
    params: dict[str, str] | None
    created_at: datetime


class LinkTarget(NamedTuple):
    """What the redirect needs of a link: ``Link`` without what only the API shows (its
    workspace, ref and creation time), read in about half the time on a cache miss."""

    code: str
    campaign_id: int | None
    variant: str | None
    destination: str | None
    params: dict[str, str] | None


class Click(NamedTuple):
    """A hit as the redirect saw it: raw, unparsed, cheap to make on the request path."""

    link_id: int
    campaign_id: int | None
    clicked_at_ms: int
    click_id: str
    method: str
    user_agent: str
    peer: str | None  # the socket's client address
    forwarded_for: str | None  # X-Forwarded-For, kept only when proxies are trusted
    referrer: str | None


class ClickRow(NamedTuple):
    """A click as stored: classified, its address resolved and anonymised, fields truncated."""

    link_id: int
    campaign_id: int | None
    clicked_at_ms: int
    click_id: str
    method: str
    kind: str
    rule: str
    device: str
    os: str
    browser: str
    user_agent: str
    ip: str | None
    referrer: str | None
