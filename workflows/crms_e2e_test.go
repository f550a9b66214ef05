package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm/hubspot/hubspotfake"
	"github.com/acme/integrations/crm/salesforce/salesforcefake"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/store"
)

// These tests take an integration of each real CRM through its whole
// lifecycle against the CRM's fake, end to end: a real Temporal dev server,
// PostgreSQL, the worker, the HTTP API's OAuth callback, and the connector
// speaking the CRM's API to its fake (issue 8's acceptance).

// crmCase is what differs between the CRMs: how a customer connects and
// reconnects, and the CRM-side events the lifecycle must survive. An
// account is the fake's handle (a hub ID, an org ID, an API key).
type crmCase struct {
	provider string
	// connect authorizes id with a new account of the fake and returns
	// the account; reconnect authorizes again after a revoke.
	connect   func(t *testing.T, b *crmsBundle, id string) string
	reconnect func(t *testing.T, b *crmsBundle, id, account string)
	// deliveries is how many times the fake took each lead key.
	deliveries func(t *testing.T, b *crmsBundle, account string) map[string]int
	// expireAccessToken ends the account's access tokens (nil: the CRM's
	// keys do not expire).
	expireAccessToken func(t *testing.T, b *crmsBundle, account string)
	revoke            func(t *testing.T, b *crmsBundle, account string)
	// dropPermission removes a permission the service needs and returns
	// the name the failed check must name (nil: the CRM has none).
	dropPermission func(t *testing.T, b *crmsBundle, account string) string
	// restorePermission undoes dropPermission.
	restorePermission func(t *testing.T, b *crmsBundle, account, permission string)
	// disableAPI turns the account's API access off (nil: the CRM cannot).
	disableAPI func(t *testing.T, b *crmsBundle, account string)
}

type crmsBundle struct {
	*flowBundle
	// secrets gathers every credential secret, OAuth code and state the
	// test saw, of every grant and refresh: what no history or log may
	// contain at the end.
	secrets []string
}

func setupCRMs(t *testing.T) *crmsBundle {
	t.Helper()
	return &crmsBundle{flowBundle: setupFlow(t, testenv.Database{Name: "postgres", URL: testenv.PostgresURL(t)})}
}

// oauthConnect starts an OAuth connect of id, lets consent play the
// customer on the fake's consent page, and opens the redirect as the
// customer's browser would: our callback, on the stack's HTTP API.
func (b *crmsBundle) oauthConnect(t *testing.T, id string, consent func(consentURL string) (*url.URL, error)) {
	t.Helper()
	c, err := b.stack.Starter.StartOAuth(b.ctx, id, "test", false)
	require.NoError(t, err)
	redirect, err := consent(c.URL)
	require.NoError(t, err)
	require.Equal(t, b.stack.HTTPURL+"/oauth/callback", redirect.Scheme+"://"+redirect.Host+redirect.Path, "the consent page sends the browser to our callback")
	for _, param := range []string{"code", "state"} {
		v := redirect.Query().Get(param)
		require.NotEmpty(t, v, "the redirect carries the %s", param)
		b.secrets = append(b.secrets, v)
	}
	resp, err := http.Get(redirect.String())
	require.NoError(t, err)
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "callback page: %s", page)
	require.Contains(t, string(page), "is connected")
}

