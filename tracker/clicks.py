"""From a raw hit to the row stored for it: classified, address resolved, anonymised.

Pure; the click writer runs it off the request path, a batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from tracker.addresses import IpStorage, Network, client_address, stored_address
from tracker.agents import classify
from tracker.models import ClickFields, ClickRow

MAX_USER_AGENT = 512
MAX_REFERRER = 1024
# Per batch of a busy server every step here runs hundreds of times: the (agent, method)
# pair's class is cached whole, and rows skip their NamedTuple constructor (a Python call).
_classify = lru_cache(maxsize=65_536)(classify)
_new = tuple.__new__


def to_rows(
    clicks: Iterable[ClickFields], trusted: Sequence[Network], ip_storage: IpStorage
) -> list[ClickRow]:
    """The rows of ``clicks`` (``Click``s, or their fields in a plain tuple or list)."""
    rows = []
    for link_id, campaign_id, at_ms, click_id, method, agent, peer, forwarded, referrer in clicks:
        user_agent = agent[:MAX_USER_AGENT]
        kind, rule, device, os, browser = _classify(user_agent, method)
        address = peer if not trusted else client_address(peer, forwarded, trusted)
        rows.append(
            _new(
                ClickRow,
                (
                    link_id,
                    campaign_id,
                    at_ms,
                    click_id,
                    method,
                    kind,
                    rule,
                    device,
                    os,
                    browser,
                    user_agent,
                    stored_address(address, ip_storage),
                    None if referrer is None else referrer[:MAX_REFERRER],
                ),
            )
        )
    return rows
