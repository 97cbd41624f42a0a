"""The redirect's view of links and campaigns, cached in process.

A link never changes once issued (docs/decisions/0004), so its entry — the destination
prepared up to the per-request steps — is cached without expiry in a bounded LRU, and every
link that takes its campaign's destination as it is also sits in the link index
(``tracker.linkindex``, 4 bytes a link, filled at startup by ``load_index``): a link met for
the first time then needs no store read either (docs/decisions/0010). What can
change is the campaign's state (disabled, expiry, fallback): campaigns are cached apart and
re-read after ``campaign_seconds``; a change made through this process's API drops the
entry at once (``forget_campaign``), so this process stops redirecting the old way
immediately and every other process within ``campaign_seconds``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any, NamedTuple

from tracker.linkindex import LinkIndex
from tracker.models import Campaign, LinkTarget
from tracker.store.base import LinkReader
from tracker.urls import base_destination, click_id_slot

DEFAULT_CLICK_ID_PARAM = "tclid"
INDEX_CHUNK = 5_000  # link ids read per step of ``load_index`` (≈ 2 ms on the event loop)

log = logging.getLogger("tracker.links")


# ``urls.click_id_slot`` of a base: (before, after) the click id in the Location of a
# request without passthrough; None when the click id is off or the slow path must run.
Slot = tuple[str, str] | None


class CampaignRoute(NamedTuple):
    id: int
    click_id_param: str | None
    disabled: bool
    expires_at_ms: int | None
    fallback_url: str | None
    bases: dict[str | None, str]  # variant key (None: no variant) → prepared destination
    slots: dict[str | None, Slot]  # variant key → where the click id goes in its base
    # variant key → a Route's fields after the link id, so a link taking its campaign's
    # destination gets its route in one step: Route(link_id, *tails[variant])
    tails: dict[str | None, tuple[Any, ...]]
    campaign: Campaign
    fetched_at: float


# A link as the LRU keeps it: (link id, campaign id, variant, its own prepared destination
# and slot — both None when the campaign's for the variant serve). A plain tuple of ints,
# strings, Nones and a tuple of strings, not a NamedTuple: the garbage collector stops
# tracking such tuples at its first pass over them, so the entries of a full cache never
# count towards, or slow down, a full collection. As NamedTuples, 100 000 of them made each
# full collection take 20-90 ms under the per-recipient benchmark, the source of its p99.
LinkEntry = tuple[int, int | None, str | None, str | None, Slot]


# A NamedTuple's own constructor is a Python function (≈ 0.7 µs); the routes made per
# request are built with tuple.__new__ (≈ 0.3 µs), as are the clicks (redirect.py).
_new = tuple.__new__


class Route(NamedTuple):
    link_id: int
    campaign_id: int | None
    base: str
    click_id_param: str | None
    click_id_slot: Slot
    disabled: bool
    expires_at_ms: int | None
    fallback_url: str | None


class LinkCache:
    def __init__(
        self,
        store: LinkReader,
        size: int = 100_000,
        campaign_seconds: float = 5,
        index_size: int = 10_000_000,
    ) -> None:
        self._store = store
        self._size = size
        self._campaign_seconds = campaign_seconds
        self._links: OrderedDict[str, LinkEntry] = OrderedDict()
        self._campaigns: dict[int, CampaignRoute] = {}
        self.index = LinkIndex(index_size)

    def cached(self, code: str) -> Route | None:
        """The route of a code already in the cache (so already verified), without I/O;
        ``None`` when it is not cached or its campaign's state is due for a re-read."""
        link = self._links.get(code)
        if link is None:
            return None
        if link[1] is None:
            self._links.move_to_end(code)
            return _own_route(link)
        campaign = self._campaigns.get(link[1])
        if campaign is None or time.monotonic() - campaign.fetched_at >= self._campaign_seconds:
            return None
        self._links.move_to_end(code)
        return _route(link, campaign)

    def indexed(self, code: str, link_id: int) -> Route | None:
        """The route of a verified code whose link is in the index, without I/O; ``None``
        when it is not, or its campaign is not cached or is due for a re-read."""
        pair = self.index.get(link_id)
        if pair is None:
            return None
        campaign = self._campaigns.get(pair[0])
        if (
            campaign is None
            or pair[1] not in campaign.bases
            or time.monotonic() - campaign.fetched_at >= self._campaign_seconds
        ):
            return None
        link = (link_id, pair[0], pair[1], None, None)
        self._remember(code, link)
        return _route(link, campaign)

    async def load_index(self) -> None:
        """Index the links already issued, newest ``index_size`` ids, a chunk at a time
        (each a read off the event loop, then ≈ 2 ms on it). Raises ``StoreError``."""
        started = time.monotonic()
        newest = await self._store.newest_link_id()
        first = self.index.cover(newest)
        loaded = 0
        for start in range(first, newest + 1, INDEX_CHUNK):
            chunk = await self._store.campaign_links(
                start, min(start + INDEX_CHUNK, newest + 1) - 1
            )
            self.index.add_many(chunk)
            loaded += len(chunk)
        log.info(
            "link index: %d links up to id %d in %.1f s",
            loaded,
            newest,
            time.monotonic() - started,
        )

    async def route(self, code: str, link_id: int) -> Route | None:
        """Where ``code`` (of link ``link_id``) leads, or ``None`` for an unknown code.
        Raises ``StoreError``."""
        link = self._links.get(code)
        if link is None:
            found = await self._store.find_link_target(link_id)
            if found is None or found.code != code:
                return None
            campaign = None
            if found.campaign_id is not None:
                campaign = await self._campaign(found.campaign_id)
                if campaign is None:
                    return None
            link = _link_entry(link_id, found, campaign)
            if campaign is not None and link[3] is None:
                self.index.add(link_id, campaign.id, link[2])
            self._remember(code, link)
        else:
            self._links.move_to_end(code)
        if link[1] is None:
            return _own_route(link)
        campaign = await self._campaign(link[1])
        return None if campaign is None else _route(link, campaign)

    def _remember(self, code: str, link: LinkEntry) -> None:
        self._links[code] = link
        if len(self._links) > self._size:
            self._links.popitem(last=False)

    def forget_campaign(self, campaign_id: int) -> None:
        self._campaigns.pop(campaign_id, None)

    async def _campaign(self, campaign_id: int) -> CampaignRoute | None:
        cached = self._campaigns.get(campaign_id)
        now = time.monotonic()
        if cached is not None and now - cached.fetched_at < self._campaign_seconds:
            return cached
        campaign = await self._store.find_campaign(campaign_id)
        if campaign is None:
            return None
        if cached is not None and cached.campaign.variants == campaign.variants:
            bases = cached.bases  # destinations and UTM never change after creation
            slots = cached.slots
        else:
            bases = {v.key: _campaign_base(campaign, v.key) for v in campaign.variants}
            bases[None] = _campaign_base(campaign, None)
            slots = {key: _slot(base, campaign.click_id_param) for key, base in bases.items()}
        expires_at_ms = (
            None if campaign.expires_at is None else int(campaign.expires_at.timestamp() * 1000)
        )
        state = (campaign.disabled, expires_at_ms, campaign.fallback_url)
        tails = {
            key: (campaign.id, base, campaign.click_id_param, slots[key], *state)
            for key, base in bases.items()
        }
        route = CampaignRoute(
            campaign.id,
            campaign.click_id_param,
            *state,
            bases,
            slots,
            tails,
            campaign,
            now,
        )
        self._campaigns[campaign_id] = route
        return route


