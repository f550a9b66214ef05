-- Delivery throughput, PostgreSQL dialect: the index the CRM workflows read
-- their pending deliveries through holds pending rows only. Keep
-- schema/sqlite/00004_pending_index.sql in step.
--
-- lead_deliveries_status_idx indexed every row by status, so completing a
-- delivery added an entry for its new status, and reading the oldest
-- pending ones walked past the entries of completed rows until VACUUM.
-- The partial index gains nothing when a delivery completes and stays as
-- small as the backlog. Built concurrently: lead_deliveries is the largest
-- table and intake writes to it all the time.

-- +goose NO TRANSACTION
-- +goose Up
-- An interrupted concurrent build leaves an invalid index behind; a re-run
-- starts afresh rather than keep it.
DROP INDEX CONCURRENTLY IF EXISTS lead_deliveries_pending_idx;
CREATE INDEX CONCURRENTLY lead_deliveries_pending_idx ON lead_deliveries (crm_integration_id, lead_id) WHERE status = 'pending';
DROP INDEX CONCURRENTLY IF EXISTS lead_deliveries_status_idx;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS lead_deliveries_status_idx;
CREATE INDEX CONCURRENTLY lead_deliveries_status_idx ON lead_deliveries (crm_integration_id, status, lead_id);
DROP INDEX CONCURRENTLY IF EXISTS lead_deliveries_pending_idx;
