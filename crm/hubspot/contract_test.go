package hubspot_test

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/crmtest"
	"github.com/acme/integrations/crm/hubspot"
	"github.com/acme/integrations/crm/hubspot/hubspotfake"
)

// TestContract runs the connector contract suite against the HubSpot
// connector and the HubSpot fake, once with accounts connected through
// OAuth (tokens that expire and refresh, the consent page) and once with
// private-app tokens.
func TestContract(t *testing.T) {
	t.Parallel()
	t.Run("OAuth", func(t *testing.T) {
		t.Parallel()
		crmtest.Run(t, setupHarness(t, true))
	})
	t.Run("PrivateApp", func(t *testing.T) {
		t.Parallel()
		crmtest.Run(t, setupHarness(t, false))
	})
}

// harness is HubSpot's side of the contract suite. An account is a fake
// HubSpot portal, addressed by its hub ID (the Account's Handle), created
// with our two contact properties as the first validation would leave them.
type harness struct {
	crmtest.Unsupported
	oauth     bool
	connector *hubspot.Connector
	fake      *hubspotfake.Client
}

var _ crmtest.Harness = (*harness)(nil)

// harnessCallback is the redirect URI the harness's OAuth accounts' codes
// are bound to.
const harnessCallback = "http://127.0.0.1:9/oauth/callback"

// setupHarness starts an in-memory HubSpot fake and points a connector at
// it, with the fake's OAuth client.
func setupHarness(t testing.TB, oauth bool) *harness {
	t.Helper()
	server, err := hubspotfake.NewServer("")
	require.NoError(t, err)
	httpServer := httptest.NewServer(server.Handler())
	t.Cleanup(httpServer.Close)
	return &harness{
		oauth: oauth,
		connector: hubspot.New(hubspot.Config{
			APIURL: httpServer.URL, AuthURL: httpServer.URL + "/oauth/authorize",
			ClientID: hubspotfake.DevClientID, ClientSecret: hubspotfake.DevClientSecret,
			HTTPClient: httpServer.Client(),
		}),
		fake: hubspotfake.NewClient(httpServer.URL, httpServer.Client()),
	}
}

// Connector returns the HubSpot connector, pointed at the fake.
func (h *harness) Connector() crm.Connector { return h.connector }

// Capabilities: HubSpot paces by its headers and refuses whole batches for
// one invalid value; OAuth connections refresh and have a consent page.
// HubSpot has no "API disabled" state.
func (h *harness) Capabilities() crmtest.Capabilities {
	return crmtest.Capabilities{Pacing: true, BatchRefusal: true, Refresh: h.oauth, OAuth: h.oauth}
}

// leadProperties are the contact properties the connector's validation
// creates.
func leadProperties() []hubspotfake.Property {
	return []hubspotfake.Property{
		{Name: hubspot.KeyProperty, Label: "Lead key", Type: "string", FieldType: "text", GroupName: "contactinformation", HasUniqueValue: true},
		{Name: hubspot.SourceProperty, Label: "Lead source", Type: "string", FieldType: "text", GroupName: "contactinformation"},
	}
}

// NewAccount creates a portal with every default scope and our contact
// properties; an OAuth account's code is exchanged by the connector, so its
// credentials are the document a consent would give.
func (h *harness) NewAccount(t testing.TB) crmtest.Account {
	t.Helper()
	req := hubspotfake.CreateAccountRequest{Properties: leadProperties()}
	if h.oauth {
		req.OAuth, req.RedirectURI = true, harnessCallback
	}
	acct, err := h.fake.CreateAccount(t.Context(), req)
	require.NoError(t, err)
	handle := strconv.FormatInt(acct.HubID, 10)
	if !h.oauth {
		return crmtest.Account{Handle: handle, Credentials: []byte(`{"access_token":"` + acct.PrivateAppToken + `"}`), Secrets: []string{acct.PrivateAppToken}}
	}
	raw, err := h.connector.Exchange(t.Context(), crm.ExchangeRequest{Code: acct.Code, RedirectURL: harnessCallback})
	require.NoError(t, err)
	return crmtest.Account{Handle: handle, Credentials: raw, Secrets: tokensOf(t, raw)}
}

// tokensOf returns the tokens of a credentials document.
func tokensOf(t testing.TB, raw []byte) []string {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	var tokens []string
	for _, field := range []string{"access_token", "refresh_token"} {
		if s, ok := doc[field].(string); ok && s != "" {
			tokens = append(tokens, s)
		}
	}
	return tokens
}

func hubOf(t testing.TB, acct crmtest.Account) int64 {
	t.Helper()
	hub, err := strconv.ParseInt(acct.Handle, 10, 64)
	require.NoError(t, err)
	return hub
}

// Records reports one record per key the portal holds: the fake keeps
// contacts by their key, and its per-key counts are upserts.
func (h *harness) Records(t testing.TB, acct crmtest.Account) map[string]int {
	t.Helper()
	st, err := h.fake.Records(t.Context(), hubOf(t, acct))
	require.NoError(t, err)
	held := make(map[string]int, len(st.ByKey))
	for key := range st.ByKey {
		held[key] = 1
	}
	require.Len(t, held, st.Records)
	return held
}

