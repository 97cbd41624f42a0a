-- Clicks: every hit on a short code that was answered with a redirect, human or not.
-- kind/rule/device/os/browser come from tracker.agents and can be recomputed from
-- user_agent (`tracker reclassify`). ip is anonymised before it gets here (see README).

CREATE TABLE clicks (
    id          INTEGER PRIMARY KEY,
    link_id     INTEGER NOT NULL REFERENCES links (id),
    campaign_id INTEGER REFERENCES campaigns (id),
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

CREATE INDEX clicks_by_link ON clicks (link_id, clicked_at);
CREATE INDEX clicks_by_campaign ON clicks (campaign_id, clicked_at);
