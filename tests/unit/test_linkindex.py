from __future__ import annotations

from tracker.linkindex import LinkIndex


def test_links_added_are_found_and_others_are_not() -> None:
    index = LinkIndex(1000)
    index.add_many([(5, 7, "A"), (6, 7, "B"), (9, 8, None)])
    assert index.get(5) == (7, "A")
    assert index.get(6) == (7, "B")
    assert index.get(9) == (8, None)
    for missing in (0, 1, 4, 7, 8, 10, 10**9):
        assert index.get(missing) is None


def test_pairs_are_stored_once() -> None:
    index = LinkIndex(10**6)
    index.add_many([(n, 7, "AB"[n % 2]) for n in range(1, 100_001)])
    assert len(index._pairs) == 3  # the "not indexed" slot and two pairs
    assert index._slots.itemsize == 4
    assert len(index._slots) == 100_000
    assert index.get(77_777) == (7, "B")


def test_the_window_slides_to_the_newest_links() -> None:
    index = LinkIndex(100)
    index.add_many([(n, 1, None) for n in range(1, 101)])
    assert index.get(1) == (1, None)
    index.add(101, 2, None)  # past the capacity: the oldest go
    assert index.get(101) == (2, None)
    assert index.get(1) is None
    assert len(index._slots) <= 100
    assert all(index.get(n) == (1, None) for n in range(30, 101))
    index.add(1, 3, None)  # older than the window: not kept
    assert index.get(1) is None
    index.add(10_000, 4, "A")  # far ahead: the window moves there whole
    assert index.get(10_000) == (4, "A")
    assert index.get(100) is None
    assert len(index._slots) <= 100


def test_cover_makes_room_for_older_links_met_before_the_load() -> None:
    index = LinkIndex(100)
    index.add(500, 1, "A")  # a link met by a redirect before the startup load
    assert index.cover(520) == 421
    index.add_many([(n, 2, None) for n in range(421, 521) if n != 500])
    assert index.get(421) == (2, None)
    assert index.get(500) == (1, "A")
    assert index.get(520) == (2, None)
    assert len(index._slots) == 100


def test_cover_of_an_empty_index_starts_at_the_window() -> None:
    index = LinkIndex(1000)
    assert index.cover(0) == 1
    assert LinkIndex(1000).cover(5_000) == 4_001
    index = LinkIndex(1000)
    index.cover(5_000)
    index.add(4_001, 1, None)
    assert len(index._slots) == 1


def test_capacity_zero_indexes_nothing() -> None:
    index = LinkIndex(0)
    index.add(1, 1, None)
    assert index.get(1) is None
    assert len(index._slots) == 0


def test_add_many_keeps_the_newest_when_given_more_than_fit() -> None:
    index = LinkIndex(100)
    index.add_many([])
    index.add_many([(n, 1, "A") for n in range(1, 1001)])
    assert index.get(1000) == (1, "A")
    assert index.get(901) == (1, "A")
    assert index.get(900) is None
    assert len(index._slots) == 100
    index.add_many([(n, 2, "B") for n in range(950, 1051)])  # overlaps and goes past
    assert index.get(1050) == (2, "B")
    assert index.get(1000) == (2, "B")
    assert len(index._slots) <= 100
