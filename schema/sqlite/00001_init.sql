-- Initial schema of the integrations service, SQLite dialect (modernc.org/sqlite).
--
-- Table and column names are part of the backend contract: the HTTP API, the
-- CLI and other backends read them. Keep schema/postgres/00001_init.sql in
-- step: both dialects define the same tables, columns and meaning.
--
-- SQLite has no timestamp, boolean or JSON types, so:
--   - timestamps are declared DATETIME, which makes the driver parse them back
--     into time.Time; the store writes them as UTC text with sub-second
--     digits ("2006-01-02 15:04:05.999999-07:00"), which sorts correctly;
--   - booleans are BOOLEAN columns holding 0 or 1;
--   - JSON is TEXT checked with json_valid.

-- +goose Up

-- integrations: the current status of each integration, one row per
-- integration, projected from its workflow. A write only lands when it
-- carries a higher version than the stored row, so replayed or stale
-- projections never move a row backwards.
CREATE TABLE integrations (
    -- Integration ID chosen at creation (1-64 of [A-Za-z0-9._-]); the
    -- workflow ID is <kind>:<id>.
    id                   TEXT     NOT NULL PRIMARY KEY,
    -- 'lead' (a partner sends us leads) or 'crm' (we push leads into a CRM).
    kind                 TEXT     NOT NULL CHECK (kind IN ('lead', 'crm')),
    -- The customer org the integration belongs to.
    org_id               TEXT     NOT NULL,
    -- CRM provider (hubspot, salesforce, ...) or the lead partner's name.
    provider             TEXT     NOT NULL,
    -- Display name given by the user; may be empty.
    name                 TEXT     NOT NULL DEFAULT '',
    -- Lifecycle status (design §2), snake_case.
    status               TEXT     NOT NULL CHECK (status IN ('setup_incomplete', 'active', 'failed_sync', 'paused', 'deleted')),
    -- Qualifies the status (awaiting_test_lead, manual, expired_credentials, ...); '' where none.
    reason               TEXT     NOT NULL DEFAULT '',
    -- Monotonic state version from the workflow; guards the idempotent upsert.
    version              INTEGER  NOT NULL CHECK (version > 0),
    -- A CRM sync has been failing for long (default 5+ failures over 6h+); support was alerted.
    needs_attention      BOOLEAN  NOT NULL DEFAULT 0 CHECK (needs_attention IN (0, 1)),
    -- Setup stayed incomplete past the abandon deadline (default 30 days); flagged, never deleted.
    abandoned            BOOLEAN  NOT NULL DEFAULT 0 CHECK (abandoned IN (0, 1)),
    -- The setup reminder (default after 3 days) went out.
    reminder_sent        BOOLEAN  NOT NULL DEFAULT 0 CHECK (reminder_sent IN (0, 1)),
    -- Lead integrations: the exact source value a test lead must carry (byte for byte); '' for CRM.
    expected_source      TEXT     NOT NULL DEFAULT '',
    -- Lead integrations: the source value of the last lead received during setup; '' if none.
    last_received_source TEXT     NOT NULL DEFAULT '',
    -- Lead integrations: JSON array of the wrong source values a revision request went out for.
    revision_requested   TEXT     NOT NULL DEFAULT '[]' CHECK (json_valid(revision_requested)),
    -- JSON array of setup tracker steps: [{"name": ..., "done": ..., "at": RFC 3339 or null}].
    setup_steps          TEXT     NOT NULL DEFAULT '[]' CHECK (json_valid(setup_steps)),
    -- CRM integrations: JSON of the last validation run, {"checks": [...], "at": ...}; NULL before the first.
    validation           TEXT     CHECK (validation IS NULL OR json_valid(validation)),
    -- When the integration was created.
    created_at           DATETIME NOT NULL,
    -- When the state last changed (the time of the change that produced this version).
    updated_at           DATETIME NOT NULL
);

