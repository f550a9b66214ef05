// Package crmtest is the connector contract suite: what every crm.Connector
// must do against a fake of its CRM, checked the same way for each. A
// connector's tests call Run with a Harness, the connector's side of the
// suite: the connector pointed at its fake, and the fake's controls in
// CRM-neutral terms (make an account, revoke its credentials, drop a
// permission, fail or rate-limit the next calls, reject a record, count the
// records held per key, list the calls made).
//
// Writing a harness for a new connector (crm/<provider>/contract_test.go,
// next to crm/sandbox/contract_test.go, which is the example):
//
//   - Start the provider's fake (crm/<provider>/<provider>fake) on an
//     httptest server once per test binary or per Run, and point the
//     connector at it.
//   - Embed Unsupported and override the optional controls the CRM has;
//     Capabilities says which ones they are, and the suite skips the
//     subtests of the others.
//   - Make every control act on the one account it is given: the suite
//     runs its subtests in parallel, each on an account of its own, so the
//     harness must be safe for concurrent use.
package crmtest

import (
	"net/url"
	"testing"
	"time"

	"github.com/acme/integrations/crm"
)

// Harness is what a connector's test gives the suite: the connector, pointed
// at its CRM's fake, and the fake's controls. Every method acts on one
// account of the fake and fails the test itself (t.Fatal) when the fake
// does not answer.
type Harness interface {
	// Connector is the connector under test, pointed at the fake.
	Connector() crm.Connector
	// Capabilities says what the CRM and the connector have beyond what
	// every connector must, so the suite runs only what applies.
	Capabilities() Capabilities

	// NewAccount creates an account in the fake, with every permission the
	// service needs, API access on, and credentials a customer would
	// authorize with.
	NewAccount(t testing.TB) Account
	// Records reports how many records the account holds per lead key
	// (crm.Record.Key), as the CRM would show them: a key pushed twice is
	// still 1 if the connector upserts by key. Keys the account holds no
	// record for are absent.
	Records(t testing.TB, acct Account) map[string]int
	// Calls returns the API calls the fake recorded for the account,
	// oldest first, with the fake's own timestamps: at least every call a
	// Push makes (validation calls may be left out).
	Calls(t testing.TB, acct Account) []Call

	// Revoke makes the account's credentials stop working, as when the
	// customer revokes the API key or the OAuth grant: calls answer the
	// CRM's authentication error and a refresh is refused.
	Revoke(t testing.TB, acct Account)
	// Restore undoes Revoke: the same credentials work again.
	Restore(t testing.TB, acct Account)
	// DropPermission removes a permission the service needs to write
	// records (a scope, an object permission) and returns its name as the
	// CRM spells it, which the failed check's message must name. Not
	// called when Capabilities().NoPermissions.
	DropPermission(t testing.TB, acct Account) (permission string)
	// FailNext makes the account's next n API calls, whatever their
	// endpoint, answer the given HTTP status (a 5xx); later calls are
	// answered normally again.
	FailNext(t testing.TB, acct Account, n, status int)
	// RateLimitNext makes the account's next n delivery calls answer the
	// CRM's rate-limit response (a 429, or what the CRM uses instead),
	// asking the caller to wait retryAfter where the CRM says how long.
	RateLimitNext(t testing.TB, acct Account, n int, retryAfter time.Duration)
	// RejectRecords makes the fake refuse, record by record as the CRM
	// refuses an invalid email, every record whose field (a crm.Record JSON
	// field name; the suite uses "email") contains contains. It returns
	// the reason the connector reports for such a record
	// (crm.RecordResult.Reason must contain it), e.g. "invalid email".
	RejectRecords(t testing.TB, acct Account, field, contains string) (reason string)

	// DisableAPI turns the account's API access off. Called only when
	// Capabilities().APIDisabled.
	DisableAPI(t testing.TB, acct Account)
	// ExpireAccessToken makes the access token in the account's current
	// credentials expire now, while the grant (refresh token) stays valid.
	// Called only when Capabilities().Refresh.
	ExpireAccessToken(t testing.TB, acct Account)
	// LimitCalls makes the fake answer more than n calls of the account in
	// any window with the CRM's rate-limit response, and tells the
	// connector (through the CRM's limit headers or its configuration)
	// what to pace to. Called only when Capabilities().Pacing.
	LimitCalls(t testing.TB, acct Account, n int, window time.Duration)
	// RefuseBatches makes the fake refuse as a whole (the CRM's 400 or 413
	// for the call) every push that carries a record whose field (a
	// crm.Record JSON field name) contains contains. Called only when
	// Capabilities().BatchRefusal.
	RefuseBatches(t testing.TB, acct Account, field, contains string)
	// Consent plays the customer on the fake's consent page at consentURL
	// (the connector's AuthCodeURL): it approves the access the page asks
	// for, for a new account with every permission, and returns the URL
	// the fake redirects the browser to (our callback, with the code and
	// the state). Called only when Capabilities().OAuth.
	Consent(t testing.TB, consentURL string) (redirect *url.URL)
}