var crmCases = []crmCase{
	{
		provider: "hubspot",
		connect: func(t *testing.T, b *crmsBundle, id string) string {
			acct, err := b.stack.HubSpot.CreateAccount(b.ctx, hubspotfake.CreateAccountRequest{OAuth: true, RedirectURI: b.stack.HTTPURL + "/oauth/callback"})
			require.NoError(t, err)
			b.oauthConnect(t, id, func(u string) (*url.URL, error) { return b.stack.HubSpot.Consent(b.ctx, u, acct.HubID) })
			return fmt.Sprint(acct.HubID)
		},
		reconnect: func(t *testing.T, b *crmsBundle, id, account string) {
			b.oauthConnect(t, id, func(u string) (*url.URL, error) { return b.stack.HubSpot.Consent(b.ctx, u, hubID(t, account)) })
		},
		deliveries: func(t *testing.T, b *crmsBundle, account string) map[string]int {
			stats, err := b.stack.HubSpot.Records(b.ctx, hubID(t, account))
			require.NoError(t, err)
			return stats.ByKey
		},
		expireAccessToken: func(t *testing.T, b *crmsBundle, account string) {
			require.NoError(t, b.stack.HubSpot.ExpireTokens(b.ctx, hubID(t, account)))
		},
		revoke: func(t *testing.T, b *crmsBundle, account string) {
			_, err := b.stack.HubSpot.Revoke(b.ctx, hubID(t, account))
			require.NoError(t, err)
		},
		dropPermission: func(t *testing.T, b *crmsBundle, account string) string {
			_, err := b.stack.HubSpot.DropScope(b.ctx, hubID(t, account), hubspotfake.ScopeContactsWrite)
			require.NoError(t, err)
			return hubspotfake.ScopeContactsWrite
		},
		restorePermission: func(t *testing.T, b *crmsBundle, account, scope string) {
			_, err := b.stack.HubSpot.AddScope(b.ctx, hubID(t, account), scope)
			require.NoError(t, err)
		},
	},
	{
		provider: "salesforce",
		connect: func(t *testing.T, b *crmsBundle, id string) string {
			org, err := b.stack.Salesforce.CreateOrg(b.ctx, salesforcefake.OrgUpdate{})
			require.NoError(t, err)
			b.oauthConnect(t, id, func(u string) (*url.URL, error) { return b.stack.Salesforce.Consent(b.ctx, u, org.ID) })
			return org.ID
		},
		reconnect: func(t *testing.T, b *crmsBundle, id, org string) {
			b.oauthConnect(t, id, func(u string) (*url.URL, error) { return b.stack.Salesforce.Consent(b.ctx, u, org) })
		},
		deliveries: func(t *testing.T, b *crmsBundle, org string) map[string]int {
			leads, err := b.stack.Salesforce.Leads(b.ctx, org)
			require.NoError(t, err)
			out := map[string]int{}
			for key, lead := range leads.ByKey {
				out[key] = lead.Upserts
			}
			return out
		},
		expireAccessToken: func(t *testing.T, b *crmsBundle, org string) {
			_, err := b.stack.Salesforce.ExpireTokens(b.ctx, org)
			require.NoError(t, err)
		},
		revoke: func(t *testing.T, b *crmsBundle, org string) {
			_, err := b.stack.Salesforce.Revoke(b.ctx, org)
			require.NoError(t, err)
		},
		dropPermission: func(t *testing.T, b *crmsBundle, org string) string {
			_, err := b.stack.Salesforce.DropPermission(b.ctx, org, "Edit")
			require.NoError(t, err)
			return "Edit"
		},
		restorePermission: func(t *testing.T, b *crmsBundle, org, permission string) {
			_, err := b.stack.Salesforce.AddPermission(b.ctx, org, permission)
			require.NoError(t, err)
		},
		disableAPI: func(t *testing.T, b *crmsBundle, org string) {
			_, err := b.stack.Salesforce.DisableAPI(b.ctx, org, true)
			require.NoError(t, err)
		},
	},
	{
		provider: "followupboss",
		connect: func(t *testing.T, b *crmsBundle, id string) string {
			acct, err := b.stack.FollowUpBoss.CreateAccount(b.ctx)
			require.NoError(t, err)
			b.keyConnect(t, id, acct.APIKey)
			return acct.APIKey
		},
		reconnect: func(t *testing.T, b *crmsBundle, id, key string) {
			// A customer whose key was deleted makes a new one; in the
			// fake the same key comes back.
			_, err := b.stack.FollowUpBoss.Restore(b.ctx, key)
			require.NoError(t, err)
			b.keyConnect(t, id, key)
		},
		deliveries: func(t *testing.T, b *crmsBundle, key string) map[string]int {
			stats, err := b.stack.FollowUpBoss.Records(b.ctx, key)
			require.NoError(t, err)
			out := map[string]int{}
			for tag, n := range stats.EventsByTag {
				if k, ok := strings.CutPrefix(tag, "lead-id:"); ok {
					out[k] = n
				}
			}
			return out
		},
		revoke: func(t *testing.T, b *crmsBundle, key string) {
			_, err := b.stack.FollowUpBoss.Revoke(b.ctx, key)
			require.NoError(t, err)
		},
		// A locked account is Follow Up Boss's API-disabled state.
		disableAPI: func(t *testing.T, b *crmsBundle, key string) {
			_, err := b.stack.FollowUpBoss.Lock(b.ctx, key)
			require.NoError(t, err)
		},
	},
}

