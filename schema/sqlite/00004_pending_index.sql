-- Delivery throughput, SQLite dialect: the index the CRM workflows read
-- their pending deliveries through holds pending rows only. Keep
-- schema/postgres/00004_pending_index.sql in step.
--
-- lead_deliveries_status_idx indexed every row by status, so completing a
-- delivery moved its entry; the partial index only loses one, and stays as
-- small as the backlog.

-- +goose Up
CREATE INDEX lead_deliveries_pending_idx ON lead_deliveries (crm_integration_id, lead_id) WHERE status = 'pending';
DROP INDEX lead_deliveries_status_idx;

-- +goose Down
CREATE INDEX lead_deliveries_status_idx ON lead_deliveries (crm_integration_id, status, lead_id);
DROP INDEX lead_deliveries_pending_idx;
