-- API keys of the HTTP API, SQLite dialect (modernc.org/sqlite), and the
-- claimed actor of a command beside the authenticated one. Keep
-- schema/postgres/00005_api_keys.sql in step.
--
-- A key is printed once when it is created and stored only as its SHA-256:
-- a read of this table gives nobody a key. An org key sees and commands the
-- integrations of its org only; an admin key (an operator's) every org's.
-- Revoked keys stay, so the actors of past commands keep a row to point at.
-- Types follow 00001_init.sql: DATETIME for times, BOOLEAN 0/1, BLOB bytes.

-- +goose Up

-- api_keys: who may call the HTTP API, one row per key ever issued.
CREATE TABLE api_keys (
    -- The key's public ID (16 hex digits), part of the key itself; what `api-key list` shows and `revoke` takes.
    id         TEXT     NOT NULL PRIMARY KEY CHECK (length(id) = 16 AND id NOT GLOB '*[^0-9a-f]*'),
    -- The org the key is scoped to; '' for an admin key.
    org_id     TEXT     NOT NULL DEFAULT '',
    -- An operator's key: every org, and no org of its own.
    admin      BOOLEAN  NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
    -- Who holds it (a person, a backend, a script): the recorded actor of its commands.
    name       TEXT     NOT NULL CHECK (name <> ''),
    -- SHA-256 of the whole key; never the key.
    key_hash   BLOB     NOT NULL CHECK (length(key_hash) = 32),
    -- When it was issued.
    created_at DATETIME NOT NULL,
    -- When it was revoked; NULL while it works.
    revoked_at DATETIME,
    CHECK ((admin = 1 AND org_id = '') OR (admin = 0 AND org_id <> ''))
);

-- A name names one working key per org (admin keys share org ''), so the
-- recorded actor is unambiguous; a revoked key's name may be issued again.
CREATE UNIQUE INDEX api_keys_org_name_idx ON api_keys (org_id, name) WHERE revoked_at IS NULL;

-- The "by" the caller of an API command gave, kept beside the actor (the
-- API key's name), which the caller cannot choose; '' when none was given
-- or the actor is the caller's own claim (CLI, system).
ALTER TABLE integration_events ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE integration_events DROP COLUMN claimed_by;
DROP TABLE api_keys;
