package followupboss_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/crmtest"
	"github.com/acme/integrations/crm/followupboss"
	"github.com/acme/integrations/crm/followupboss/followupbossfake"
)

// TestContract runs the connector contract suite against the Follow Up
// Boss connector and the fake Follow Up Boss.
func TestContract(t *testing.T) {
	t.Parallel()
	crmtest.Run(t, setupHarness(t))
}

// The registered system the harness's connector identifies as.
const (
	testSystem    = "AcmeIntegrationsTest"
	testSystemKey = "sys-key-for-tests"
)

// harness is Follow Up Boss's side of the contract suite. An account is
// addressed by its API key, the Account's Handle. API keys do not expire
// (no Refresh) and carry no permissions (NoPermissions); a locked account
// is the API access the suite turns off.
type harness struct {
	crmtest.Unsupported
	connector *followupboss.Connector
	fake      *followupbossfake.Client
}

var _ crmtest.Harness = (*harness)(nil)

// setupHarness starts an in-memory fake for the test, registers the test
// system with it and points a connector at it.
func setupHarness(t testing.TB) *harness {
	t.Helper()
	server, err := followupbossfake.NewServer("")
	require.NoError(t, err)
	require.NoError(t, server.RegisterSystem(testSystem, testSystemKey))
	httpServer := httptest.NewServer(server.Handler())
	t.Cleanup(httpServer.Close)
	return &harness{
		connector: followupboss.NewConnector(followupboss.Config{
			APIURL: httpServer.URL, System: testSystem, SystemKey: testSystemKey, HTTPClient: httpServer.Client(),
		}),
		fake: followupbossfake.NewClient(httpServer.URL, httpServer.Client()),
	}
}

// Connector returns the connector, pointed at the fake.
func (h *harness) Connector() crm.Connector { return h.connector }

// Capabilities: a locked account refuses every call (APIDisabled); the
// connector paces; a request too large is refused as a whole (413); keys
// have no permissions.
func (h *harness) Capabilities() crmtest.Capabilities {
	return crmtest.Capabilities{APIDisabled: true, Pacing: true, BatchRefusal: true, NoPermissions: true}
}

// NewAccount creates an active account.
func (h *harness) NewAccount(t testing.TB) crmtest.Account {
	t.Helper()
	acct, err := h.fake.CreateAccount(t.Context())
	require.NoError(t, err)
	return crmtest.Account{
		Handle:      acct.APIKey,
		Credentials: []byte(`{"api_key":"` + acct.APIKey + `"}`),
		Secrets:     []string{acct.APIKey},
	}
}

// Records counts, per lead key, the events whose person carried the key's
// tag: Follow Up Boss keeps one contact per email or phone, so the events
// are where a repeated delivery would show.
func (h *harness) Records(t testing.TB, acct crmtest.Account) map[string]int {
	t.Helper()
	st, err := h.fake.Records(t.Context(), acct.Handle)
	require.NoError(t, err)
	held := map[string]int{}
	for tag, n := range st.EventsByTag {
		if key, ok := strings.CutPrefix(tag, followupboss.KeyTag("")); ok {
			held[key] = n
		}
	}
	return held
}

// Calls returns every API call of the account, validation included.
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

// Revoke revokes the account's API key.
func (h *harness) Revoke(t testing.TB, acct crmtest.Account) {
	t.Helper()
	_, err := h.fake.Revoke(t.Context(), acct.Handle)
	require.NoError(t, err)
}

// Restore restores the account's API key.
func (h *harness) Restore(t testing.TB, acct crmtest.Account) {
	t.Helper()
	_, err := h.fake.Restore(t.Context(), acct.Handle)
	require.NoError(t, err)
}

// FailNext fails the account's next n calls, whatever their endpoint.
func (h *harness) FailNext(t testing.TB, acct crmtest.Account, n, status int) {
	t.Helper()
	_, err := h.fake.UpdateFaults(t.Context(), acct.Handle, followupbossfake.FaultsUpdate{FailNext: &n, FailStatus: &status})
	require.NoError(t, err)
}

// RateLimitNext answers the next n delivery calls 429, with retryAfter
// rounded up to whole seconds (Retry-After's unit).
func (h *harness) RateLimitNext(t testing.TB, acct crmtest.Account, n int, retryAfter time.Duration) {
	t.Helper()
	seconds := int((retryAfter + time.Second - 1) / time.Second)
	_, err := h.fake.UpdateFaults(t.Context(), acct.Handle, followupbossfake.FaultsUpdate{RateLimitNext: &n, RetryAfterSeconds: &seconds})
	require.NoError(t, err)
}

// fakeField is the fake's name of a crm.Record JSON field.
func fakeField(t testing.TB, field string) string {
	t.Helper()
	f, ok := map[string]string{
		"source": "source", "name": "name", "first_name": "firstName", "last_name": "lastName",
		"email": "email", "phone": "phone", "message": "message",
	}[field]
	require.True(t, ok, "the fake cannot match field %s", field)
	return f
}

// RejectRecords sets the fake's reject rule: a 400 whose errorMessage
// quotes the value, which the connector reports without it.
func (h *harness) RejectRecords(t testing.TB, acct crmtest.Account, field, contains string) string {
	t.Helper()
	f := fakeField(t, field)
	_, err := h.fake.UpdateFaults(t.Context(), acct.Handle, followupbossfake.FaultsUpdate{RejectField: &f, RejectContains: &contains})
	require.NoError(t, err)
	switch field {
	case "email":
		return followupboss.ReasonInvalidEmail
	case "phone":
		return followupboss.ReasonInvalidPhone
	case "name", "first_name", "last_name":
		return followupboss.ReasonInvalidName
	}
	return followupboss.ReasonRefused
}

// DisableAPI locks the account: its grace period is over, every call 403.
func (h *harness) DisableAPI(t testing.TB, acct crmtest.Account) {
	t.Helper()
	_, err := h.fake.Lock(t.Context(), acct.Handle)
	require.NoError(t, err)
}

// LimitCalls makes every context of the account allow n calls per window,
// which the fake's X-RateLimit-* headers then state.
func (h *harness) LimitCalls(t testing.TB, acct crmtest.Account, n int, window time.Duration) {
	t.Helper()
	require.Zero(t, window%time.Second, "Follow Up Boss states its window in whole seconds")
	require.NoError(t, h.fake.SetLimits(t.Context(), acct.Handle, followupbossfake.Limits{Limit: n, WindowSeconds: int(window / time.Second)}))
}

// RefuseBatches sets the fake's refuse rule: a 413 for the call.
func (h *harness) RefuseBatches(t testing.TB, acct crmtest.Account, field, contains string) {
	t.Helper()
	f := fakeField(t, field)
	_, err := h.fake.UpdateFaults(t.Context(), acct.Handle, followupbossfake.FaultsUpdate{RefuseField: &f, RefuseContains: &contains})
	require.NoError(t, err)
}
