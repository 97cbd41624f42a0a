"""Client addresses: who connected (behind trusted proxies), and how much of it is kept.

Pure: strings in, strings out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import Literal

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IpStorage = Literal["truncated", "full", "none"]
IPV4_PREFIX = 24
IPV6_PREFIX = 48
_V4_MASK = ((1 << IPV4_PREFIX) - 1) << (32 - IPV4_PREFIX)
_V6_MASK = ((1 << IPV6_PREFIX) - 1) << (128 - IPV6_PREFIX)


def parse_networks(spec: str) -> tuple[Network, ...]:
    """``"10.0.0.1, 192.168.0.0/16"`` → networks; raises ``ValueError`` naming a bad entry."""
    networks = []
    for item in (part.strip() for part in spec.split(",")):
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"not an IP address or network: {item!r}") from None
    return tuple(networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Iterable[Network]
) -> str | None:
    """The client's address: the peer, unless the peer is a trusted proxy.

    Then ``X-Forwarded-For`` is read from the right, skipping trusted proxies, and the first
    address that is not one is the client (entries left of it could be forged by the client).
    """
    trusted = tuple(trusted)
    if not trusted or peer is None or not _is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in (forwarded_for or "").split(",") if h.strip()]
    candidate = peer
    for hop in reversed(hops):
        candidate = hop
        if not _is_trusted(hop, trusted):
            break
    return candidate


@lru_cache(maxsize=65_536)
def stored_address(address: str | None, storage: IpStorage = "truncated") -> str | None:
    """What is kept of ``address``: the /24 (IPv4) or /48 (IPv6) network, all of it, or nothing.

    Cached: the same addresses come back (carrier NATs, retries, previews), and the cache
    keeps this at a fraction of a microsecond per click.
    """
    if address is None or storage == "none":
        return None
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if storage == "full":
        return str(ip)
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Address(int(ip) & _V4_MASK))
    return str(ipaddress.IPv6Address(int(ip) & _V6_MASK))


def _is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in network for network in trusted)
