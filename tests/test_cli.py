from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tracker import agents, signatures
from tracker.cli import main
from tracker.models import CampaignResults, ClickRow, Counts, LinkRequest
from tracker.store.sqlite import SqliteStore

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)


def test_migrate_keys_and_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "t.db")
    assert main(["migrate", "--db", db]) == 0
    assert main(["keys", "create", "--db", db, "--workspace", "acme", "--scope", "stats:read"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("trk_")
    assert main(["demo", "--db", db, "--base-url", "https://go.example"]) == 0
    out = capsys.readouterr().out
    assert "https://go.example/" in out


def test_demo_fills_a_campaign(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "t.db")
    assert main(["demo", "--db", db]) == 0
    first = capsys.readouterr().out
    assert main(["demo", "--db", db]) == 0  # a second run adds a second demo campaign
    second = capsys.readouterr().out
    campaign_id = int(re.findall(r"^campaign (\d+) ", first, re.M)[0])
    assert re.findall(r"^campaign (\d+) ", second, re.M) == [str(campaign_id + 1)]
    assert f"/api/v1/campaigns/{campaign_id}/stats" in first and "/dashboard" in first

    async def results() -> tuple[CampaignResults, CampaignResults, list[tuple[str, int]]]:
        store = SqliteStore(db)
        await store.open()
        try:
            rolled_up = await store.campaign_results(campaign_id)
            recounted = await store.recount_results(campaign_id)
            reasons = await store._read_all(
                "SELECT coalesce(reason, ''), count(*) FROM conversions GROUP BY 1"
            )
            return rolled_up, recounted, reasons
        finally:
            await store.close()

    rolled_up, recounted, reasons = asyncio.run(results())
    assert rolled_up == recounted  # the rollup matches the raw rows
    assert reasons == [("", reasons[0][1])]  # every demo conversion is attributed
    assert set(rolled_up.counts) == {"A", "B"}
    total = Counts()
    for counts in rolled_up.counts.values():
        total.add(counts)
    assert total.issued >= 1000
    assert total.delivered > 0 and total.failed > 0 and total.opted_out > 0
    assert total.receipted > total.delivered + total.failed  # some only "sent"
    assert total.human_clicks > 0 and total.bot_clicks > 0 and total.unique_clickers > 0
    assert total.conversions > 0
    assert set(total.revenue) == {"EUR", "USD"}
    assert (
        len({hour // 24 for hour, (human, bot, _) in rolled_up.hours.items() if human + bot}) >= 3
    )
    assert len({os for _, os in rolled_up.devices}) >= 3  # iOS, Android, Windows, Mac OS X
    assert rolled_up.first_click_buckets
    a, b = rolled_up.counts["A"], rolled_up.counts["B"]
    assert b.unique_clickers / b.issued > a.unique_clickers / a.issued
    assert b.conversions / b.issued > a.conversions / a.issued


def test_bad_settings_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--db", "mysql://x/y"]) == 2
    assert "unsupported" in capsys.readouterr().err


async def test_reclassify_applies_the_current_rules(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    store = SqliteStore(db)
    await store.open()
    workspace = await store.ensure_workspace("w")
    await store.issue_links(
        workspace.id, None, [LinkRequest(None, None, None, "https://x.example/")], lambda i: f"c{i}"
    )
    stale = [
        # as an older rule set might have stored them
        ClickRow(1, None, 1, "a", "GET", "human", "default_human", "mobile", "iOS", "Safari",
                 "WhatsApp/2.23.20.0 A", None, None),
        ClickRow(1, None, 2, "b", "HEAD", "human", "default_human", "mobile", "iOS", "Safari",
                 IPHONE, None, None),
        ClickRow(1, None, 3, "c", "GET", *agents.classify(IPHONE, "GET"), IPHONE, None, None),
    ]  # fmt: skip
    await store.record_clicks(stale)
    await store.close()
    assert await _run(["reclassify", "--db", db]) == 0
    store = SqliteStore(db)
    await store.open()
    rows = await store._read_all("SELECT click_id, kind, rule FROM clicks ORDER BY id")
    await store.close()
    assert rows == [
        ("a", "preview", "whatsapp"),
        ("b", "scanner", "head_request"),
        ("c", "human", "default_human"),
    ]


async def _run(argv: list[str]) -> int:
    import asyncio

    # The CLI runs its own event loop; run it in a thread from this async test.
    return await asyncio.to_thread(main, argv)


def test_webhook_secret_rotation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "t.db")
    assert main(["webhooks", "rotate", "--db", db, "--workspace", "shop"]) == 0
    first = capsys.readouterr().out.strip().splitlines()
    assert (
        main(["webhooks", "rotate", "--db", db, "--workspace", "shop", "--grace-hours", "0"]) == 0
    )
    second = capsys.readouterr().out.strip().splitlines()
    assert first[0] == second[0] == "workspace id (send it as Tracker-Workspace): 1"
    assert first[1].startswith("whsec_") and second[1].startswith("whsec_")
    assert first[1] != second[1]
    assert (
        main(["webhooks", "rotate", "--db", db, "--workspace", "shop", "--grace-hours", "-1"]) == 2
    )
    assert "grace" in capsys.readouterr().err

    async def current_secrets() -> list[str]:
        store = SqliteStore(db)
        await store.open()
        try:
            salts = await store.webhook_salts(1)
            return [signatures.derive_secret(store.webhook_key, s) for s in salts]
        finally:
            await store.close()

    assert asyncio.run(current_secrets()) == [second[1]]  # grace 0: only the newest verifies
