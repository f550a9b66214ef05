package salesforce_test

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/crmtest"
	"github.com/acme/integrations/crm/salesforce"
	"github.com/acme/integrations/crm/salesforce/salesforcefake"
)

// TestContract runs the connector contract suite against the Salesforce
// connector and the fake Salesforce, with every capability Salesforce has.
func TestContract(t *testing.T) {
	t.Parallel()
	crmtest.Run(t, setupHarness(t))
}

// The OAuth client the harness's connector is configured with.
const (
	testClientID     = "crmtest-connected-app"
	testClientSecret = "crmtest-client-s3cr3t-value"
)

// contractPacing makes the connector's pacing window the one LimitCalls
// sets (Salesforce's allocation is per 24 hours; the suite's windows last a
// second), with holds short enough to wait out.
func contractPacing() salesforce.Pacing {
	return salesforce.Pacing{Window: 2 * time.Second, Hold: 50 * time.Millisecond, MaxWait: 10 * time.Second}
}

// harness is Salesforce's side of the contract suite. An account is a fake
// org, addressed by its ID (the Account's Handle); its credentials come
// from the connector's own consent flow against the fake.
type harness struct {
	crmtest.Unsupported
	connector *salesforce.Connector
	fake      *salesforcefake.Client
	// pacing is the connector's pacing, whose window LimitCalls must use.
	pacing salesforce.Pacing
}

var _ crmtest.Harness = (*harness)(nil)

// setupHarness starts an in-memory fake Salesforce for the test and points
// a connector at it.
func setupHarness(t testing.TB) *harness {
	t.Helper()
	return setupHarnessPacing(t, contractPacing())
}

// setupHarnessPacing is setupHarness with the connector paced by pacing.
func setupHarnessPacing(t testing.TB, pacing salesforce.Pacing) *harness {
	t.Helper()
	server, err := salesforcefake.NewServer("")
	require.NoError(t, err)
	httpServer := httptest.NewServer(server.Handler())
	t.Cleanup(httpServer.Close)
	fake := salesforcefake.NewClient(httpServer.URL, httpServer.Client())
	return &harness{
		connector: salesforce.NewConnector(salesforce.Config{
			LoginURL: fake.LoginURL(), TestLoginURL: fake.TestLoginURL(),
			ClientID: testClientID, ClientSecret: testClientSecret,
			HTTPClient: httpServer.Client(), Pacing: pacing,
		}),
		fake:   fake,
		pacing: pacing,
	}
}

// Connector returns the Salesforce connector, pointed at the fake.
func (h *harness) Connector() crm.Connector { return h.connector }

// Capabilities: Salesforce has all of them.
func (h *harness) Capabilities() crmtest.Capabilities {
	return crmtest.Capabilities{APIDisabled: true, Refresh: true, Pacing: true, BatchRefusal: true, OAuth: true}
}

// NewAccount creates a production org with every permission and connects
// it through the consent page, as a customer would.
func (h *harness) NewAccount(t testing.TB) crmtest.Account {
	t.Helper()
	org, err := h.fake.CreateOrg(t.Context(), salesforcefake.OrgUpdate{})
	require.NoError(t, err)
	raw := connect(t, h.connector, h.fake, org.ID, false)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	return crmtest.Account{
		Handle:      org.ID,
		Credentials: raw,
		Secrets:     []string{doc["access_token"].(string), doc["refresh_token"].(string), testClientSecret},
	}
}

// connect plays the consent flow for an org of the fake and returns the
// credentials document the connector makes of it.
func connect(t testing.TB, c *salesforce.Connector, fake *salesforcefake.Client, orgID string, sandbox bool) []byte {
	t.Helper()
	const callback = "http://127.0.0.1:9/oauth/callback"
	consent, err := c.AuthCodeURL(crm.AuthRequest{State: "harness-state", RedirectURL: callback, Sandbox: sandbox})
	require.NoError(t, err)
	redirect, err := fake.Consent(t.Context(), consent, orgID)
	require.NoError(t, err)
	require.Equal(t, "harness-state", redirect.Query().Get("state"))
	raw, err := c.Exchange(t.Context(), crm.ExchangeRequest{Code: redirect.Query().Get("code"), RedirectURL: callback, Sandbox: sandbox})
	require.NoError(t, err)
	return raw
}

// Records reports the leads the org holds per lead key.
func (h *harness) Records(t testing.TB, acct crmtest.Account) map[string]int {
	t.Helper()
	leads, err := h.fake.Leads(t.Context(), acct.Handle)
	require.NoError(t, err)
	held := make(map[string]int, len(leads.ByKey))
	for key := range leads.ByKey {
		held[key] = 1
	}
	require.Len(t, held, leads.Leads)
	return held
}

