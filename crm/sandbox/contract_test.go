package sandbox_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/crmtest"
	"github.com/acme/integrations/crm/sandbox"
	"github.com/acme/integrations/crm/sandbox/sandboxfake"
)

// TestContract runs the connector contract suite against the sandbox
// connector and the sandbox fake.
func TestContract(t *testing.T) {
	t.Parallel()
	crmtest.Run(t, setupHarness(t))
}

// harness is the sandbox's side of the contract suite. A sandbox account is
// addressed by its API key, which is the Account's Handle. API keys do not
// expire, the connector does not pace and the sandbox has no consent page,
// so it has no ExpireAccessToken, LimitCalls or Consent.
type harness struct {
	crmtest.Unsupported
	connector *sandbox.Connector
	fake      *sandboxfake.Client
}

var _ crmtest.Harness = (*harness)(nil)

// setupHarness starts an in-memory sandbox fake for the test and points a
// connector at it.
func setupHarness(t testing.TB) *harness {
	t.Helper()
	server, err := sandboxfake.NewServer("")
	require.NoError(t, err)
	httpServer := httptest.NewServer(server.Handler())
	t.Cleanup(httpServer.Close)
	return &harness{
		connector: sandbox.NewConnector(httpServer.URL, nil),
		fake:      sandboxfake.NewClient(httpServer.URL, httpServer.Client()),
	}
}

// Connector returns the sandbox connector, pointed at the fake.
func (h *harness) Connector() crm.Connector { return h.connector }

// Capabilities: the sandbox can turn API access off and refuse a batch for
// what it carries; its API keys do not expire and the connector does not
// pace.
func (h *harness) Capabilities() crmtest.Capabilities {
	return crmtest.Capabilities{APIDisabled: true, BatchRefusal: true}
}

// NewAccount creates a sandbox account with the default scopes.
func (h *harness) NewAccount(t testing.TB) crmtest.Account {
	t.Helper()
	acct, err := h.fake.CreateAccount(t.Context(), nil)
	require.NoError(t, err)
	return crmtest.Account{
		Handle:      acct.APIKey,
		Credentials: []byte(`{"api_key":"` + acct.APIKey + `"}`),
		Secrets:     []string{acct.APIKey},
	}
}

// Records reports one record per key the account holds: the sandbox keeps
// contacts by key, and its per-key counts are upserts, not records.
func (h *harness) Records(t testing.TB, acct crmtest.Account) map[string]int {
	t.Helper()
	st, err := h.fake.Records(t.Context(), acct.Handle)
	require.NoError(t, err)
	held := make(map[string]int, len(st.ByKey))
	for key := range st.ByKey {
		held[key] = 1
	}
	require.Len(t, held, st.Records)
	return held
}

// Calls returns the account's contacts calls: the sandbox logs no
// validation calls.
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

// DropPermission drops the scope pushes need.
func (h *harness) DropPermission(t testing.TB, acct crmtest.Account) string {
	t.Helper()
	_, err := h.fake.DropScope(t.Context(), acct.Handle, sandbox.ScopeContactsWrite)
	require.NoError(t, err)
	return sandbox.ScopeContactsWrite
}

// FailNext fails both APIs' calls: fail_me extends the contacts outage to
// GET /api/v1/me.
func (h *harness) FailNext(t testing.TB, acct crmtest.Account, n, status int) {
	t.Helper()
	failMe := true
	_, err := h.fake.UpdateFaults(t.Context(), acct.Handle, sandboxfake.FaultsUpdate{FailNext: &n, FailStatus: &status, FailMe: &failMe})
	require.NoError(t, err)
}

// RateLimitNext answers the next n contacts calls 429, with retryAfter
// rounded up to whole seconds (the sandbox's Retry-After unit).
func (h *harness) RateLimitNext(t testing.TB, acct crmtest.Account, n int, retryAfter time.Duration) {
	t.Helper()
	seconds := int((retryAfter + time.Second - 1) / time.Second)
	_, err := h.fake.UpdateFaults(t.Context(), acct.Handle, sandboxfake.FaultsUpdate{RateLimitNext: &n, RetryAfterSeconds: &seconds})
	require.NoError(t, err)
}

// RejectRecords sets the sandbox's reject rule.
func (h *harness) RejectRecords(t testing.TB, acct crmtest.Account, field, contains string) string {
	t.Helper()
	_, err := h.fake.SetFaults(t.Context(), acct.Handle, sandboxfake.Faults{RejectField: field, RejectContains: contains})
	require.NoError(t, err)
	return "rejected by the sandbox reject rule on field " + field
}

// RefuseBatches sets the sandbox's refuse rule: a batch carrying a
// matching record is answered 400 batch_refused.
func (h *harness) RefuseBatches(t testing.TB, acct crmtest.Account, field, contains string) {
	t.Helper()
	_, err := h.fake.SetFaults(t.Context(), acct.Handle, sandboxfake.Faults{RefuseField: field, RefuseContains: contains})
	require.NoError(t, err)
}

// DisableAPI turns the account's API access off.
func (h *harness) DisableAPI(t testing.TB, acct crmtest.Account) {
	t.Helper()
	_, err := h.fake.DisableAPI(t.Context(), acct.Handle)
	require.NoError(t, err)
}
