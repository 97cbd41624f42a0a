-- Campaign results kept current as events arrive, so stats read a few small rows instead
-- of every link and click (docs/decisions/0009). Each table can be recounted from the raw
-- rows; the tests check that they always equal that recount.

-- Links and receipts per (campaign, variant), counted in the transaction that writes them.
-- variant '' stands for "no variant".
CREATE TABLE variant_counts (
    campaign_id     INTEGER NOT NULL,
    variant         TEXT NOT NULL,
    issued          INTEGER NOT NULL DEFAULT 0,
    sent            INTEGER NOT NULL DEFAULT 0,
    delivered       INTEGER NOT NULL DEFAULT 0,
    failed          INTEGER NOT NULL DEFAULT 0,
    opted_out       INTEGER NOT NULL DEFAULT 0,
    receipted       INTEGER NOT NULL DEFAULT 0,  -- links with any of sent, delivered, failed
    human_clicks    INTEGER NOT NULL DEFAULT 0,  -- these three from the click rollup
    bot_clicks      INTEGER NOT NULL DEFAULT 0,
    unique_clickers INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, variant)
) WITHOUT ROWID;

-- The click rollup: clicks up to rollup_state.clicks (a clicks.id) are folded into these.
CREATE TABLE click_hours (
    campaign_id INTEGER NOT NULL,
    hour        INTEGER NOT NULL,  -- clicked_at // 3 600 000 (UTC hours since the epoch)
    human       INTEGER NOT NULL,
    bot         INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, hour)
) WITHOUT ROWID;

CREATE TABLE click_devices (
    campaign_id INTEGER NOT NULL,
    device      TEXT NOT NULL,
    os          TEXT NOT NULL,
    human       INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, device, os)
) WITHOUT ROWID;

-- One row per clicked link, by campaign (the fold knows both; stats read a campaign's
-- range). started_at: the link's delivery receipt time, else its issue time (for time to
-- first click).
CREATE TABLE link_clicks (
    campaign_id    INTEGER NOT NULL,
    link_id        INTEGER NOT NULL,
    variant        TEXT NOT NULL,
    human          INTEGER NOT NULL,
    bot            INTEGER NOT NULL,
    first_human_at INTEGER,
    started_at     INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, link_id)
) WITHOUT ROWID;

-- Time to first click per campaign as a histogram (tracker.rollup.delay_bucket): exact
-- seconds up to 1 000 s, 0.1 %-wide buckets above; a few thousand rows at most.
CREATE TABLE first_click_delays (
    campaign_id INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,
    clickers    INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, bucket)
) WITHOUT ROWID;

CREATE TABLE rollup_state (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

-- clicks: the last clicks.id folded; generation: bumped whenever the rollup is reset and
-- rebuilt (tracker reclassify), so a reader can tell it raced a rebuild and read again.
INSERT INTO rollup_state (name, value) VALUES ('clicks', 0), ('generation', 0);

-- Counts for what was written before this migration.
INSERT INTO variant_counts (campaign_id, variant, issued)
SELECT campaign_id, coalesce(variant, ''), count(*)
FROM links WHERE campaign_id IS NOT NULL GROUP BY campaign_id, coalesce(variant, '');

UPDATE variant_counts SET
    sent = (SELECT count(*) FROM message_events e JOIN links l ON l.id = e.link_id
            WHERE l.campaign_id = variant_counts.campaign_id
              AND coalesce(l.variant, '') = variant_counts.variant AND e.status = 'sent'),
    delivered = (SELECT count(*) FROM message_events e JOIN links l ON l.id = e.link_id
                 WHERE l.campaign_id = variant_counts.campaign_id
                   AND coalesce(l.variant, '') = variant_counts.variant
                   AND e.status = 'delivered'),
    failed = (SELECT count(*) FROM message_events e JOIN links l ON l.id = e.link_id
              WHERE l.campaign_id = variant_counts.campaign_id
                AND coalesce(l.variant, '') = variant_counts.variant AND e.status = 'failed'),
    opted_out = (SELECT count(*) FROM message_events e JOIN links l ON l.id = e.link_id
                 WHERE l.campaign_id = variant_counts.campaign_id
                   AND coalesce(l.variant, '') = variant_counts.variant
                   AND e.status = 'opted_out'),
    receipted = (SELECT count(DISTINCT e.link_id) FROM message_events e
                 JOIN links l ON l.id = e.link_id
                 WHERE l.campaign_id = variant_counts.campaign_id
                   AND coalesce(l.variant, '') = variant_counts.variant
                   AND e.status IN ('sent', 'delivered', 'failed'));
