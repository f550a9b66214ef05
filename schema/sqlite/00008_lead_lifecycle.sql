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

-- The deliveries of an erased lead end as 'cancelled' with reason
-- 'erased': 00007 made that status (and 'gave_up') possible.

-- +goose Down
DROP INDEX leads_retention_idx;
ALTER TABLE leads DROP COLUMN purge_reason;
ALTER TABLE leads DROP COLUMN purged_at;
DROP INDEX leads_public_id_idx;
ALTER TABLE leads DROP COLUMN public_id;
ALTER TABLE leads DROP COLUMN company;
ALTER TABLE leads DROP COLUMN last_name;
ALTER TABLE leads DROP COLUMN first_name;
