-- crm_quotas: the API allowance each CRM integration's CRM last reported
-- in its rate-limit headers (X-HubSpot-RateLimit-*, Sforce-Limit-Info,
-- X-RateLimit-*), written by the delivery activity after each round and
-- shown by `status`. One row per CRM integration, replaced each time; it
-- holds counts only. Keep schema/postgres/00010_crm_quotas.sql in step.

-- +goose Up
CREATE TABLE crm_quotas (
    -- The CRM integration.
    integration_id TEXT     NOT NULL PRIMARY KEY,
    -- Calls left of the limit in the window, as the CRM said.
    remaining      INTEGER  NOT NULL,
    call_limit     INTEGER  NOT NULL,
    -- What the numbers are about: "10s" (a rolling burst window), "24h"
    -- (a daily allocation), as the connector names it.
    window_name    TEXT     NOT NULL,
    -- When the CRM reported it.
    observed_at    DATETIME NOT NULL
);

-- +goose Down
DROP TABLE crm_quotas;