// Calls returns the portal's /crm/ API calls (validation's among them).
func (h *harness) Calls(t testing.TB, acct crmtest.Account) []crmtest.Call {
	t.Helper()
	log, err := h.fake.Calls(t.Context(), hubOf(t, acct))
	require.NoError(t, err)
	calls := make([]crmtest.Call, len(log))
	for i, c := range log {
		calls[i] = crmtest.Call{At: c.At, Status: c.Status}
	}
	return calls
}

// Revoke deletes the private app's token, or uninstalls the OAuth app.
func (h *harness) Revoke(t testing.TB, acct crmtest.Account) {
	t.Helper()
	_, err := h.fake.Revoke(t.Context(), hubOf(t, acct))
	require.NoError(t, err)
}

// Restore undoes Revoke.
func (h *harness) Restore(t testing.TB, acct crmtest.Account) {
	t.Helper()
	_, err := h.fake.Restore(t.Context(), hubOf(t, acct))
	require.NoError(t, err)
}

// DropPermission drops the scope upserts need.
func (h *harness) DropPermission(t testing.TB, acct crmtest.Account) string {
	t.Helper()
	_, err := h.fake.DropScope(t.Context(), hubOf(t, acct), hubspotfake.ScopeContactsWrite)
	require.NoError(t, err)
	return hubspotfake.ScopeContactsWrite
}

// FailNext fails the portal's next n calls of any endpoint.
func (h *harness) FailNext(t testing.TB, acct crmtest.Account, n, status int) {
	t.Helper()
	_, err := h.fake.UpdateFaults(t.Context(), hubOf(t, acct), hubspotfake.FaultsUpdate{FailNext: &n, FailStatus: &status})
	require.NoError(t, err)
}

// RateLimitNext answers the next n upserts 429, with a Retry-After of
// retryAfter rounded up to seconds.
func (h *harness) RateLimitNext(t testing.TB, acct crmtest.Account, n int, retryAfter time.Duration) {
	t.Helper()
	seconds := int((retryAfter + time.Second - 1) / time.Second)
	_, err := h.fake.UpdateFaults(t.Context(), hubOf(t, acct), hubspotfake.FaultsUpdate{RateLimitNext: &n, RetryAfterSeconds: &seconds})
	require.NoError(t, err)
}

// property maps a crm.Record JSON field to the contact property the
// connector puts it in.
func property(t testing.TB, field string) string {
	t.Helper()
	p, ok := map[string]string{"email": "email", "phone": "phone", "message": "message", "company": "company",
		"source": hubspot.SourceProperty, "first_name": "firstname", "last_name": "lastname"}[field]
	require.True(t, ok, "no contact property for record field %s", field)
	return p
}

// RejectRecords sets the fake's reject rule, which refuses records in a 207
// as HubSpot refuses an invalid email.
func (h *harness) RejectRecords(t testing.TB, acct crmtest.Account, field, contains string) string {
	t.Helper()
	prop := property(t, field)
	_, err := h.fake.UpdateFaults(t.Context(), hubOf(t, acct), hubspotfake.FaultsUpdate{RejectProperty: &prop, RejectContains: &contains})
	require.NoError(t, err)
	if prop == "email" {
		return "invalid email (INVALID_EMAIL)"
	}
	return "(INVALID_PROPERTY_VALUE)"
}

// ExpireAccessToken expires the portal's OAuth access tokens.
func (h *harness) ExpireAccessToken(t testing.TB, acct crmtest.Account) {
	t.Helper()
	require.NoError(t, h.fake.ExpireTokens(t.Context(), hubOf(t, acct)))
}

// LimitCalls sets the portal's limit, which the fake's rate-limit headers
// then report.
func (h *harness) LimitCalls(t testing.TB, acct crmtest.Account, n int, window time.Duration) {
	t.Helper()
	ms := int(window / time.Millisecond)
	_, err := h.fake.UpdateFaults(t.Context(), hubOf(t, acct), hubspotfake.FaultsUpdate{LimitCalls: &n, LimitWindowMS: &ms})
	require.NoError(t, err)
}

// RefuseBatches sets the fake's refuse rule: a 400 for the whole batch.
func (h *harness) RefuseBatches(t testing.TB, acct crmtest.Account, field, contains string) {
	t.Helper()
	prop := property(t, field)
	_, err := h.fake.UpdateFaults(t.Context(), hubOf(t, acct), hubspotfake.FaultsUpdate{RefuseProperty: &prop, RefuseContains: &contains})
	require.NoError(t, err)
}

// Consent allows the fake's consent page for a new portal.
func (h *harness) Consent(t testing.TB, consentURL string) *url.URL {
	t.Helper()
	redirect, err := h.fake.Consent(t.Context(), consentURL, 0)
	require.NoError(t, err)
	return redirect
}
