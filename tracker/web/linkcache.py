"""The redirect's view of links and campaigns, cached in process.

A link never changes once issued (docs/decisions/0004), so its route — the destination
prepared up to the per-request steps — is cached without expiry. Every link that takes its
campaign's destination as it is sits in the link index (``tracker.linkindex``, 4 bytes a
link, filled at startup by ``load_index``): met for the first time it needs no store read,
and its route is kept in a small direct-mapped table (``HOT_SLOTS``). The other links —
a destination or parameters of their own, or no campaign — are read from the store on a
miss and kept in a bounded LRU (docs/decisions/0010). What can
change is the campaign's state (disabled, expiry, fallback): campaigns are cached apart and
re-read after ``campaign_seconds``; a change made through this process's API drops the
entry at once (``forget_campaign``), so this process stops redirecting the old way
immediately and every other process within ``campaign_seconds``.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from time import monotonic
from typing import Any, NamedTuple

from tracker.linkindex import LinkIndex
from tracker.models import Campaign, LinkTarget
from tracker.store.base import LinkReader
from tracker.urls import base_destination, click_id_slot

DEFAULT_CLICK_ID_PARAM = "tclid"
# Routes of indexed links, kept where their code's hash falls: a slot taken by another code
# is overwritten (see ``LinkCache``).
HOT_SLOTS = 4096
_HOT_MASK = HOT_SLOTS - 1
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
    # variant key → a route's fields after the link id, so a link taking its campaign's
    # destination gets its route in one step: (link_id, *tails[variant])
    tails: dict[str | None, tuple[Any, ...]]
    campaign: Campaign
    fetched_at: float
    # Changes when the state above (disabled, expiry, fallback) does: a cached route made
    # under another generation is stale. A re-read that finds the same state keeps it.
    generation: int


class Route(NamedTuple):
    """The names of a route's fields. Routes themselves are plain tuples (see LinkEntry):
    ``Route(*route)`` reads one by name."""

    link_id: int
    campaign_id: int | None
    base: str
    click_id_param: str | None
    # The base's click-id slot (``Slot``), spread into two strings so a route holds no
    # tuple: (None, None) when there is none.
    before_click_id: str | None
    after_click_id: str | None
    disabled: bool
    expires_at_ms: int | None
    fallback_url: str | None


RouteTuple = tuple[
    int, int | None, str, str | None, str | None, str | None, bool, int | None, str | None
]

# A link as the LRU keeps it: (its route, the generation of its campaign's state the route
# was made under, its variant, its own prepared destination and slot — both None when the
# campaign's for the variant serve). The route is kept whole, so a hit returns it as it is.
# Plain tuples of ints, strings, Nones and tuples of strings, not NamedTuples: the garbage
# collector stops tracking such tuples at its first passes over them, so the entries of a
# full cache never count towards, or slow down, a full collection. As NamedTuples, 100 000
# of them made each full collection take 20-90 ms under the per-recipient benchmark, the
# source of its p99.
LinkEntry = tuple[RouteTuple, int, str | None, str | None, Slot]

_generations = itertools.count(1)


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
        # Indexed links don't enter the LRU: missing it costs them only the tag check and
        # decode (≈ 2 µs), while entering it — an insert and an eviction in an OrderedDict
        # of 100 000 — cost about as much, and most links are tapped once. They go to a
        # direct-mapped table instead: (code, route, campaign, generation) in the slot of
        # the code's hash, overwritten by the next code falling there. A link tapped again
        # and again stays; one tapped once costs a slot store.
        self._hot: list[tuple[str, RouteTuple, int, int] | None] = [None] * HOT_SLOTS
        self._campaigns: dict[int, CampaignRoute] = {}
        self.index = LinkIndex(index_size)

    def cached(self, code: str) -> RouteTuple | None:
        """The route of a code already in the cache (so already verified), without I/O;
        ``None`` when it is not cached or its campaign's state is due for a re-read."""
        hot = self._hot[hash(code) & _HOT_MASK]
        if hot is not None and hot[0] == code:
            _, route, campaign_id, generation = hot
        else:
            entry = self._links.get(code)
            if entry is None:
                return None
            self._links.move_to_end(code)
            route, generation = entry[0], entry[1]
            if route[1] is None:
                return route  # outside any campaign: no state to follow
            campaign_id = route[1]
        # (inline, not a method: a call here costs the hot redirect ≈ 9 % more instructions)
        campaign = self._campaigns.get(campaign_id)
        if (
            campaign is None
            or campaign.generation != generation
            or monotonic() - campaign.fetched_at >= self._campaign_seconds
        ):
            return None
        return route

    def indexed(self, code: str, link_id: int) -> RouteTuple | None:
        """The route of a verified code whose link is in the index, without I/O; ``None``
        when it is not, or its campaign is not cached or is due for a re-read."""
        pair = self.index.get(link_id)
        if pair is None:
            return None
        campaign = self._campaigns.get(pair[0])
        if (
            campaign is None
            or pair[1] not in campaign.tails
            or monotonic() - campaign.fetched_at >= self._campaign_seconds
        ):
            return None
        route = (link_id, *campaign.tails[pair[1]])
        self._hot[hash(code) & _HOT_MASK] = (code, route, campaign.id, campaign.generation)
        return route

    async def load_index(self) -> None:
        """Index the links already issued, newest ``index_size`` ids, a chunk at a time
        (each a read off the event loop, then ≈ 2 ms on it). Raises ``StoreError``."""
        started = monotonic()
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
            monotonic() - started,
        )

    async def route(self, code: str, link_id: int) -> RouteTuple | None:
        """Where ``code`` (of link ``link_id``) leads, or ``None`` for an unknown code.
        Raises ``StoreError``."""
        entry = self._links.get(code)
        if entry is None:
            found = await self._store.find_link_target(link_id)
            if found is None or found.code != code:
                return None
            if found.campaign_id is None:
                entry = _ad_hoc_entry(link_id, found)
                self._remember(code, entry)
                return entry[0]
            campaign = await self._campaign(found.campaign_id)
            if campaign is None:
                return None
            variant, own_base, own_slot = _own_base(found, campaign)
            if own_base is None:
                self.index.add(link_id, campaign.id, variant)
        else:
            self._links.move_to_end(code)
            route = entry[0]
            if route[1] is None:
                return route
            campaign = await self._campaign(route[1])
            if campaign is None:
                return None
            if campaign.generation == entry[1]:
                return route
            variant, own_base, own_slot = entry[2], entry[3], entry[4]
        route = _route(link_id, campaign, variant, own_base, own_slot)
        self._remember(code, (route, campaign.generation, variant, own_base, own_slot))
        return route

    def _remember(self, code: str, link: LinkEntry) -> None:
        self._links[code] = link
        if len(self._links) > self._size:
            self._links.popitem(last=False)

    def forget_campaign(self, campaign_id: int) -> None:
        self._campaigns.pop(campaign_id, None)

    async def _campaign(self, campaign_id: int) -> CampaignRoute | None:
        cached = self._campaigns.get(campaign_id)
        now = monotonic()
        if cached is not None and now - cached.fetched_at < self._campaign_seconds:
            return cached
        campaign = await self._store.find_campaign(campaign_id)
        if campaign is None:
            return None
        expires_at_ms = (
            None if campaign.expires_at is None else int(campaign.expires_at.timestamp() * 1000)
        )
        state = (campaign.disabled, expires_at_ms, campaign.fallback_url)
        if cached is not None and cached.campaign.variants == campaign.variants:
            bases = cached.bases  # destinations and UTM never change after creation
            slots = cached.slots
            same = state == (cached.disabled, cached.expires_at_ms, cached.fallback_url)
            generation = cached.generation if same else next(_generations)
        else:
            generation = next(_generations)
            bases = {v.key: _campaign_base(campaign, v.key) for v in campaign.variants}
            bases[None] = _campaign_base(campaign, None)
            slots = {key: _slot(base, campaign.click_id_param) for key, base in bases.items()}
        tails = {
            key: (campaign.id, base, campaign.click_id_param, *_spread(slots[key]), *state)
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
            generation,
        )
        self._campaigns[campaign_id] = route
        return route


