-- Leads that fit real CRMs, an opaque public lead ID, and the lifecycle of
-- lead PII (retention and erasure), PostgreSQL dialect. Keep
-- schema/sqlite/00008_lead_lifecycle.sql in step.
--
-- No transaction: the indexes on leads, the largest table after
-- lead_deliveries, are built concurrently so intake keeps writing. Every
-- statement can run again (IF [NOT] EXISTS, a backfill of what is missing),
-- so a migration cut short is finished by running it again.

-- +goose NO TRANSACTION
-- +goose Up

-- The parts of the contact's name and the company, for CRMs that keep them
-- apart (a Salesforce Lead needs LastName and Company). Intake fills
-- first_name and last_name from name when the partner sent only that (the
-- rule is in package starter's documentation).
ALTER TABLE leads ADD COLUMN IF NOT EXISTS first_name TEXT NOT NULL DEFAULT '';
ALTER TABLE leads ADD COLUMN IF NOT EXISTS last_name TEXT NOT NULL DEFAULT '';
ALTER TABLE leads ADD COLUMN IF NOT EXISTS company TEXT NOT NULL DEFAULT '';

-- The lead's public ID, what intake answers the partner: "ld_" and 32 hex
-- digits of randomness, never the platform-wide id counter. The store
-- always sets it; the default covers writers that do not (processes of the
-- previous release during a rolling upgrade) and the backfill of the leads
-- stored before this migration. The column is added without a default and
-- given one afterwards, so adding it does not rewrite the table.
ALTER TABLE leads ADD COLUMN IF NOT EXISTS public_id TEXT;
ALTER TABLE leads ALTER COLUMN public_id SET DEFAULT ('ld_' || replace(CAST(gen_random_uuid() AS TEXT), '-', ''));
UPDATE leads SET public_id = DEFAULT WHERE public_id IS NULL;
-- NOT VALID, then VALIDATE: checking the existing rows does not block intake.
ALTER TABLE leads DROP CONSTRAINT IF EXISTS leads_public_id_present;
ALTER TABLE leads ADD CONSTRAINT leads_public_id_present CHECK (public_id IS NOT NULL) NOT VALID;
ALTER TABLE leads VALIDATE CONSTRAINT leads_public_id_present;
-- An interrupted concurrent build leaves an invalid index behind; a re-run
-- starts afresh rather than keep it.
DROP INDEX CONCURRENTLY IF EXISTS leads_public_id_idx;
CREATE UNIQUE INDEX CONCURRENTLY leads_public_id_idx ON leads (public_id);

-- When the lead's payload (name and its parts, company, email, phone,
-- message, attributes) was removed; NULL while it is kept. Keys, source,
-- external ID and times stay.
ALTER TABLE leads ADD COLUMN IF NOT EXISTS purged_at TIMESTAMPTZ;
-- Why it was removed: 'retention' (older than the retention period, every
-- delivery completed) or 'erased' (`integrations leads erase`); '' while kept.
ALTER TABLE leads ADD COLUMN IF NOT EXISTS purge_reason TEXT NOT NULL DEFAULT '' CHECK (purge_reason IN ('', 'retention', 'erased'));
-- The retention job's candidates, oldest first: only leads whose payload
-- is still kept, so the index stays as small as the retention window plus
-- what waits for delivery.
DROP INDEX CONCURRENTLY IF EXISTS leads_retention_idx;
CREATE INDEX CONCURRENTLY leads_retention_idx ON leads (received_at) WHERE purged_at IS NULL;

-- The deliveries of an erased lead end as 'cancelled' with reason
-- 'erased': 00007 made that status (and 'gave_up') possible.

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS leads_retention_idx;
ALTER TABLE leads DROP COLUMN IF EXISTS purge_reason;
ALTER TABLE leads DROP COLUMN IF EXISTS purged_at;
DROP INDEX CONCURRENTLY IF EXISTS leads_public_id_idx;
ALTER TABLE leads DROP COLUMN IF EXISTS public_id;
ALTER TABLE leads DROP COLUMN IF EXISTS company;
ALTER TABLE leads DROP COLUMN IF EXISTS last_name;
ALTER TABLE leads DROP COLUMN IF EXISTS first_name;