// Capabilities are what a CRM and its connector have beyond what every
// connector must; the suite skips the subtests of what is absent. Batch
// sizes need no capability: the suite follows the connector's BatchLimit (1
// for a CRM without batches, such as Follow Up Boss).
type Capabilities struct {
	// APIDisabled: the CRM can turn an account's API access off
	// (Salesforce's API_DISABLED_FOR_ORG, the sandbox's disable-api), so
	// Validate reports crm.CheckAPIAccess failing with api_disabled and
	// Push fails with crm.ClassPermission. HubSpot and Follow Up Boss have
	// no such state.
	APIDisabled bool
	// Refresh: access tokens expire and are refreshed (OAuth CRMs). The
	// connector implements crm.Refresher.
	Refresh bool
	// Pacing: the connector paces its own calls per account, so a backlog
	// pushed under a call limit meets no rate-limit answer.
	Pacing bool
	// BatchRefusal: the CRM can refuse a batch as a whole for what it
	// carries (Push then fails with crm.ClassBatchRejected, and the caller
	// splits the batch to find the records at fault).
	BatchRefusal bool
	// OAuth: the customer connects through the CRM's consent page; the
	// connector implements crm.OAuth.
	OAuth bool
	// NoPermissions: the CRM's credentials carry no permission that can be
	// taken away while they stay valid (a Follow Up Boss API key has the
	// access of its user, and no scopes), so crm.CheckScopes cannot fail
	// and the suite skips the MissingPermission subtests; DropPermission is
	// never called. Unlike the other fields it turns subtests off: every
	// CRM with scopes or permissions leaves it false.
	NoPermissions bool
}

// Account is one account in the fake, as the suite sees it.
type Account struct {
	// Handle is the harness's name for the account in its fake (the
	// sandbox's API key, a HubSpot portal ID, ...); the suite only passes
	// it back to the harness.
	Handle string
	// Credentials is the account's credentials document, a JSON object:
	// what ParseCredentials accepts and Validate, Push and Refresh take.
	Credentials []byte
	// Secrets are the secret values in Credentials (API keys, tokens). No
	// error, check or rejection reason may contain any of them.
	Secrets []string
}

// Call is one API call the fake recorded.
type Call struct {
	// At is when the fake received the call, by the fake's clock.
	At time.Time
	// Status is the HTTP status the fake answered with; the suite shows it
	// when pacing fails.
	Status int
}

// Unsupported implements the optional controls of a Harness by failing the
// test. Embed it in a harness and override the controls the CRM has: the
// suite calls an optional control only when Capabilities claims it, so
// reaching one of these means Capabilities claims something the harness
// does not implement.
type Unsupported struct{}

// DisableAPI fails the test: the harness claims Capabilities().APIDisabled
// without implementing it.
func (Unsupported) DisableAPI(t testing.TB, _ Account) {
	t.Helper()
	t.Fatal("crmtest: Capabilities().APIDisabled is set but the harness does not implement DisableAPI")
}

// ExpireAccessToken fails the test: the harness claims
// Capabilities().Refresh without implementing it.
func (Unsupported) ExpireAccessToken(t testing.TB, _ Account) {
	t.Helper()
	t.Fatal("crmtest: Capabilities().Refresh is set but the harness does not implement ExpireAccessToken")
}

// LimitCalls fails the test: the harness claims Capabilities().Pacing
// without implementing it.
func (Unsupported) LimitCalls(t testing.TB, _ Account, _ int, _ time.Duration) {
	t.Helper()
	t.Fatal("crmtest: Capabilities().Pacing is set but the harness does not implement LimitCalls")
}

// RefuseBatches fails the test: the harness claims
// Capabilities().BatchRefusal without implementing it.
func (Unsupported) RefuseBatches(t testing.TB, _ Account, _, _ string) {
	t.Helper()
	t.Fatal("crmtest: Capabilities().BatchRefusal is set but the harness does not implement RefuseBatches")
}

// DropPermission fails the test: the harness claims
// Capabilities().NoPermissions, so the suite never drops a permission.
func (Unsupported) DropPermission(t testing.TB, _ Account) string {
	t.Helper()
	t.Fatal("crmtest: DropPermission was called although Capabilities().NoPermissions is set")
	return ""
}

// Consent fails the test: the harness claims Capabilities().OAuth without
// implementing it.
func (Unsupported) Consent(t testing.TB, _ string) *url.URL {
	t.Helper()
	t.Fatal("crmtest: Capabilities().OAuth is set but the harness does not implement Consent")
	return nil
}
