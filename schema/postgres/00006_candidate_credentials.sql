-- Candidate credentials and key IDs, PostgreSQL dialect (issue 9: safe
-- re-authorization, key rotation). Keep
-- schema/sqlite/00006_candidate_credentials.sql in step.
--
-- crm_credentials changes meaning. A new version starts as a *candidate*
-- (promoted_at NULL), used only once validation promoted it; the current
-- credentials are the promoted version of the newest grant. A grant is one
-- authorization: an authorized version starts one (grant_version = its own
-- version), a refreshed OAuth token continues the grant it renews, so a
-- re-authorization validated after a refresh of the old grant still wins.
-- A candidate that fails validation is discarded: its ciphertext wiped,
-- its row kept so no later version reuses its number. Rows change in three
-- ways only (promotion, discard, a rewrap replacing ciphertext and key_id),
-- and all of an integration's rows are deleted when it is deleted.
--
-- Every existing row was in use under the old rule ("the highest version
-- is current"), so each becomes a promoted version of a grant of its own,
-- in the legacy format (key_id '').

-- +goose Up

-- The authorization this version belongs to: its own version for an authorized one, the renewed version's grant for a refreshed one.
ALTER TABLE crm_credentials ADD COLUMN grant_version INTEGER;
-- When validation promoted this version (or it was stored current, as a refresh is); NULL for a candidate, which is never used.
ALTER TABLE crm_credentials ADD COLUMN promoted_at TIMESTAMPTZ;
-- When a candidate was discarded (it failed validation, or its authorize failed); its ciphertext is then wiped and the row kept, so the version number is never reused.
ALTER TABLE crm_credentials ADD COLUMN discarded_at TIMESTAMPTZ;
-- ID of the key that sealed ciphertext (16 hex digits, see package credential); '' for the legacy format, sealed before key IDs.
ALTER TABLE crm_credentials ADD COLUMN key_id TEXT NOT NULL DEFAULT '';

UPDATE crm_credentials SET grant_version = version, promoted_at = created_at;
ALTER TABLE crm_credentials ALTER COLUMN grant_version SET NOT NULL;
ALTER TABLE crm_credentials ADD CONSTRAINT crm_credentials_grant_version_check CHECK (grant_version > 0 AND grant_version <= version);

-- The current credentials of an integration: its promoted version with the highest (grant_version, version).
CREATE INDEX crm_credentials_current_idx ON crm_credentials (integration_id, grant_version, version) WHERE promoted_at IS NOT NULL;

COMMENT ON TABLE crm_credentials IS 'Versioned CRM credentials, AES-256-GCM ciphertext with a key ID; a candidate version is used only once validation promoted it.';

-- +goose Down
-- The old rule makes the highest version current: candidates, never
-- validated, must not become it.
DELETE FROM crm_credentials WHERE promoted_at IS NULL;
DROP INDEX crm_credentials_current_idx;
ALTER TABLE crm_credentials DROP CONSTRAINT crm_credentials_grant_version_check;
ALTER TABLE crm_credentials DROP COLUMN key_id;
ALTER TABLE crm_credentials DROP COLUMN discarded_at;
ALTER TABLE crm_credentials DROP COLUMN promoted_at;
ALTER TABLE crm_credentials DROP COLUMN grant_version;

COMMENT ON TABLE crm_credentials IS 'Versioned CRM credentials, AES-256-GCM ciphertext only.';
