-- Clicks: every hit on a short code that was answered with a redirect, human or not.
-- kind/rule/device/os/browser come from tracker.agents and can be recomputed from
-- user_agent (`tracker reclassify`). ip is anonymised before it gets here (see README).
--
-- This is the table every redirect writes to, so it carries as little as it can:
-- link_id and campaign_id are not declared as foreign keys (the redirect took them from
-- the links it just read; a foreign-key check would cost a B-tree lookup per click), and
-- both indexes grow at their end: click ids start with the time, and clicks of a campaign
-- arrive in time order. An index by link would take each click of a per-recipient
-- campaign to a random page of the B-tree (measured: a third of the redirect's
-- throughput); per-link questions read a campaign's clicks through its index instead.

CREATE TABLE clicks (
    id          INTEGER PRIMARY KEY,
    link_id     INTEGER NOT NULL,
    campaign_id INTEGER,
    clicked_at  INTEGER NOT NULL,
    click_id    TEXT NOT NULL UNIQUE,
    method      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    rule        TEXT NOT NULL,
    device      TEXT NOT NULL,
    os          TEXT NOT NULL,
    browser     TEXT NOT NULL,
    user_agent  TEXT NOT NULL,
    ip          TEXT,
    referrer    TEXT
);

CREATE INDEX clicks_by_campaign_time ON clicks (campaign_id, clicked_at);