def _own_route(link: LinkEntry) -> Route:
    """The route of a link outside any campaign (its entry always holds its own base)."""
    link_id, _, _, base, slot = link
    assert base is not None
    return _new(Route, (link_id, None, base, DEFAULT_CLICK_ID_PARAM, slot, False, None, None))


def _route(link: LinkEntry, campaign: CampaignRoute) -> Route:
    link_id, _, variant, base, slot = link
    if base is None:
        return _new(Route, (link_id, *campaign.tails[variant]))
    return _new(
        Route,
        (
            link_id,
            campaign.id,
            base,
            campaign.click_id_param,
            slot,
            campaign.disabled,
            campaign.expires_at_ms,
            campaign.fallback_url,
        ),
    )


def _utm(campaign: Campaign, variant_key: str | None) -> dict[str, str]:
    variant = campaign.variant(variant_key)
    if variant is None or variant.utm_content is None:
        return campaign.utm
    return {**campaign.utm, "utm_content": variant.utm_content}


def _destination(campaign: Campaign, variant_key: str | None) -> str:
    variant = campaign.variant(variant_key)
    if variant is not None and variant.destination is not None:
        return variant.destination
    return campaign.destination


def _campaign_base(campaign: Campaign, variant_key: str | None) -> str:
    return base_destination(_destination(campaign, variant_key), _utm(campaign, variant_key), None)


def _link_entry(link_id: int, link: LinkTarget, campaign: CampaignRoute | None) -> LinkEntry:
    """The link's cache entry, with its own prepared destination when it differs from its
    campaign's."""
    if campaign is None:
        base = base_destination(link.destination or "", {}, link.params)
        slot = _slot(base, DEFAULT_CLICK_ID_PARAM)
        return (link_id, link.campaign_id, link.variant, base, slot)
    if link.destination is None and not link.params and link.variant in campaign.bases:
        return (link_id, link.campaign_id, link.variant, None, None)
    c = campaign.campaign
    destination = link.destination or _destination(c, link.variant)
    base = base_destination(destination, _utm(c, link.variant), link.params)
    return (link_id, link.campaign_id, link.variant, base, _slot(base, c.click_id_param))


def _slot(base: str, click_id_param: str | None) -> Slot:
    return None if click_id_param is None else click_id_slot(base, click_id_param)
