from __future__ import annotations

import pytest

from tracker.addresses import client_address, parse_networks, stored_address


@pytest.mark.parametrize(
    ("address", "storage", "expected"),
    [
        ("203.0.113.77", "truncated", "203.0.113.0"),
        ("203.0.113.77", "full", "203.0.113.77"),
        ("203.0.113.77", "none", None),
        ("2001:db8:abcd:12:1:2:3:4", "truncated", "2001:db8:abcd::"),
        ("2001:db8:abcd:12:1:2:3:4", "full", "2001:db8:abcd:12:1:2:3:4"),
        ("::ffff:198.51.100.9", "truncated", "198.51.100.0"),
        ("[2001:db8::1]", "truncated", "2001:db8::"),
        ("not an ip", "truncated", None),
        ("", "truncated", None),
        (None, "truncated", None),
    ],
)
def test_stored_address(address: str | None, storage: str, expected: str | None) -> None:
    assert stored_address(address, storage) == expected  # type: ignore[arg-type]


PROXIES = parse_networks("10.0.0.0/8, 192.168.1.1")


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("198.51.100.1", "203.0.113.5", (), "198.51.100.1"),  # nothing trusted: the peer
        ("198.51.100.1", "203.0.113.5", PROXIES, "198.51.100.1"),  # peer is no proxy
        ("10.1.2.3", "203.0.113.5", PROXIES, "203.0.113.5"),
        ("10.1.2.3", "6.6.6.6, 203.0.113.5", PROXIES, "203.0.113.5"),  # left part is forgeable
        ("10.1.2.3", "203.0.113.5, 192.168.1.1", PROXIES, "203.0.113.5"),  # proxy chain
        ("10.1.2.3", "10.9.9.9", PROXIES, "10.9.9.9"),  # all trusted: the farthest
        ("10.1.2.3", None, PROXIES, "10.1.2.3"),
        ("10.1.2.3", "garbage", PROXIES, "garbage"),  # then stored_address drops it
        (None, "203.0.113.5", PROXIES, None),
    ],
)
def test_client_address(
    peer: str | None, forwarded: str | None, trusted: tuple, expected: str | None
) -> None:
    assert client_address(peer, forwarded, trusted) == expected


def test_bad_network_is_named() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        parse_networks("10.0.0.1, nope")
