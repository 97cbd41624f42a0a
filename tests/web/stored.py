"""What the redirect tests read back from the store."""

from __future__ import annotations

from tracker.store.sqlite import SqliteStore


async def clicks(store: SqliteStore) -> list[dict[str, object]]:
    """Every stored click, oldest first, as a dict of its columns."""
    rows = await store._read_all(
        "SELECT link_id, campaign_id, clicked_at, click_id, method, kind, rule, device, os,"
        " browser, user_agent, ip, referrer FROM clicks ORDER BY id"
    )
    names = ("link_id", "campaign_id", "clicked_at", "click_id", "method", "kind", "rule",
             "device", "os", "browser", "user_agent", "ip", "referrer")  # fmt: skip
    return [dict(zip(names, row, strict=True)) for row in rows]