def _route(
    link_id: int, campaign: CampaignRoute, variant: str | None, base: str | None, slot: Slot
) -> RouteTuple:
    """The route of a campaign's link: the campaign's for its variant, or its own ``base``."""
    if base is None:
        return (link_id, *campaign.tails[variant])
    return (
        link_id,
        campaign.id,
        base,
        campaign.click_id_param,
        *_spread(slot),
        campaign.disabled,
        campaign.expires_at_ms,
        campaign.fallback_url,
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


def _ad_hoc_entry(link_id: int, link: LinkTarget) -> LinkEntry:
    """The cache entry of a link outside any campaign: it always has a base of its own."""
    base = base_destination(link.destination or "", {}, link.params)
    slot = _slot(base, DEFAULT_CLICK_ID_PARAM)
    route = (link_id, None, base, DEFAULT_CLICK_ID_PARAM, *_spread(slot), False, None, None)
    return (route, 0, None, base, slot)


def _own_base(link: LinkTarget, campaign: CampaignRoute) -> tuple[str | None, str | None, Slot]:
    """(variant, base, slot) of a campaign's link: its own prepared destination and slot
    when they differ from its campaign's, else None for both."""
    if link.destination is None and not link.params and link.variant in campaign.bases:
        return link.variant, None, None
    c = campaign.campaign
    destination = link.destination or _destination(c, link.variant)
    base = base_destination(destination, _utm(c, link.variant), link.params)
    return link.variant, base, _slot(base, c.click_id_param)


def _slot(base: str, click_id_param: str | None) -> Slot:
    return None if click_id_param is None else click_id_slot(base, click_id_param)


def _spread(slot: Slot) -> tuple[str, str] | tuple[None, None]:
    return (None, None) if slot is None else slot