-- Listing by org (the app's integrations page), ordered as List returns rows.
CREATE INDEX integrations_org_idx ON integrations (org_id, id);
-- Listing by kind and status across orgs (operators, support dashboards).
CREATE INDEX integrations_kind_status_idx ON integrations (kind, status, org_id, id);
-- Listing by status alone (e.g. every paused integration).
CREATE INDEX integrations_status_idx ON integrations (status, org_id, id);

-- integration_events: append-only history of state changes, one row per
-- integration version. Replayed projections insert nothing new.
CREATE TABLE integration_events (
    -- Surrogate key, in insertion order.
    id             INTEGER  PRIMARY KEY AUTOINCREMENT,
    -- The integration that changed.
    integration_id TEXT     NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    -- The version the change produced; one event per version.
    version        INTEGER  NOT NULL CHECK (version > 0),
    -- What happened: created, lead-received, complete-setup, authorize, pause, resume, delete, validated, ...
    event          TEXT     NOT NULL,
    -- Status before the change; '' for created.
    from_status    TEXT     NOT NULL DEFAULT '',
    -- Reason before the change; '' where none.
    from_reason    TEXT     NOT NULL DEFAULT '',
    -- Status after the change.
    to_status      TEXT     NOT NULL,
    -- Reason after the change; '' where none.
    to_reason      TEXT     NOT NULL DEFAULT '',
    -- Who caused it (a user, a script, "system"); '' if unknown.
    actor          TEXT     NOT NULL DEFAULT '',
    -- Free text the actor gave, or an explanation from the rules; '' if none.
    note           TEXT     NOT NULL DEFAULT '',
    -- When the change happened (workflow time).
    occurred_at    DATETIME NOT NULL,
    UNIQUE (integration_id, version)
);

-- crm_credentials: CRM credentials of an integration, sealed with AES-256-GCM
-- before they reach the store. Never updated: each authorize adds the next
-- version and the latest one is in use. No foreign key to integrations, so
-- credentials can be stored before the workflow's first projection lands.
CREATE TABLE crm_credentials (
    -- The CRM integration the credentials belong to.
    integration_id TEXT     NOT NULL,
    -- 1, 2, 3, ... per integration; the highest is current.
    version        INTEGER  NOT NULL CHECK (version > 0),
    -- AES-256-GCM sealed credentials (nonce and tag included); never plaintext.
    ciphertext     BLOB     NOT NULL,
    -- When this version was stored.
    created_at     DATETIME NOT NULL,
    PRIMARY KEY (integration_id, version)
);

-- notifications: messages for the org (email, in-app), the lead partner or
-- support, recorded here for the mailers and the app to deliver. A dedupe
-- key makes retried activities add each notification once. No foreign key to
-- integrations, so notifications outlive a purged integration row.
CREATE TABLE notifications (
    -- Surrogate key, in insertion order.
    id             INTEGER  PRIMARY KEY AUTOINCREMENT,
    -- The integration the notification is about.
    integration_id TEXT     NOT NULL,
    -- The org of that integration (who sees in-app notifications).
    org_id         TEXT     NOT NULL,
    -- Who it goes to: 'email' and 'in_app' (the org), 'partner' (the lead partner), 'support'.
    channel        TEXT     NOT NULL CHECK (channel IN ('email', 'in_app', 'partner', 'support')),
    -- What it is about: paused, setup_reminder, source_revision, setup_abandoned, needs_attention, ...
    kind           TEXT     NOT NULL,
    -- One-line subject.
    subject        TEXT     NOT NULL,
    -- Body text, with remediation steps where there are some.
    body           TEXT     NOT NULL DEFAULT '',
    -- 'open' until the condition it reports is over, then 'resolved'.
    status         TEXT     NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    -- Idempotency key chosen by the sender; a second add with the same key is ignored.
    dedupe_key     TEXT     NOT NULL UNIQUE,
    -- When it was raised.
    created_at     DATETIME NOT NULL,
    -- When it was resolved; NULL while open.
    resolved_at    DATETIME
);

-- Resolving (integration, kind, open) and listing an integration's notifications.
CREATE INDEX notifications_integration_idx ON notifications (integration_id, kind, status);
-- The app's in-app inbox per org.
CREATE INDEX notifications_org_idx ON notifications (org_id, status);

-- +goose Down
DROP TABLE notifications;
DROP TABLE crm_credentials;
DROP TABLE integration_events;
DROP TABLE integrations;
