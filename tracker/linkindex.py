"""Which campaign and variant each link belongs to, held in memory for every link that takes
its campaign's destination as it is: 4 bytes a link.

A per-recipient campaign's links are each opened about once, so a cache of links opened
recently barely helps them: without this index nearly every one of their redirects would
read the store. Links never change once issued (docs/decisions/0004), so an entry never goes
stale; the campaign's own state (disabled, expiry, destinations) is looked up apart, as for
any cached link. The index covers the newest ``capacity`` link ids; older ones, and links
with their own destination or parameters, are read from the store as before.

Pure: no I/O. The link cache fills it at startup and as it meets links (docs/decisions/0010).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

# (campaign id, variant key or None)
Pair = tuple[int, str | None]


class LinkIndex:
    __slots__ = ("_base", "_capacity", "_numbers", "_pairs", "_slots")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._base = 1  # the link id of _slots[0]
        self._slots = array("I")  # link id - base → the number of its pair; 0: not indexed
        self._pairs: list[Pair] = [(0, None)]  # pair number → pair
        self._numbers: dict[Pair, int] = {}

    def get(self, link_id: int) -> Pair | None:
        """The link's (campaign, variant), or ``None`` when it is not in the index."""
        offset = link_id - self._base
        if 0 <= offset < len(self._slots):
            number = self._slots[offset]
            if number:
                return self._pairs[number]
        return None

    def add(self, link_id: int, campaign_id: int, variant: str | None) -> None:
        """Index a link that takes its campaign's destination for ``variant`` as it is."""
        if self._capacity < 1:
            return
        if not self._slots:
            self._base = link_id
        offset = self._reach(link_id)
        if offset is not None:
            self._slots[offset] = self._number((campaign_id, variant))

    def add_many(self, links: Sequence[tuple[int, int, str | None]]) -> None:
        """``add`` for each (link id, campaign id, variant), in increasing link id order
        (≈ 0.4 µs a link: room is made once, for the newest)."""
        if not links or self._capacity < 1:
            return
        if not self._slots:
            self._base = max(links[0][0], links[-1][0] - self._capacity + 1)
        if self._reach(links[-1][0]) is None:
            return
        slots, base, numbers = self._slots, self._base, self._numbers
        for link_id, campaign_id, variant in links:
            offset = link_id - base
            if offset >= 0:
                pair = (campaign_id, variant)
                number = numbers.get(pair)
                slots[offset] = self._number(pair) if number is None else number

    def _reach(self, link_id: int) -> int | None:
        """The offset of ``link_id``'s slot, the window slid and grown to hold it; ``None``
        when it is older than the window (``cover`` widens it)."""
        offset = link_id - self._base
        if offset < 0:
            return None
        if offset >= self._capacity:
            # Slide the window to the newest ids, leaving a quarter of it free for the next.
            drop = offset + 1 - self._capacity + self._capacity // 4
            del self._slots[:drop]
            self._base += drop
            offset -= drop
        missing = offset + 1 - len(self._slots)
        if missing > 0:
            self._slots.frombytes(bytes(missing * self._slots.itemsize))
        return offset

    def cover(self, newest_id: int) -> int:
        """Widen the window to the ``capacity`` ids up to ``newest_id`` (as far as the
        capacity allows beside what is indexed); returns the oldest id it then covers."""
        first_id = max(1, newest_id - self._capacity + 1)
        if not self._slots:
            self._base = first_id
            return first_id
        grow = min(self._base - first_id, self._capacity - len(self._slots))
        if grow > 0:
            self._slots[:0] = array("I", bytes(grow * self._slots.itemsize))
            self._base -= grow
        return self._base

    def _number(self, pair: Pair) -> int:
        number = self._numbers.get(pair)
        if number is None:
            number = self._numbers[pair] = len(self._pairs)
            self._pairs.append(pair)
        return number