// keyConnect authorizes id with an API key document.
func (b *crmsBundle) keyConnect(t *testing.T, id, apiKey string) {
	t.Helper()
	doc, err := json.Marshal(map[string]string{"api_key": apiKey})
	require.NoError(t, err)
	_, err = b.stack.Starter.Authorize(b.ctx, id, doc, "test")
	require.NoError(t, err)
}

func hubID(t *testing.T, account string) int64 {
	t.Helper()
	var n int64
	_, err := fmt.Sscan(account, &n)
	require.NoError(t, err)
	return n
}

// leadKeys returns the CRM record keys (our lead IDs) of every lead routed
// to crmID.
func (b *crmsBundle) leadKeys(t *testing.T, crmID string) map[string]int {
	t.Helper()
	db := testenv.OpenSQL(t, b.stack.DB.URL)
	defer db.Close()
	rows, err := db.QueryContext(b.ctx, db.Rebind(`SELECT lead_id FROM lead_deliveries WHERE crm_integration_id = ?`), crmID)
	require.NoError(t, err)
	defer rows.Close()
	keys := map[string]int{}
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		keys[fmt.Sprint(id)] = 1
	}
	require.NoError(t, rows.Err())
	return keys
}

// waitPaused waits for id to be paused with reason and returns its state.
func (b *crmsBundle) waitPaused(t *testing.T, id string, reason integration.Reason) integration.State {
	t.Helper()
	var st integration.State
	require.Eventually(t, func() bool {
		st = b.state(t, id)
		return st.Status == integration.StatusPaused && st.Reason == reason
	}, 60*time.Second, 100*time.Millisecond, "%s paused with %s", id, reason)
	return st
}

func failedCheck(st integration.State, code integration.Reason) *integration.Check {
	if st.Validation == nil {
		return nil
	}
	for _, c := range st.Validation.Checks {
		if !c.OK && c.Code == code {
			return &c
		}
	}
	return nil
}

func TestRealCRMsEndToEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range crmCases {
		t.Run(tc.provider, func(t *testing.T) {
			t.Parallel()
			b := setupCRMs(t)
			b.activeLead(t)
			id := testenv.ID(tc.provider)
			_, err := b.stack.Starter.Create(b.ctx, integration.Spec{ID: id, OrgID: b.org, Kind: integration.KindCRM, Provider: tc.provider}, "test")
			require.NoError(t, err)

			account := tc.connect(t, b, id)
			b.rememberSecrets(t, id)
			st, err := b.stack.Starter.Command(b.ctx, id, integration.EventCompleteSetup, "test", "")
			require.NoError(t, err)
			require.Equal(t, integration.StatusActive, st.Status)

			// Leads reach the CRM exactly once each.
			b.sendLeads(t, 3, "Z")
			b.waitDelivered(t, id, 3)
			require.Equal(t, b.leadKeys(t, id), tc.deliveries(t, b, account), "each lead once, by our lead key")

			// An access token that expires is refreshed without a pause.
			if tc.expireAccessToken != nil {
				tc.expireAccessToken(t, b, account)
				b.sendLeads(t, 2, "Z")
				b.waitDelivered(t, id, 5)
				require.Equal(t, integration.StatusActive, b.state(t, id).Status)
				b.rememberSecrets(t, id) // the refreshed tokens
				for _, tr := range b.transitions(t, id) {
					require.NotContains(t, tr, "paused", "the expiry was refreshed, never a pause")
				}
			}
			delivered := int64(len(b.leadKeys(t, id)))

			// The grant is revoked: paused, expired_credentials, the org
			// notified; the lead waits.
			tc.revoke(t, b, account)
			b.sendLeads(t, 1, "Z")
			b.waitPaused(t, id, integration.ReasonExpiredCredentials)
			requireNotices(t, b.flowBundle, id, "paused", store.NotificationOpen, 2)
			require.Equal(t, int64(1), b.counts(t, id).Pending)

			// Connecting again: active, the waiting lead delivered, the
			// notice resolved.
			tc.reconnect(t, b, id, account)
			b.waitStatus(t, id, integration.StatusActive)
			b.waitDelivered(t, id, delivered+1)
			b.rememberSecrets(t, id)
			requireNotices(t, b.flowBundle, id, "paused", store.NotificationResolved, 2)
			require.Equal(t, b.leadKeys(t, id), tc.deliveries(t, b, account), "still each lead once")

			// A permission the service needs is removed: paused,
			// insufficient_permissions, naming it.
			if tc.dropPermission != nil {
				permission := tc.dropPermission(t, b, account)
				b.sendLeads(t, 1, "Z")
				st := b.waitPaused(t, id, integration.ReasonInsufficientPermissions)
				check := failedCheck(st, integration.ReasonInsufficientPermissions)
				require.NotNil(t, check, "a failed check with insufficient_permissions")
				require.Contains(t, check.Message, permission, "the check names what is missing")
				tc.restorePermission(t, b, account, permission)
				b.reconnectAfterPause(t, tc, id, account)
			}

			// API access is turned off: paused, api_disabled.
			if tc.disableAPI != nil {
				tc.disableAPI(t, b, account)
				b.sendLeads(t, 1, "Z")
				st := b.waitPaused(t, id, integration.ReasonAPIDisabled)
				require.NotNil(t, failedCheck(st, integration.ReasonAPIDisabled))
			}

			// No token, key or lead data in the workflow's history or the
			// worker's logs.
			history := testenv.HistoryText(t, b.stack.Temporal, integration.WorkflowID(integration.KindCRM, id))
			logs := b.stack.Logs.String()
			b.rememberSecrets(t, id)
			require.NotEmpty(t, b.secrets)
			// The lead data as intake stored it and as the connectors
			// send it (the name in parts).
			for _, s := range append(b.secrets, leadPII...) {
				testenv.RequireAbsent(t, history, s, "a secret or lead data")
				require.NotContains(t, logs, s)
			}
		})
	}
}

// reconnectAfterPause waits for the periodic validation to find the
// restored permission, or reconnects, and then for the pending leads.
func (b *crmsBundle) reconnectAfterPause(t *testing.T, tc crmCase, id, account string) {
	t.Helper()
	tc.reconnect(t, b, id, account)
	b.waitStatus(t, id, integration.StatusActive)
	require.Eventually(t, func() bool { return b.counts(t, id).Pending == 0 }, 60*time.Second, 100*time.Millisecond,
		"%s delivers what waited", id)
}

// rememberSecrets adds the secret values of every stored version of id's
// credentials (candidates, refreshed and superseded grants) to b.secrets.
func (b *crmsBundle) rememberSecrets(t *testing.T, id string) {
	t.Helper()
	current, err := b.stack.Store.CurrentCredential(context.Background(), id)
	require.NoError(t, err)
	// Versions are allocated in order; a candidate may be newer than the
	// current one, so look a few past it.
	for version := 1; version <= current.Version+3; version++ {
		cred, err := b.stack.Store.CredentialVersion(context.Background(), id, version)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		require.NoError(t, err)
		raw, err := b.stack.Keyring.Open(cred.Ciphertext, id, cred.Version)
		require.NoError(t, err)
		var doc map[string]any
		require.NoError(t, json.Unmarshal(raw, &doc))
		for _, field := range []string{"access_token", "refresh_token", "api_key"} {
			if v, ok := doc[field].(string); ok && v != "" && !slices.Contains(b.secrets, v) {
				b.secrets = append(b.secrets, v)
			}
		}
	}
}
