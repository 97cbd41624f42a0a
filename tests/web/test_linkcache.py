from __future__ import annotations

import gc
from datetime import UTC, datetime

import pytest

from tracker.models import Campaign, LinkTarget, Variant
from tracker.store.base import StoreError
from tracker.web.linkcache import LinkCache

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CAMPAIGN = Campaign(
    id=7,
    workspace_id=1,
    created_at=NOW,
    name="c",
    slug="c",
    destination="https://shop.example/",
    utm={"utm_source": "sms"},
    variants=(Variant("A", 1, None, "A"), Variant("B", 1, "https://shop.example/b", "bee")),
)


class AdHocReader:
    """Links without a campaign, each with its own destination."""

    def __init__(self) -> None:
        self.link_reads: list[int] = []

    async def find_link_target(self, link_id: int) -> LinkTarget | None:
        self.link_reads.append(link_id)
        return LinkTarget(f"c{link_id}", None, None, f"https://x.example/{link_id}", None)

    async def find_campaign(self, campaign_id: int) -> Campaign | None:
        return None


class Reader:
    def __init__(self) -> None:
        self.link_reads: list[str] = []
        self.campaign_reads = 0
        self.campaign = CAMPAIGN
        self.fail = False

    async def find_link_target(self, link_id: int) -> LinkTarget | None:
        if self.fail:
            raise StoreError("locked")
        code = f"c{link_id}"
        self.link_reads.append(code)
        if link_id >= 1000:
            return None
        n = link_id
        variant = "AB"[n % 2]
        params = {"p": str(n)} if n % 3 == 0 else None
        return LinkTarget(code, 7, variant, None, params)

    async def find_campaign(self, campaign_id: int) -> Campaign | None:
        self.campaign_reads += 1
        return self.campaign if campaign_id == 7 else None


async def test_routes_and_bases() -> None:
    cache = LinkCache(Reader())
    a = await cache.route("c1", 1)  # variant B, no params: the campaign's variant base
    b = await cache.route("c3", 3)  # variant B, params: its own base
    assert a is not None and b is not None
    assert a.base == "https://shop.example/b?utm_source=sms&utm_content=bee"
    assert b.base == "https://shop.example/b?utm_source=sms&utm_content=bee&p=3"
    assert a.click_id_param == "tclid"
    assert await cache.route("c1000", 1000) is None  # no such link
    assert await cache.route("c9", 1) is None  # the row's code differs: not that link


async def test_lru_is_bounded_and_hits_need_no_read() -> None:
    reader = Reader()
    cache = LinkCache(reader, size=3)
    for code in ("c1", "c2", "c3"):
        await cache.route(code, int(code[1:]))
    assert cache.cached("c1") is not None  # refreshes c1
    await cache.route("c4", 4)  # evicts the least recently used: c2
    assert cache.cached("c2") is None
    assert cache.cached("c1") is not None
    reads = len(reader.link_reads)
    for _ in range(5):
        await cache.route("c4", 4)
    assert len(reader.link_reads) == reads
    assert reader.campaign_reads == 1


async def test_campaign_state_is_reread_after_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = Reader()
    cache = LinkCache(reader, campaign_seconds=60)
    assert (await cache.route("c1", 1)).disabled is False  # type: ignore[union-attr]
    from dataclasses import replace

    reader.campaign = replace(CAMPAIGN, disabled=True)
    assert cache.cached("c1").disabled is False  # type: ignore[union-attr]
    cache.forget_campaign(7)
    assert cache.cached("c1") is None  # must go to the store now
    assert (await cache.route("c1", 1)).disabled is True  # type: ignore[union-attr]


async def test_store_errors_propagate() -> None:
    reader = Reader()
    reader.fail = True
    with pytest.raises(StoreError):
        await LinkCache(reader).route("c1", 1)


async def test_cached_links_leave_the_garbage_collector_alone() -> None:
    """Entries are plain tuples of untracked values: the collector stops tracking them on
    its first passes (one for the tuple inside, one for the entry), long before they get
    old, so a full cache adds nothing to its full collections."""
    cache = LinkCache(Reader())
    await cache.route("c1", 1)  # the campaign's base
    await cache.route("c3", 3)  # params: a base of its own
    gc.collect(0)
    gc.collect(1)
    assert not any(gc.is_tracked(entry) for entry in cache._links.values())


async def test_a_hit_on_an_ad_hoc_link_keeps_it_in_the_cache() -> None:
    reader = AdHocReader()
    cache = LinkCache(reader, size=2)  # type: ignore[arg-type]
    for n in (1, 2):
        assert await cache.route(f"c{n}", n) is not None
    assert cache.cached("c1") is not None  # c1 is now the most recent
    await cache.route("c3", 3)  # evicts the least recent: c2, not c1
    assert cache.cached("c1") is not None
    assert cache.cached("c2") is None
    assert reader.link_reads == [1, 2, 3]
