-- Leads that fit real CRMs, an opaque public lead ID, and the lifecycle of
-- lead PII (retention and erasure), SQLite dialect. Keep
-- schema/postgres/00008_lead_lifecycle.sql in step.

-- +goose Up

-- The parts of the contact's name and the company, for CRMs that keep them
-- apart (a Salesforce Lead needs LastName and Company). Intake fills
-- first_name and last_name from name when the partner sent only that (the
-- rule is in package starter's documentation).
ALTER TABLE leads ADD COLUMN first_name TEXT NOT NULL DEFAULT '';
ALTER TABLE leads ADD COLUMN last_name TEXT NOT NULL DEFAULT '';
ALTER TABLE leads ADD COLUMN company TEXT NOT NULL DEFAULT '';

-- The lead's public ID, what intake answers the partner: "ld_" and 32 hex
-- digits of randomness, never the platform-wide id counter. The store
-- always sets it (SQLite cannot add a column with a computed default); the
-- leads stored before this migration get one here.
ALTER TABLE leads ADD COLUMN public_id TEXT;
UPDATE leads SET public_id = 'ld_' || lower(hex(randomblob(16))) WHERE public_id IS NULL;
CREATE UNIQUE INDEX leads_public_id_idx ON leads (public_id);

-- When the lead's payload (name and its parts, company, email, phone,
-- message, attributes) was removed; NULL while it is kept. Keys, source,
-- external ID and times stay.
ALTER TABLE leads ADD COLUMN purged_at DATETIME;
-- Why it was removed: 'retention' (older than the retention period, every
-- delivery completed) or 'erased' (`integrations leads erase`); '' while kept.
ALTER TABLE leads ADD COLUMN purge_reason TEXT NOT NULL DEFAULT '' CHECK (purge_reason IN ('', 'retention', 'erased'));
-- The retention job's candidates, oldest first: only leads whose payload
-- is still kept.
CREATE INDEX leads_retention_idx ON leads (received_at) WHERE purged_at IS NULL;

-- Deliveries that end without the CRM's answer: 'gave_up' (a lead that
-- kept failing on its own, set aside) and 'cancelled' (its CRM integration
-- was deleted, or the lead was erased: reason 'erased'), beside pending,
-- delivered and rejected. SQLite cannot change a CHECK in place: the table
-- is rebuilt with the same columns (those of 00002) and its index (00004).
CREATE TABLE lead_deliveries_new (
    -- The CRM integration the lead goes to.
    crm_integration_id TEXT     NOT NULL,
    -- The lead.
    lead_id            INTEGER  NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    -- 'pending' until the CRM accepted the lead ('delivered') or refused it on its own merits ('rejected'), the lead was set aside ('gave_up') or the delivery was called off ('cancelled').
    status             TEXT     NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'rejected', 'gave_up', 'cancelled')),
    -- Failed delivery attempts so far.
    attempts           INTEGER  NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Error of the last failed attempt, without lead data; '' if none.
    last_error         TEXT     NOT NULL DEFAULT '',
    -- The CRM's ID of the record created for the lead; '' until delivered.
    crm_record_id      TEXT     NOT NULL DEFAULT '',
    -- Why the CRM rejected the lead, in its words, or why the delivery ended without it; '' if none.
    reason             TEXT     NOT NULL DEFAULT '',
    -- When the lead was routed to the CRM integration.
    created_at         DATETIME NOT NULL,
    -- When the delivery was completed (delivered, rejected, gave_up or cancelled); NULL while pending.
    completed_at       DATETIME,
    PRIMARY KEY (crm_integration_id, lead_id)
);
INSERT INTO lead_deliveries_new (crm_integration_id, lead_id, status, attempts, last_error, crm_record_id, reason, created_at, completed_at)
SELECT crm_integration_id, lead_id, status, attempts, last_error, crm_record_id, reason, created_at, completed_at FROM lead_deliveries;
DROP TABLE lead_deliveries;
ALTER TABLE lead_deliveries_new RENAME TO lead_deliveries;
CREATE INDEX lead_deliveries_pending_idx ON lead_deliveries (crm_integration_id, lead_id) WHERE status = 'pending';

-- +goose Down
-- lead_deliveries keeps the wider status set: rows may hold the new
-- statuses, and code of the previous release reads them as not pending.
DROP INDEX leads_retention_idx;
ALTER TABLE leads DROP COLUMN purge_reason;
ALTER TABLE leads DROP COLUMN purged_at;
DROP INDEX leads_public_id_idx;
ALTER TABLE leads DROP COLUMN public_id;
ALTER TABLE leads DROP COLUMN company;
ALTER TABLE leads DROP COLUMN last_name;
ALTER TABLE leads DROP COLUMN first_name;
