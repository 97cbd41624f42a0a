from __future__ import annotations

import gc
from datetime import UTC, datetime

import pytest

from tracker.models import Campaign, LinkTarget, Variant
from tracker.store.base import StoreError
from tracker.web import linkcache
from tracker.web.linkcache import LinkCache, Route, RouteTuple

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


def named(route: RouteTuple | None) -> Route:
    assert route is not None
    return Route(*route)


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
        self.index_reads: list[tuple[int, int]] = []
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

    async def newest_link_id(self) -> int:
        return 999

    async def campaign_links(self, first_id: int, last_id: int) -> list[tuple[int, int, str]]:
        """What ``find_link_target`` says, for the links with no params of their own."""
        if self.fail:
            raise StoreError("locked")
        self.index_reads.append((first_id, last_id))
        return [(n, 7, "AB"[n % 2]) for n in range(first_id, last_id + 1) if n % 3]


async def test_routes_and_bases() -> None:
    cache = LinkCache(Reader())
    a = named(await cache.route("c1", 1))  # variant B, no params: the campaign's variant base
    b = named(await cache.route("c3", 3))  # variant B, params: its own base
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
    assert named(await cache.route("c1", 1)).disabled is False
    from dataclasses import replace

    reader.campaign = replace(CAMPAIGN, disabled=True)
    assert named(cache.cached("c1")).disabled is False
    cache.forget_campaign(7)
    assert cache.cached("c1") is None  # must go to the store now
    assert named(await cache.route("c1", 1)).disabled is True


async def test_cached_routes_follow_a_changed_campaign_and_outlive_an_unchanged_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataclasses import replace

    clock = [1000.0]
    monkeypatch.setattr(linkcache, "monotonic", lambda: clock[0])
    reader = Reader()
    cache = LinkCache(reader, campaign_seconds=60)
    await cache.route("c1", 1)  # the campaign's base
    await cache.route("c3", 3)  # a base of its own
    before = (cache.cached("c1"), cache.cached("c3"))
    clock[0] += 60
    assert cache.cached("c1") is None  # the campaign is due for a re-read
    await cache.route("c2", 2)  # re-reads the campaign: the same state
    assert reader.campaign_reads == 2
    assert (cache.cached("c1"), cache.cached("c3")) == before  # still served from the LRU
    reader.campaign = replace(CAMPAIGN, disabled=True, fallback_url="https://shop.example/x")
    clock[0] += 60
    await cache.route("c2", 2)  # re-reads the campaign: a new state
    assert cache.cached("c1") is None and cache.cached("c3") is None  # made under the old one
    reads = len(reader.link_reads)
    for code, old in zip(("c1", "c3"), before, strict=True):
        route = named(await cache.route(code, int(code[1:])))
        assert route.disabled and route.fallback_url == "https://shop.example/x"
        assert route._replace(disabled=False, fallback_url=None) == old  # the rest as before
        assert cache.cached(code) == route
    assert len(reader.link_reads) == reads  # rebuilt from the entries, no link read


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
    await cache.load_index()
    await cache.route("c1", 1)  # the campaign's base
    await cache.route("c3", 3)  # params: a base of its own
    assert cache.indexed("c4", 4) is not None  # into the hot table
    gc.collect(0)
    gc.collect(1)
    assert not any(gc.is_tracked(entry) for entry in cache._links.values())
    hot = [entry for entry in cache._hot if entry is not None]
    assert hot and not any(gc.is_tracked(entry) for entry in hot)


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


async def test_indexed_links_need_no_link_read() -> None:
    reader = Reader()
    cache = LinkCache(reader, size=10)
    await cache.load_index()
    assert reader.index_reads[0] == (1, 999)
    assert cache.indexed("c1", 1) is None  # the campaign is not cached yet
    first = await cache.route("c2", 2)  # reads the link and the campaign
    assert reader.link_reads == ["c2"]
    for n in (1, 2, 4, 5, 500, 998):
        route = cache.indexed(f"c{n}", n)
        assert route is not None, n
        assert route == await LinkCache(Reader()).route(f"c{n}", n)  # as the store says
    assert first == cache.indexed("c2", 2)
    assert reader.link_reads == ["c2"]
    assert reader.campaign_reads == 1
    assert cache.indexed("c3", 3) is None  # params of its own: not indexed
    assert cache.indexed("c1000", 1000) is None  # beyond the newest link


async def test_indexed_hits_stay_out_of_the_lru() -> None:
    """A link the index serves goes to the hot table, not the LRU: a stream of links tapped
    once evicts nothing there, and a hit needs no decode, index or store."""
    reader = Reader()
    cache = LinkCache(reader, size=2)
    await cache.load_index()
    await cache.route("c2", 2)  # read from the store: into the LRU
    route = cache.indexed("c4", 4)
    assert route is not None and cache.cached("c4") == route
    for n in range(5, 500):
        if n % 3:  # indexed (no params of their own)
            assert cache.indexed(f"c{n}", n) is not None
    assert cache.cached("c2") is not None  # still in the LRU
    assert list(cache._links) == ["c2"]
    assert reader.link_reads == ["c2"]


async def test_a_hot_slot_holds_the_last_code_that_fell_there() -> None:
    reader = Reader()
    cache = LinkCache(reader)
    await cache.load_index()
    await cache.route("c2", 2)
    slots: dict[int, int] = {}
    for n in range(1, 999):
        slot = hash(f"c{n}") & (linkcache.HOT_SLOTS - 1)
        if n % 3 and slot in slots:
            first, second = slots[slot], n
            break
        if n % 3:
            slots[slot] = n
    else:
        pytest.skip("no two indexed codes share a slot under this hash seed")
    assert cache.indexed(f"c{first}", first) is not None
    assert cache.indexed(f"c{second}", second) is not None
    assert cache.cached(f"c{first}") is None  # overwritten: found again through the index
    assert cache.cached(f"c{second}") is not None
    assert cache.indexed(f"c{first}", first) is not None
    assert cache.cached(f"c{first}") is not None


async def test_links_read_from_the_store_join_the_index() -> None:
    reader = Reader()
    cache = LinkCache(reader, size=1)
    for n in (1, 2, 3):
        await cache.route(f"c{n}", n)
    assert cache.cached("c1") is None  # gone from the LRU ...
    assert cache.indexed("c1", 1) is not None  # ... but not from the index
    assert cache.indexed("c3", 3) is None  # params of its own: only ever in the LRU
    assert reader.link_reads == ["c1", "c2", "c3"]


async def test_an_indexed_link_follows_its_campaign(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    reader = Reader()
    cache = LinkCache(reader, campaign_seconds=60)
    await cache.load_index()
    await cache.route("c2", 2)
    reader.campaign = replace(CAMPAIGN, disabled=True)
    cache.forget_campaign(7)
    assert cache.indexed("c4", 4) is None  # the campaign must be read again first
    assert named(await cache.route("c4", 4)).disabled
    assert named(cache.indexed("c5", 5)).disabled


async def test_index_off_and_a_failing_load() -> None:
    reader = Reader()
    cache = LinkCache(reader, index_size=0)
    await cache.load_index()
    await cache.route("c2", 2)
    assert cache.indexed("c4", 4) is None
    failing = Reader()
    failing.fail = True
    with pytest.raises(StoreError):
        await LinkCache(failing).load_index()
