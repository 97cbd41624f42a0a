-- The foundation: tenants, their API keys, campaigns and links.
-- Times are integer milliseconds since the Unix epoch, UTC.

CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- The server secret behind short codes; made here once, kept with the data it signs.
INSERT INTO meta (name, value) VALUES ('code_secret', randomblob(32));

CREATE TABLE workspaces (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    allowed_schemes TEXT NOT NULL DEFAULT '[]',
    created_at      INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    key_id       TEXT NOT NULL UNIQUE,
    key_hash     TEXT NOT NULL,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    scopes       TEXT NOT NULL,
    label        TEXT,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);

CREATE TABLE campaigns (
    id                       INTEGER PRIMARY KEY,
    workspace_id             INTEGER NOT NULL REFERENCES workspaces (id),
    name                     TEXT NOT NULL,
    slug                     TEXT NOT NULL,
    destination              TEXT NOT NULL,
    utm                      TEXT NOT NULL,
    click_id_param           TEXT,
    attribution_window_hours INTEGER NOT NULL,
    cost_per_message         TEXT,
    currency                 TEXT,
    expires_at               INTEGER,
    fallback_url             TEXT,
    disabled                 INTEGER NOT NULL DEFAULT 0,
    variants                 TEXT NOT NULL DEFAULT '[]',
    created_at               INTEGER NOT NULL
);

CREATE INDEX campaigns_by_workspace ON campaigns (workspace_id, id);

CREATE TABLE links (
    id           INTEGER PRIMARY KEY,
    code         TEXT NOT NULL UNIQUE,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    campaign_id  INTEGER REFERENCES campaigns (id),
    ref          TEXT,
    variant      TEXT,
    destination  TEXT,
    params       TEXT,
    created_at   INTEGER NOT NULL
);

-- One link per (campaign, recipient). SQLite treats NULL refs as distinct, so
-- campaign-level links (no recipient) are not constrained.
CREATE UNIQUE INDEX links_by_campaign_ref ON links (campaign_id, ref);
