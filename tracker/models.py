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


# A Click's fields as a plain tuple, in its order: what the redirect makes and queues. Its
# tuple is built in one step (a NamedTuple's constructor is a Python call), and orjson
# writes it to the click process without a callback per click. A Click is one of these.
ClickFields = tuple[int, int | None, int, str, str, str, str | None, str | None, str | None]


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


class ConversionInput(NamedTuple):
    """A conversion as the shop reported it, validated."""

    event: str
    occurred_at_ms: int
    source: str  # pixel | snippet | webhook | api
    click_id: str | None = None
    campaign_id: int | None = None
    ref: str | None = None
    order_id: str | None = None
    value: Decimal | None = None
    currency: str | None = None


class ConversionResult(NamedTuple):
    id: int
    duplicate: bool
    campaign_id: int | None  # set when attributed
    variant: str | None
    reason: str | None  # set when not attributed

    @property
    def attributed(self) -> bool:
        return self.reason is None


class MessageEvent(NamedTuple):
    """A delivery receipt or opt-out for one recipient, named by ``ref`` or by ``code``."""

    status: str  # sent | delivered | failed | opted_out
    at_ms: int
    ref: str | None = None
    code: str | None = None
    error: str | None = None


class EventsResult(NamedTuple):
    recorded: int
    duplicates: int
    unknown: list[int]  # indexes (in the batch given) of events naming no link of the campaign


class WebhookSecret(NamedTuple):
    id: int
    salt: bytes
    created_at: datetime
    expires_at: datetime | None  # None: current, with no end


@dataclass
class Counts:
    """What is counted for a campaign or one of its variants."""

    issued: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    opted_out: int = 0
    receipted: int = 0  # links with any of sent, delivered, failed
    human_clicks: int = 0
    bot_clicks: int = 0
    unique_clickers: int = 0
    conversions: int = 0
    converters: int = 0
    revenue: dict[str, Decimal] = field(default_factory=dict)  # per currency

    def add(self, other: Counts) -> None:
        for name in (
            "issued", "sent", "delivered", "failed", "opted_out", "receipted",
            "human_clicks", "bot_clicks", "unique_clickers", "conversions", "converters",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for currency, amount in other.revenue.items():
            self.revenue[currency] = self.revenue.get(currency, Decimal(0)) + amount


@dataclass
class CampaignResults:
    counts: dict[str, Counts] = field(default_factory=dict)  # by variant ('' = none)
    hours: dict[int, list[int]] = field(default_factory=dict)  # hour → [human, bot, conv.]
    devices: dict[tuple[str, str], int] = field(default_factory=dict)  # human clicks
    # time to first click: rollup.delay_bucket → clickers (see tracker.rollup)
    first_click_buckets: dict[int, int] = field(default_factory=dict)

    def variant(self, key: str) -> Counts:
        return self.counts.setdefault(key, Counts())


RECIPIENT_FILTERS = ("delivered_not_clicked", "clicked_not_converted")  # retargeting lists


@dataclass
class RecipientRow:
    ref: str
    code: str
    variant: str | None
    status: str | None  # the latest receipt
    first_click_at: int | None  # ms; the first human click
    human_clicks: int
    bot_clicks: int
    conversions: int
    revenue: dict[str, Decimal]
