-- Deliveries that end without the CRM taking them, PostgreSQL dialect
-- (issue 9: nothing stalls the queue). Keep
-- schema/sqlite/00007_delivery_outcomes.sql in step.
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
-- Not in a transaction, so that no statement holds lead_deliveries locked
-- while another scans it: the new CHECK is added NOT VALID (no scan, a
-- brief lock) and validated on its own, which lets intake and delivery
-- write meanwhile. Every statement can run again after an interruption.

-- +goose NO TRANSACTION
-- +goose Up
-- Failures of the lead pushed alone while the CRM answered the next call: the lead's own; at the workers' limit it is set aside as gave_up.
ALTER TABLE lead_deliveries ADD COLUMN IF NOT EXISTS solo_failures INTEGER NOT NULL DEFAULT 0 CHECK (solo_failures >= 0);
ALTER TABLE lead_deliveries DROP CONSTRAINT IF EXISTS lead_deliveries_status_check;
ALTER TABLE lead_deliveries ADD CONSTRAINT lead_deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'rejected', 'gave_up', 'cancelled')) NOT VALID;
ALTER TABLE lead_deliveries VALIDATE CONSTRAINT lead_deliveries_status_check;

COMMENT ON TABLE lead_deliveries IS 'Delivery of each lead to each CRM integration of its org: pending, delivered, rejected, gave_up or cancelled.';

-- +goose Down
-- The old statuses cannot say "set aside" or "cancelled": both become
-- rejected, keeping their reason, which is what they are to the old code (a
-- final outcome that is not a delivery).
UPDATE lead_deliveries SET status = 'rejected' WHERE status IN ('gave_up', 'cancelled');
ALTER TABLE lead_deliveries DROP CONSTRAINT IF EXISTS lead_deliveries_status_check;
ALTER TABLE lead_deliveries ADD CONSTRAINT lead_deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'rejected')) NOT VALID;
ALTER TABLE lead_deliveries VALIDATE CONSTRAINT lead_deliveries_status_check;
ALTER TABLE lead_deliveries DROP COLUMN IF EXISTS solo_failures;

COMMENT ON TABLE lead_deliveries IS 'Delivery of each lead to each CRM integration of its org: pending, delivered or rejected.';
