-- CRM sync health on the integrations status row (design §2, sync rows):
-- what `status` shows of a failing sync. Written by the projection like
-- every other column, under the same version guard. Keep
-- schema/postgres/00003_sync_health.sql in step.

-- +goose Up

-- Consecutive failed delivery attempts; 0 once a sync succeeds.
ALTER TABLE integrations ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0);
-- When the current run of failures began; NULL while syncing fine.
ALTER TABLE integrations ADD COLUMN failing_since DATETIME;
-- The last sync error (status code and class; never lead data); '' when none.
ALTER TABLE integrations ADD COLUMN last_sync_error TEXT NOT NULL DEFAULT '';
-- When the failing sync is retried next; NULL when not failing.
ALTER TABLE integrations ADD COLUMN next_attempt_at DATETIME;

-- +goose Down
ALTER TABLE integrations DROP COLUMN next_attempt_at;
ALTER TABLE integrations DROP COLUMN last_sync_error;
ALTER TABLE integrations DROP COLUMN failing_since;
ALTER TABLE integrations DROP COLUMN consecutive_failures;