// Calls returns the org's API calls (identity and REST) by the fake's
// clock.
func (h *harness) Calls(t testing.TB, acct crmtest.Account) []crmtest.Call {
	t.Helper()
	log, err := h.fake.Calls(t.Context(), acct.Handle)
	require.NoError(t, err)
	calls := make([]crmtest.Call, len(log))
	for i, c := range log {
		calls[i] = crmtest.Call{At: c.At, Status: c.Status}
	}
	return calls
}

// Revoke revokes the org's grants.
func (h *harness) Revoke(t testing.TB, acct crmtest.Account) {
	t.Helper()
	_, err := h.fake.Revoke(t.Context(), acct.Handle)
	require.NoError(t, err)
}

// Restore restores the org's grants.
func (h *harness) Restore(t testing.TB, acct crmtest.Account) {
	t.Helper()
	_, err := h.fake.Restore(t.Context(), acct.Handle)
	require.NoError(t, err)
}

// DropPermission takes Create on Lead away from the integration user.
func (h *harness) DropPermission(t testing.TB, acct crmtest.Account) string {
	t.Helper()
	_, err := h.fake.DropPermission(t.Context(), acct.Handle, salesforcefake.PermissionCreate)
	require.NoError(t, err)
	return salesforcefake.PermissionCreate
}

// FailNext fails the org's next calls, identity service and REST API
// alike.
func (h *harness) FailNext(t testing.TB, acct crmtest.Account, n, status int) {
	t.Helper()
	_, err := h.fake.UpdateFaults(t.Context(), acct.Handle, salesforcefake.FaultsUpdate{FailNext: &n, FailStatus: &status})
	require.NoError(t, err)
}

// RateLimitNext answers the org's next REST calls REQUEST_LIMIT_EXCEEDED.
// Salesforce says no delay (no Retry-After), so retryAfter is not told to
// the fake; the connector waits Pacing.Hold.
func (h *harness) RateLimitNext(t testing.TB, acct crmtest.Account, n int, _ time.Duration) {
	t.Helper()
	_, err := h.fake.UpdateFaults(t.Context(), acct.Handle, salesforcefake.FaultsUpdate{LimitExceededNext: &n})
	require.NoError(t, err)
}

// RejectRecords makes the fake refuse, as an address Salesforce does not
// take, every lead whose Email contains contains. Only "email" is a field
// the suite uses.
func (h *harness) RejectRecords(t testing.TB, acct crmtest.Account, field, contains string) string {
	t.Helper()
	require.Equal(t, "email", field, "the harness maps only the email field to Salesforce's")
	sfField, code := "Email", "INVALID_EMAIL_ADDRESS"
	_, err := h.fake.UpdateFaults(t.Context(), acct.Handle, salesforcefake.FaultsUpdate{RejectField: &sfField, RejectContains: &contains, RejectCode: &code})
	require.NoError(t, err)
	return "invalid email address (INVALID_EMAIL_ADDRESS)"
}

// DisableAPI turns the org's API off (API_DISABLED_FOR_ORG).
func (h *harness) DisableAPI(t testing.TB, acct crmtest.Account) {
	t.Helper()
	_, err := h.fake.DisableAPI(t.Context(), acct.Handle, true)
	require.NoError(t, err)
}

// ExpireAccessToken ends the org's sessions: its access tokens expire,
// its refresh tokens stay valid.
func (h *harness) ExpireAccessToken(t testing.TB, acct crmtest.Account) {
	t.Helper()
	n, err := h.fake.ExpireTokens(t.Context(), acct.Handle)
	require.NoError(t, err)
	require.Positive(t, n)
}

// LimitCalls sets the org's API allocation to n calls per window; the
// connector learns it from Sforce-Limit-Info, and its pacing window is the
// suite's (contractPacing).
func (h *harness) LimitCalls(t testing.TB, acct crmtest.Account, n int, window time.Duration) {
	t.Helper()
	require.Equal(t, h.pacing.Window, window, "the connector's pacing window is set for the caller's")
	_, err := h.fake.SetLimit(t.Context(), acct.Handle, n, window)
	require.NoError(t, err)
}

// RefuseBatches makes the fake refuse every upsert carrying a lead whose
// Email contains contains, with a 400 for the call.
func (h *harness) RefuseBatches(t testing.TB, acct crmtest.Account, field, contains string) {
	t.Helper()
	require.Equal(t, "email", field, "the harness maps only the email field to Salesforce's")
	sfField := "Email"
	_, err := h.fake.UpdateFaults(t.Context(), acct.Handle, salesforcefake.FaultsUpdate{RefuseField: &sfField, RefuseContains: &contains})
	require.NoError(t, err)
}

// Consent allows the access on the fake's consent page for a new org with
// every permission.
func (h *harness) Consent(t testing.TB, consentURL string) *url.URL {
	t.Helper()
	redirect, err := h.fake.Consent(t.Context(), consentURL, "")
	require.NoError(t, err)
	return redirect
}
