"""From a raw hit to the row stored for it: classified, address resolved, anonymised.

Pure; the click writer runs it off the request path, a batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from tracker.addresses import IpStorage, Network, client_address, stored_address
from tracker.agents import classify
from tracker.models import Click, ClickRow

MAX_USER_AGENT = 512
MAX_REFERRER = 1024
# Per batch of a busy server every step here runs hundreds of times: the (agent, method)
# pair's class is cached whole, and rows skip their NamedTuple constructor (a Python call).
_classify = lru_cache(maxsize=65_536)(classify)
_new = tuple.__new__


def to_rows(
    clicks: Iterable[Click], trusted: Sequence[Network], ip_storage: IpStorage
) -> list[ClickRow]:
    rows = []
    for click in clicks:
        user_agent = click.user_agent[:MAX_USER_AGENT]
        kind, rule, device, os, browser = _classify(user_agent, click.method)
        address = (
            click.peer if not trusted else client_address(click.peer, click.forwarded_for, trusted)
        )
        referrer = click.referrer
        rows.append(
            _new(
                ClickRow,
                (
                    click.link_id,
                    click.campaign_id,
                    click.clicked_at_ms,
                    click.click_id,
                    click.method,
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
