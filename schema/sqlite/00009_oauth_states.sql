-- oauth_states: the pending OAuth consents of CRM integrations (issue 8:
-- OAuth connect). `integrations authorize ID --oauth` (or the API) stores
-- one per consent URL it hands out; GET /oauth/callback consumes it. The
-- state value itself is never stored, only its SHA-256, so the table does
-- not hold what a forged callback would need. A state is single-use
-- (used_at), bound to one integration and expires. Keep
-- schema/postgres/00009_oauth_states.sql in step.

-- +goose Up
CREATE TABLE oauth_states (
    -- SHA-256 of the state value (32 bytes).
    state_hash     BLOB     NOT NULL PRIMARY KEY CHECK (typeof(state_hash) = 'blob' AND length(state_hash) = 32),
    -- The CRM integration the consent is for.
    integration_id TEXT     NOT NULL,
    -- Its CRM provider, whose connector exchanges the code.
    provider       TEXT     NOT NULL,
    -- The CRM's test environment was asked for (Salesforce sandboxes).
    sandbox        BOOLEAN  NOT NULL DEFAULT FALSE,
    -- The callback URL the consent page redirects to; the exchange must
    -- present the same one.
    redirect_url   TEXT     NOT NULL,
    -- Who asked for the consent URL (recorded as the authorize's actor).
    requested_by   TEXT     NOT NULL DEFAULT '',
    -- Who the request said acts (its "by"), kept beside the actor as the
    -- authorize's claimed_by; never trusted.
    claimed_by     TEXT     NOT NULL DEFAULT '',
    -- When the consent URL was handed out.
    created_at     DATETIME NOT NULL,
    -- After this the state is refused (starter.OAuthStateTTL).
    expires_at     DATETIME NOT NULL,
    -- When the callback used it; NULL while unused.
    used_at        DATETIME
);

CREATE INDEX oauth_states_integration_idx ON oauth_states (integration_id);

-- +goose Down
DROP TABLE oauth_states;
