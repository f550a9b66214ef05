-- Deliveries that end without the CRM taking them, SQLite dialect (issue 9:
-- nothing stalls the queue). Keep schema/postgres/00007_delivery_outcomes.sql
-- in step.
--
-- lead_deliveries gains two final statuses besides delivered and rejected:
--   - 'gave_up': the lead failed on its own (pushed alone, while the CRM
--     answered the call right after it) as many times as the workers'
--     INTEGRATIONS_MAX_DELIVERY_ATTEMPTS allows, and was set aside so it
--     no longer holds up the leads behind it; reason says why.
--   - 'cancelled': the CRM integration was deleted while the delivery was
--     pending (written by the projection of the deleted snapshot).
-- and solo_failures, the failures that count towards giving up. attempts
-- keeps counting every failed attempt, an outage's included.
--
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt
-- (https://www.sqlite.org/lang_altertable.html#otheralter): a new table,
-- every row copied, the old one dropped and the new one renamed, in the
-- migration's transaction. Nothing references lead_deliveries, so the
-- foreign keys stay on. The rebuild names every column of 00002: a later
-- migration that adds a column to lead_deliveries must come after this one.

-- +goose Up
-- lead_deliveries as 00002 made it, with the statuses of this migration and solo_failures.
CREATE TABLE lead_deliveries_new (
    -- The CRM integration the lead goes to.
    crm_integration_id TEXT     NOT NULL,
    -- The lead.
    lead_id            INTEGER  NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    -- 'pending' until the CRM accepted the lead ('delivered'), refused it on its own merits ('rejected'), it was set aside after failing on its own ('gave_up') or its CRM integration was deleted ('cancelled').
    status             TEXT     NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'rejected', 'gave_up', 'cancelled')),
    -- Failed delivery attempts so far, an outage's included.
    attempts           INTEGER  NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Error of the last failed attempt, without lead data; '' if none.
    last_error         TEXT     NOT NULL DEFAULT '',
    -- The CRM's ID of the record created for the lead; '' until delivered.
    crm_record_id      TEXT     NOT NULL DEFAULT '',
    -- Why the lead was rejected, set aside or cancelled (the CRM's error class, status and code; never lead data); '' otherwise.
    reason             TEXT     NOT NULL DEFAULT '',
    -- When the lead was routed to the CRM integration.
    created_at         DATETIME NOT NULL,
    -- When the delivery ended (delivered, rejected, gave_up or cancelled); NULL while pending.
    completed_at       DATETIME,
    -- Failures of the lead pushed alone while the CRM answered the next call: the lead's own; at the workers' limit it is set aside as gave_up.
    solo_failures      INTEGER  NOT NULL DEFAULT 0 CHECK (solo_failures >= 0),
    PRIMARY KEY (crm_integration_id, lead_id)
);
INSERT INTO lead_deliveries_new (crm_integration_id, lead_id, status, attempts, last_error, crm_record_id, reason, created_at, completed_at)
SELECT crm_integration_id, lead_id, status, attempts, last_error, crm_record_id, reason, created_at, completed_at FROM lead_deliveries;
DROP TABLE lead_deliveries;
ALTER TABLE lead_deliveries_new RENAME TO lead_deliveries;
CREATE INDEX lead_deliveries_pending_idx ON lead_deliveries (crm_integration_id, lead_id) WHERE status = 'pending';

-- +goose Down
-- The old statuses cannot say "set aside" or "cancelled": both become
-- rejected, keeping their reason, which is what they are to the old code (a
-- final outcome that is not a delivery).
-- lead_deliveries as 00002 made it (with 00004's index).
CREATE TABLE lead_deliveries_old (
    -- The CRM integration the lead goes to.
    crm_integration_id TEXT     NOT NULL,
    -- The lead.
    lead_id            INTEGER  NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    -- 'pending' until the CRM accepted the lead ('delivered') or refused it on its own merits ('rejected').
    status             TEXT     NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'rejected')),
    -- Failed delivery attempts so far.
    attempts           INTEGER  NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Error of the last failed attempt, without lead data; '' if none.
    last_error         TEXT     NOT NULL DEFAULT '',
    -- The CRM's ID of the record created for the lead; '' until delivered.
    crm_record_id      TEXT     NOT NULL DEFAULT '',
    -- Why the CRM rejected the lead, in its words; '' unless rejected.
    reason             TEXT     NOT NULL DEFAULT '',
    -- When the lead was routed to the CRM integration.
    created_at         DATETIME NOT NULL,
    -- When the delivery was completed (delivered or rejected); NULL while pending.
    completed_at       DATETIME,
    PRIMARY KEY (crm_integration_id, lead_id)
);
INSERT INTO lead_deliveries_old (crm_integration_id, lead_id, status, attempts, last_error, crm_record_id, reason, created_at, completed_at)
SELECT crm_integration_id, lead_id, CASE WHEN status IN ('gave_up', 'cancelled') THEN 'rejected' ELSE status END,
    attempts, last_error, crm_record_id, reason, created_at, completed_at FROM lead_deliveries;
DROP TABLE lead_deliveries;
ALTER TABLE lead_deliveries_old RENAME TO lead_deliveries;
CREATE INDEX lead_deliveries_pending_idx ON lead_deliveries (crm_integration_id, lead_id) WHERE status = 'pending';
