-- Closing the loop: conversions from shops, delivery receipts and opt-outs from senders,
-- and the webhook secrets that sign server-to-server conversions.

-- The key from which webhook secrets are derived (see docs/decisions/0008): the
-- webhook_secrets table holds only a random salt per secret.
INSERT INTO meta (name, value) VALUES ('webhook_key', randomblob(32));

CREATE TABLE webhook_secrets (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    salt         BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER  -- set when a newer secret replaced it: verifies until then
);

CREATE INDEX webhook_secrets_by_workspace ON webhook_secrets (workspace_id, id);

-- One row per conversion received, attributed or not (never dropped). What the shop sent is
-- kept as sent (click_id, sent_campaign_id, ref); the outcome is campaign_id / link_id /
-- click_row_id / variant when attributed, else reason.
--
-- dedupe_key makes duplicates harmless: 'o:<order id>' when there is one, else
-- 'c:<click id>', else 'r:<campaign id>:<ref>'; NULL (nothing to tell repeats apart) is
-- never a duplicate. SQLite treats NULLs as distinct in a UNIQUE index.
CREATE TABLE conversions (
    id               INTEGER PRIMARY KEY,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces (id),
    event            TEXT NOT NULL,
    order_id         TEXT,
    click_id         TEXT,
    sent_campaign_id INTEGER,
    ref              TEXT,
    value            TEXT,     -- an exact decimal, as a string
    currency         TEXT,
    occurred_at      INTEGER NOT NULL,
    received_at      INTEGER NOT NULL,
    source           TEXT NOT NULL,  -- pixel | snippet | webhook | api
    dedupe_key       TEXT,
    campaign_id      INTEGER,
    link_id          INTEGER,
    click_row_id     INTEGER,
    variant          TEXT,
    reason           TEXT
);

CREATE UNIQUE INDEX conversions_dedupe ON conversions (workspace_id, event, dedupe_key);
CREATE INDEX conversions_by_campaign ON conversions (campaign_id, occurred_at);

-- Delivery receipts and opt-outs: one row per (link, status); a later status never erases
-- an earlier one.
CREATE TABLE message_events (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
    link_id     INTEGER NOT NULL REFERENCES links (id),
    status      TEXT NOT NULL,  -- sent | delivered | failed | opted_out
    at          INTEGER NOT NULL,
    error       TEXT,
    received_at INTEGER NOT NULL
);

CREATE UNIQUE INDEX message_events_once ON message_events (link_id, status);
CREATE INDEX message_events_by_campaign ON message_events (campaign_id, status);
