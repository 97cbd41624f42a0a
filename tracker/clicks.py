"""From a raw hit to the row stored for it: classified, address resolved, anonymised.

Pure; the click writer runs it off the request path, a batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tracker.addresses import IpStorage, Network, client_address, stored_address
from tracker.agents import classify
from tracker.models import Click, ClickRow

MAX_USER_AGENT = 512
MAX_REFERRER = 1024


def to_rows(
    clicks: Iterable[Click], trusted: Sequence[Network], ip_storage: IpStorage
) -> list[ClickRow]:
    rows = []
    for click in clicks:
        user_agent = click.user_agent[:MAX_USER_AGENT]
        verdict = classify(user_agent, click.method)
        address = client_address(click.peer, click.forwarded_for, trusted)
        rows.append(
            ClickRow(
                link_id=click.link_id,
                campaign_id=click.campaign_id,
                clicked_at_ms=click.clicked_at_ms,
                click_id=click.click_id,
                method=click.method,
                kind=verdict.kind,
                rule=verdict.rule,
                device=verdict.device,
                os=verdict.os,
                browser=verdict.browser,
                user_agent=user_agent,
                ip=stored_address(address, ip_storage),
                referrer=None if click.referrer is None else click.referrer[:MAX_REFERRER],
            )
        )
    return rows
