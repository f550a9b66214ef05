-- Lead flow, PostgreSQL dialect: lead payloads, their delivery to every CRM
-- integration of the org, and the hashed intake tokens lead partners send
-- leads with. Keep schema/sqlite/00002_leads.sql in step.
--
-- No foreign keys to integrations here: every intake would take a share lock
-- on its lead and CRM integration rows, a hot spot at hundreds of leads per
-- second; the store checks the lead integration in the intake transaction
-- instead. Intake tokens, like credentials, may be stored before the
-- workflow's first projection lands.

-- +goose Up

-- leads: the payloads lead partners send, stored once per partner lead ID.
-- They never enter workflow history; deliveries read them from here.
CREATE TABLE leads (
    -- Surrogate key, in intake order; the idempotency key of CRM deliveries.
    id                  BIGSERIAL   PRIMARY KEY,
    -- The lead integration the lead arrived through.
    lead_integration_id TEXT        NOT NULL,
    -- The org of that integration at intake (whose CRMs get the lead).
    org_id              TEXT        NOT NULL,
    -- The partner's own ID of the lead; a repeat of it is a duplicate.
    external_id         TEXT        NOT NULL CHECK (external_id <> ''),
    -- The source value the partner sent (compared with expected_source during setup).
    source              TEXT        NOT NULL,
    -- Contact name; may be empty.
    name                TEXT        NOT NULL DEFAULT '',
    -- Contact email; may be empty.
    email               TEXT        NOT NULL DEFAULT '',
    -- Contact phone; may be empty.
    phone               TEXT        NOT NULL DEFAULT '',
    -- Free-text message of the contact; may be empty.
    message             TEXT        NOT NULL DEFAULT '',
    -- Free-form JSON object of further fields the partner sent; {} if none.
    attributes          JSONB       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    -- When intake accepted the lead.
    received_at         TIMESTAMPTZ NOT NULL,
    UNIQUE (lead_integration_id, external_id)
);

COMMENT ON TABLE leads IS 'Lead payloads from partners, unique per (lead integration, partner lead ID).';

-- lead_deliveries: one row per CRM integration and lead routed to it. Rows
-- start pending and end delivered or rejected; a failed attempt leaves the
-- row pending with the error.
CREATE TABLE lead_deliveries (
    -- The CRM integration the lead goes to.
    crm_integration_id TEXT        NOT NULL,
    -- The lead.
    lead_id            BIGINT      NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    -- 'pending' until the CRM accepted the lead ('delivered') or refused it on its own merits ('rejected').
    status             TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'rejected')),
    -- Failed delivery attempts so far.
    attempts           INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Error of the last failed attempt, without lead data; '' if none.
    last_error         TEXT        NOT NULL DEFAULT '',
    -- The CRM's ID of the record created for the lead; '' until delivered.
    crm_record_id      TEXT        NOT NULL DEFAULT '',
    -- Why the CRM rejected the lead, in its words; '' unless rejected.
    reason             TEXT        NOT NULL DEFAULT '',
    -- When the lead was routed to the CRM integration.
    created_at         TIMESTAMPTZ NOT NULL,
    -- When the delivery was completed (delivered or rejected); NULL while pending.
    completed_at       TIMESTAMPTZ,
    PRIMARY KEY (crm_integration_id, lead_id)
);

-- A CRM integration's pending deliveries, oldest lead first (an index scan
-- with LIMIT), and its counts per status.
CREATE INDEX lead_deliveries_status_idx ON lead_deliveries (crm_integration_id, status, lead_id);

COMMENT ON TABLE lead_deliveries IS 'Delivery of each lead to each CRM integration of its org: pending, delivered or rejected.';

-- intake_tokens: the token a lead integration's partner authenticates
-- intake with, stored only as a hash. Rotating replaces the row.
CREATE TABLE intake_tokens (
    -- The lead integration the token belongs to.
    integration_id TEXT        PRIMARY KEY,
    -- SHA-256 of the token (32 bytes); the token itself is never stored.
    token_hash     BYTEA       NOT NULL CHECK (octet_length(token_hash) = 32),
    -- When this token was issued.
    created_at     TIMESTAMPTZ NOT NULL
);

COMMENT ON TABLE intake_tokens IS 'SHA-256 hashes of lead intake tokens, one per lead integration.';

-- +goose Down
DROP TABLE intake_tokens;
DROP TABLE lead_deliveries;
DROP TABLE leads;
