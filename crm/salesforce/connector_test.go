package salesforce_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/salesforce"
	"github.com/acme/integrations/crm/salesforce/salesforcefake"
	"github.com/acme/integrations/integration"
)

// testBundle is one fake Salesforce, a connector pointed at it, and an
// org connected through the consent flow.
type testBundle struct {
	url       string
	fake      *salesforcefake.Client
	connector *salesforce.Connector
	org       salesforcefake.Org
	raw       []byte
	// secrets are the values no error, check or reason may contain.
	secrets []string
	// inFlight and maxInFlight count the REST calls the fake is serving.
	inFlight, maxInFlight atomic.Int64
	// intercept, when set, answers a request instead of the fake.
	mu        sync.Mutex
	intercept func(w http.ResponseWriter, r *http.Request) bool
}

// options change the connector or the org of a bundle.
type options struct {
	// pacing is the connector's; zero means a window of a second, so the
	// fake's 100,000 calls are no limit (realPacing: Salesforce's 24 hours).
	pacing     salesforce.Pacing
	realPacing bool
	sandbox    bool
	org        salesforcefake.OrgUpdate
	noOAuth    bool
}

func setup(t *testing.T, opts options) *testBundle {
	t.Helper()
	t.Parallel()
	server, err := salesforcefake.NewServer("")
	require.NoError(t, err)
	b := &testBundle{}
	fakeHandler := server.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		intercept := b.intercept
		b.mu.Unlock()
		if intercept != nil && intercept(w, r) {
			return
		}
		if strings.Contains(r.URL.Path, "/services/data/") {
			n := b.inFlight.Add(1)
			defer b.inFlight.Add(-1)
			for {
				seen := b.maxInFlight.Load()
				if n <= seen || b.maxInFlight.CompareAndSwap(seen, n) {
					break
				}
			}
		}
		fakeHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	b.url = hs.URL
	b.fake = salesforcefake.NewClient(hs.URL, hs.Client())
	if opts.pacing == (salesforce.Pacing{}) && !opts.realPacing {
		opts.pacing.Window = time.Second
	}
	cfg := salesforce.Config{
		LoginURL: b.fake.LoginURL(), TestLoginURL: b.fake.TestLoginURL(),
		ClientID: testClientID, ClientSecret: testClientSecret,
		HTTPClient: hs.Client(), Pacing: opts.pacing,
	}
	b.connector = salesforce.NewConnector(cfg)
	org := opts.org
	if opts.sandbox {
		org.Sandbox = &opts.sandbox
	}
	b.org, err = b.fake.CreateOrg(t.Context(), org)
	require.NoError(t, err)
	b.raw = connect(t, b.connector, b.fake, b.org.ID, opts.sandbox)
	b.secrets = append(docSecrets(t, b.raw), testClientSecret)
	if opts.noOAuth {
		cfg.ClientID, cfg.ClientSecret = "", ""
		b.connector = salesforce.NewConnector(cfg)
	}
	return b
}

// setIntercept makes f answer the requests it claims.
func (b *testBundle) setIntercept(f func(w http.ResponseWriter, r *http.Request) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.intercept = f
}

func docSecrets(t *testing.T, raw []byte) []string {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	return []string{doc["access_token"].(string), doc["refresh_token"].(string)}
}

// requireClean fails if text holds a secret or any of the given values.
func (b *testBundle) requireClean(t *testing.T, text string, values ...string) {
	t.Helper()
	for _, s := range append(append([]string{}, b.secrets...), values...) {
		require.NotContains(t, text, s)
	}
	require.NotContains(t, text, strings.TrimPrefix(b.url, "http://"), "no URL of Salesforce's")
}

func (b *testBundle) leads(t *testing.T) salesforcefake.Leads {
	t.Helper()
	leads, err := b.fake.Leads(t.Context(), b.org.ID)
	require.NoError(t, err)
	return leads
}

func (b *testBundle) calls(t *testing.T) []salesforcefake.Call {
	t.Helper()
	calls, err := b.fake.Calls(t.Context(), b.org.ID)
	require.NoError(t, err)
	return calls
}

func (b *testBundle) faults(t *testing.T, u salesforcefake.FaultsUpdate) {
	t.Helper()
	_, err := b.fake.UpdateFaults(t.Context(), b.org.ID, u)
	require.NoError(t, err)
}

func (b *testBundle) updateOrg(t *testing.T, u salesforcefake.OrgUpdate) {
	t.Helper()
	_, err := b.fake.UpdateOrg(t.Context(), b.org.ID, u)
	require.NoError(t, err)
}

func (b *testBundle) push(t *testing.T, recs ...crm.Record) []crm.RecordResult {
	t.Helper()
	results, err := b.connector.Push(t.Context(), b.raw, recs)
	require.NoError(t, err)
	require.NoError(t, crm.CheckResults(recs, results))
	return results
}

// pushError pushes recs, which must fail as a whole, and returns the error.
func (b *testBundle) pushError(t *testing.T, recs ...crm.Record) *crm.Error {
	t.Helper()
	results, err := b.connector.Push(t.Context(), b.raw, recs)
	require.Error(t, err)
	require.Nil(t, results)
	b.requireClean(t, err.Error(), piiOf(recs)...)
	var crmErr *crm.Error
	require.ErrorAs(t, err, &crmErr)
	return crmErr
}

func (b *testBundle) validate(t *testing.T) []integration.Check {
	t.Helper()
	checks, err := b.connector.Validate(t.Context(), b.raw)
	require.NoError(t, err)
	require.Len(t, checks, 4)
	for _, c := range checks {
		b.requireClean(t, c.Message+" "+c.Remediation)
	}
	return checks
}

func piiOf(recs []crm.Record) []string {
	var out []string
	for _, r := range recs {
		for _, v := range []string{r.Name, r.FirstName, r.LastName, r.Company, r.Email, r.Phone, r.Message} {
			if v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func TestMapping(t *testing.T) {
	t.Parallel()

	t.Run("DefaultMapping", func(t *testing.T) {
		b := setup(t, options{})
		results := b.push(t,
			crm.Record{Key: "101", Source: "Zillow Premier", FirstName: "Ada", LastName: "Lovelace", Name: "ignored when parts are given",
				Company: "Analytical Engines", Email: "ada@example.com", Phone: "+44 20 7946 0000", Message: "Call me about the blue house",
				Attributes: map[string]any{"budget": 450000}},
			crm.Record{Key: "102", Source: "Zillow Premier", Name: "  Grace   Brewster Hopper "},
			crm.Record{Key: "103", Source: "Zillow Premier", Name: "Cher"},
			crm.Record{Key: "104", Email: "nobody@example.com"},
		)
		leads := b.leads(t)
		require.Equal(t, 4, leads.Leads)
		for _, r := range results {
			require.Equal(t, leads.ByKey[r.Key].ID, r.CRMID, "the result carries the Lead's ID")
		}
		fields := func(key string) map[string]any {
			f := leads.ByKey[key].Fields
			delete(f, "LastModifiedDate")
			delete(f, "Status")
			return f
		}
		require.Equal(t, map[string]any{
			salesforce.LeadKeyField: "101", "LeadSource": "Zillow Premier", "FirstName": "Ada", "LastName": "Lovelace",
			"Company": "Analytical Engines", "Email": "ada@example.com", "Phone": "+44 20 7946 0000",
			"Description": "Call me about the blue house",
		}, fields("101"), "attributes are not sent")
		require.Equal(t, map[string]any{salesforce.LeadKeyField: "102", "LeadSource": "Zillow Premier",
			"FirstName": "Grace Brewster", "LastName": "Hopper", "Company": salesforce.NotProvided}, fields("102"),
			"a whole name is split at its last space")
		require.Equal(t, map[string]any{salesforce.LeadKeyField: "103", "LeadSource": "Zillow Premier",
			"LastName": "Cher", "Company": salesforce.NotProvided}, fields("103"))
		require.Equal(t, map[string]any{salesforce.LeadKeyField: "104", "LastName": salesforce.NotProvided,
			"Company": salesforce.NotProvided, "Email": "nobody@example.com"}, fields("104"))
	})

	t.Run("LongValuesAreCutExceptEmailAndPhone", func(t *testing.T) {
		b := setup(t, options{})
		long := func(s string, n int) string { return strings.Repeat(s, n) }
		b.push(t, crm.Record{Key: "201", FirstName: long("é", 50), LastName: long("L", 90), Company: long("C", 300),
			Source: long("S", 300), Message: long("m", 33_000)})
		f := b.leads(t).ByKey["201"].Fields
		require.Equal(t, long("é", 40), f["FirstName"])
		require.Equal(t, long("L", 80), f["LastName"])
		require.Equal(t, long("C", 255), f["Company"])
		require.Equal(t, long("S", 255), f["LeadSource"])
		require.Len(t, f["Description"], 32_000)

		// A 4-byte character counts as two of Salesforce's: cut before it, not through it.
		b.push(t, crm.Record{Key: "202", FirstName: long("a", 39) + "😀"})
		require.Equal(t, long("a", 39), b.leads(t).ByKey["202"].Fields["FirstName"])

		phone := "+1 555 0100 " + long("9", 40)
		results := b.push(t, crm.Record{Key: "203", Phone: phone})
		require.Equal(t, crm.RecordRejected, results[0].Status)
		require.Equal(t, "a value is too long for its field (STRING_TOO_LONG) in Phone", results[0].Reason)
		b.requireClean(t, results[0].Reason, phone)
	})

	t.Run("ARedeliveryUpdatesAndBlanksNothing", func(t *testing.T) {
		b := setup(t, options{})
		first := b.push(t, crm.Record{Key: "301", Name: "Ada Lovelace", Email: "ada@example.com", Phone: "+1 555 0100"})
		again := b.push(t, crm.Record{Key: "301", Name: "Ada Lovelace", Email: "ada@example.com"})
		require.Equal(t, first[0].CRMID, again[0].CRMID)
		lead := b.leads(t).ByKey["301"]
		require.Equal(t, 2, lead.Upserts)
		require.Equal(t, "+1 555 0100", lead.Fields["Phone"], "a value not sent again is kept")
	})
}

func TestPushResults(t *testing.T) {
	t.Parallel()

	t.Run("RejectionsNameCodeAndFieldsNeverValues", func(t *testing.T) {
		b := setup(t, options{})
		recs := []crm.Record{
			{Key: "1", Name: "Zelda Quill", Email: "zelda.quill@example"},
			{Key: "2", Name: "Ok Person", Email: "ok@example.com"},
			{Key: "3", Name: "Blocked Person", Email: "blocked.person@example.com"},
		}
		b.faults(t, salesforcefake.FaultsUpdate{RejectField: ptr("Email"), RejectContains: ptr("blocked")})
		results := b.push(t, recs...)
		require.Equal(t, crm.RecordResult{Key: "1", Status: crm.RecordRejected, Reason: "invalid email address (INVALID_EMAIL_ADDRESS) in Email"}, results[0])
		require.Equal(t, crm.RecordDelivered, results[1].Status)
		require.Equal(t, crm.RecordResult{Key: "3", Status: crm.RecordRejected,
			Reason: "refused by a validation rule of your Salesforce org (FIELD_CUSTOM_VALIDATION_EXCEPTION) in Email"}, results[2])
		for _, r := range results {
			b.requireClean(t, r.Reason, piiOf(recs)...)
		}
		require.Equal(t, []string{"2"}, keys(b.leads(t)))
	})

	t.Run("ALockedRowRetriesTheBatchWhole", func(t *testing.T) {
		b := setup(t, options{})
		recs := []crm.Record{{Key: "1", Name: "A B"}, {Key: "2", Name: "C D"}, {Key: "3", Name: "E F"}}
		b.faults(t, salesforcefake.FaultsUpdate{LockNext: ptr(1)})
		err := b.pushError(t, recs...)
		require.Equal(t, crm.ClassTransient, err.Class)
		require.Equal(t, "UNABLE_TO_LOCK_ROW", err.Code)
		require.Len(t, b.leads(t).ByKey, 2, "Salesforce applied the records it could lock")

		results := b.push(t, recs...)
		for _, r := range results {
			require.Equal(t, crm.RecordDelivered, r.Status)
		}
		leads := b.leads(t)
		require.Equal(t, 3, leads.Leads, "the retry made no second lead")
		require.Equal(t, 2, leads.ByKey["2"].Upserts)
	})

	t.Run("MissingAccessIsAPermissionError", func(t *testing.T) {
		b := setup(t, options{})
		b.push(t, crm.Record{Key: "old", Name: "A B"})
		b.updateOrg(t, salesforcefake.OrgUpdate{LeadPermissions: &[]string{salesforcefake.PermissionRead, salesforcefake.PermissionCreate}})

		// No Edit: a batch of leads that exist is refused for access, all of it.
		err := b.pushError(t, crm.Record{Key: "old", Name: "A B"})
		require.Equal(t, crm.ClassPermission, err.Class)
		require.Equal(t, "INSUFFICIENT_ACCESS_OR_READONLY", err.Code)

		// A batch that also creates: the new lead goes in, the old is rejected.
		results := b.push(t, crm.Record{Key: "new", Name: "C D"}, crm.Record{Key: "old", Name: "A B"})
		require.Equal(t, crm.RecordDelivered, results[0].Status)
		require.Equal(t, "the integration user may not edit this lead (INSUFFICIENT_ACCESS_OR_READONLY)", results[1].Reason)

		b.updateOrg(t, salesforcefake.OrgUpdate{HiddenFields: &[]string{"Description"}, LeadPermissions: &[]string{salesforcefake.PermissionRead, salesforcefake.PermissionCreate, salesforcefake.PermissionEdit}})
		err = b.pushError(t, crm.Record{Key: "x", Name: "E F", Message: "hello"})
		require.Equal(t, crm.ClassPermission, err.Class, "a field the user cannot see")
		require.Equal(t, "INVALID_FIELD", err.Code)

		b.updateOrg(t, salesforcefake.OrgUpdate{HiddenFields: &[]string{}, LeadKeyField: &salesforcefake.LeadKeyField{Present: false}})
		err = b.pushError(t, crm.Record{Key: "x", Name: "E F"})
		require.Equal(t, crm.ClassPermission, err.Class, "no lead key field")
		require.Equal(t, http.StatusNotFound, err.StatusCode)

		b.updateOrg(t, salesforcefake.OrgUpdate{LeadKeyField: &salesforcefake.LeadKeyField{Present: true, ExternalID: false, Unique: true}})
		require.Equal(t, crm.ClassPermission, b.pushError(t, crm.Record{Key: "x", Name: "E F"}).Class, "a key field that is no External ID")

		b.updateOrg(t, salesforcefake.OrgUpdate{LeadPermissions: &[]string{}})
		err = b.pushError(t, crm.Record{Key: "x", Name: "E F"})
		require.Equal(t, crm.ClassPermission, err.Class, "no Read on Lead")
		require.Equal(t, "INVALID_TYPE", err.Code)
		require.Equal(t, []string{"new", "old"}, keys(b.leads(t)))

		b.updateOrg(t, salesforcefake.OrgUpdate{UserAPIEnabled: ptr(false)})
		err = b.pushError(t, crm.Record{Key: "x", Name: "E F"})
		require.Equal(t, crm.ClassPermission, err.Class)
		require.Equal(t, "API_CURRENTLY_DISABLED", err.Code)
	})

	t.Run("ALeadTheUserMayNotEditIsRejectedAlone", func(t *testing.T) {
		b := setup(t, options{})
		b.faults(t, salesforcefake.FaultsUpdate{RejectField: ptr("LastName"), RejectContains: ptr("Shared"),
			RejectCode: ptr("INSUFFICIENT_ACCESS_OR_READONLY")})
		before := len(b.calls(t))
		results := b.push(t, crm.Record{Key: "1", Name: "Not Shared"})
		require.Equal(t, crm.RecordResult{Key: "1", Status: crm.RecordRejected,
			Reason: "the integration user may not edit this lead (INSUFFICIENT_ACCESS_OR_READONLY) in LastName"}, results[0],
			"the user still creates and edits Leads, so this lead is rejected, not the integration paused")
		calls := b.calls(t)[before:]
		require.Len(t, calls, 2)
		require.True(t, strings.HasSuffix(calls[1].Path, "/sobjects/Lead/describe"), "Push asked whether the user lost access")
	})

	t.Run("AnswersThatAreNotSalesforcesAreTransient", func(t *testing.T) {
		b := setup(t, options{})
		answer := `[]`
		b.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodPatch {
				return false
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(answer))
			return true
		})
		recs := []crm.Record{{Key: "1", Name: "A B"}}
		for _, a := range []string{`[]`, `{"not":"a list"}`, `[{"success":true,"id":"Zelda Quill","errors":[]}]`, `[{"success":false,"errors":[]}]`} {
			answer = a
			err := b.pushError(t, recs...)
			require.Equal(t, crm.ClassTransient, err.Class, a)
			require.NotContains(t, err.Error(), "Zelda", "a server's echo is not passed on")
		}

		b.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodPatch {
				return false
			}
			conn, _, err := w.(http.Hijacker).Hijack()
			require.NoError(t, err)
			conn.Close()
			return true
		})
		err := b.pushError(t, recs...)
		require.Equal(t, crm.ClassTransient, err.Class)
		require.Contains(t, err.Error(), "the connection to Salesforce failed")
	})

	t.Run("AWholeCallRefusalIsBatchRejected", func(t *testing.T) {
		b := setup(t, options{})
		b.faults(t, salesforcefake.FaultsUpdate{RefuseField: ptr("Email"), RefuseContains: ptr("refuse-me")})
		err := b.pushError(t, crm.Record{Key: "1", Name: "A B", Email: "zelda.refuse-me@example.com"})
		require.Equal(t, crm.ClassBatchRejected, err.Class)
		require.Equal(t, http.StatusBadRequest, err.StatusCode)
		require.Equal(t, "JSON_PARSER_ERROR", err.Code)
	})
}

func keys(leads salesforcefake.Leads) []string {
	return slices.Sorted(maps.Keys(leads.ByKey))
}

func TestValidate(t *testing.T) {
	t.Parallel()
	checkNamed := func(t *testing.T, checks []integration.Check, name string) integration.Check {
		t.Helper()
		for _, c := range checks {
			if c.Name == name {
				return c
			}
		}
		require.Failf(t, "no check", "%s in %v", name, checks)
		return integration.Check{}
	}

	t.Run("AllGood", func(t *testing.T) {
		b := setup(t, options{})
		checks := b.validate(t)
		require.Equal(t, []string{crm.CheckCredentials, crm.CheckAPIAccess, crm.CheckScopes, salesforce.CheckLeadKeyField},
			[]string{checks[0].Name, checks[1].Name, checks[2].Name, checks[3].Name})
		for _, c := range checks {
			require.True(t, c.OK, c.Message)
		}
		require.Equal(t, "the access token works for Salesforce user "+b.org.UserID+" of org "+b.org.ID, checks[0].Message)
	})

	t.Run("TheLeadKeyField", func(t *testing.T) {
		b := setup(t, options{})
		for _, tc := range []struct {
			field salesforcefake.LeadKeyField
			hide  bool
			says  string
		}{
			{field: salesforcefake.LeadKeyField{Present: false}, says: "does not exist, or the integration user cannot see it"},
			{field: salesforcefake.LeadKeyField{Present: true, ExternalID: true}, says: `is not marked "Unique"`},
			{field: salesforcefake.LeadKeyField{Present: true, Unique: true}, says: `is not marked "External ID"`},
			{field: salesforcefake.LeadKeyField{Present: true}, says: `is not marked "External ID" and "Unique"`},
			{field: salesforcefake.LeadKeyField{Present: true, ExternalID: true, Unique: true}, hide: true, says: "cannot see it"},
		} {
			hidden := []string{}
			if tc.hide {
				hidden = []string{salesforce.LeadKeyField}
			}
			b.updateOrg(t, salesforcefake.OrgUpdate{LeadKeyField: &tc.field, HiddenFields: &hidden})
			checks := b.validate(t)
			key := checkNamed(t, checks, salesforce.CheckLeadKeyField)
			require.False(t, key.OK)
			require.Equal(t, integration.ReasonInsufficientPermissions, key.Code)
			require.Contains(t, key.Message, salesforce.LeadKeyField)
			require.Contains(t, key.Message, tc.says)
			require.Equal(t, salesforce.RemediateLeadKeyField, key.Remediation)
			require.True(t, checkNamed(t, checks, crm.CheckScopes).OK, "the other checks still pass")
		}
	})

	t.Run("PermissionsAndFieldLevelSecurity", func(t *testing.T) {
		b := setup(t, options{})
		b.updateOrg(t, salesforcefake.OrgUpdate{LeadPermissions: &[]string{salesforcefake.PermissionRead}, HiddenFields: &[]string{"Phone", "Description"}})
		scopes := checkNamed(t, b.validate(t), crm.CheckScopes)
		require.False(t, scopes.OK)
		require.Equal(t, integration.ReasonInsufficientPermissions, scopes.Code)
		require.Equal(t, `the integration user's profile or permission sets lack the Lead object permissions "Create" and "Edit"; `+
			"the integration user cannot see the Lead fields Phone, Description (field-level security)", scopes.Message)
		require.Equal(t, salesforce.RemediatePermissions, scopes.Remediation)

		b.updateOrg(t, salesforcefake.OrgUpdate{LeadPermissions: &[]string{}})
		checks := b.validate(t)
		scopes = checkNamed(t, checks, crm.CheckScopes)
		require.Contains(t, scopes.Message, `lack the Lead object permission "Read"`)
		require.True(t, strings.HasPrefix(checkNamed(t, checks, salesforce.CheckLeadKeyField).Message, "not checked: "))
	})

	t.Run("APIDisabledForTheUser", func(t *testing.T) {
		b := setup(t, options{})
		b.updateOrg(t, salesforcefake.OrgUpdate{UserAPIEnabled: ptr(false)})
		checks := b.validate(t)
		require.True(t, checks[0].OK)
		api := checkNamed(t, checks, crm.CheckAPIAccess)
		require.Equal(t, integration.ReasonAPIDisabled, api.Code)
		require.Contains(t, api.Message, "API_CURRENTLY_DISABLED")
		require.Contains(t, api.Message, `"API Enabled"`)
		require.Equal(t, salesforce.RemediateAPIAccess, api.Remediation)
		for _, name := range []string{crm.CheckScopes, salesforce.CheckLeadKeyField} {
			require.Equal(t, crm.NotChecked(name, "API access is disabled"), checkNamed(t, checks, name))
		}
	})

	t.Run("AnExpiredSessionFailsUntilRefreshed", func(t *testing.T) {
		b := setup(t, options{})
		_, err := b.fake.ExpireTokens(t.Context(), b.org.ID)
		require.NoError(t, err)
		checks := b.validate(t)
		require.Equal(t, integration.ReasonExpiredCredentials, checks[0].Code)
		require.Contains(t, checks[0].Message, "Bad_OAuth_Token")
		require.Equal(t, salesforce.RemediateCredentials, checks[0].Remediation)

		fresh, err := b.connector.Refresh(t.Context(), b.raw)
		require.NoError(t, err)
		b.raw = fresh
		b.secrets = append(b.secrets, docSecrets(t, fresh)...)
		require.True(t, b.validate(t)[0].OK)
	})

	t.Run("AnIdentityServiceThatWillNotSayLeavesItToTheAPI", func(t *testing.T) {
		b := setup(t, options{})
		b.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.URL.Path, "/services/oauth2/userinfo") {
				return false
			}
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte("Insufficient_Scope"))
			return true
		})
		checks := b.validate(t)
		require.True(t, checks[0].OK)
		require.Equal(t, "the Salesforce REST API accepts the access token for Salesforce org "+b.org.ID, checks[0].Message)
		_, err := b.fake.ExpireTokens(t.Context(), b.org.ID)
		require.NoError(t, err)
		checks = b.validate(t)
		require.Equal(t, integration.ReasonExpiredCredentials, checks[0].Code)
		require.Contains(t, checks[0].Message, "INVALID_SESSION_ID")
	})

	t.Run("CouldNotRun", func(t *testing.T) {
		b := setup(t, options{})
		b.faults(t, salesforcefake.FaultsUpdate{LimitExceededNext: ptr(1)})
		checks, err := b.connector.Validate(t.Context(), b.raw)
		require.Nil(t, checks)
		var crmErr *crm.Error
		require.ErrorAs(t, err, &crmErr)
		require.Equal(t, crm.ClassRateLimited, crmErr.Class)
		require.Equal(t, "REQUEST_LIMIT_EXCEEDED", crmErr.Code)

		checks = b.validate(t)
		require.True(t, checks[3].OK, "validation is not held by the org's pacing")

		checks = b.validateRaw(t, []byte(`{"access_token":"x"}`))
		require.Equal(t, integration.ReasonExpiredCredentials, checks[0].Code)
		require.Contains(t, checks[0].Message, "the stored credentials are unusable")
	})
}

func (b *testBundle) validateRaw(t *testing.T, raw []byte) []integration.Check {
	t.Helper()
	checks, err := b.connector.Validate(t.Context(), raw)
	require.NoError(t, err)
	return checks
}

func TestOAuth(t *testing.T) {
	t.Parallel()

	t.Run("ConsentURL", func(t *testing.T) {
		b := setup(t, options{})
		for _, sandbox := range []bool{false, true} {
			raw, err := b.connector.AuthCodeURL(crm.AuthRequest{State: "st", RedirectURL: "https://app.example.com/oauth/callback", Sandbox: sandbox})
			require.NoError(t, err)
			u, err := url.Parse(raw)
			require.NoError(t, err)
			login := b.fake.LoginURL()
			if sandbox {
				login = b.fake.TestLoginURL()
			}
			require.Equal(t, login+"/services/oauth2/authorize", u.Scheme+"://"+u.Host+u.Path)
			require.Equal(t, url.Values{"response_type": {"code"}, "client_id": {testClientID}, "redirect_uri": {"https://app.example.com/oauth/callback"},
				"scope": {"api refresh_token"}, "state": {"st"}, "prompt": {"login consent"}}, u.Query())
		}
		_, err := b.connector.AuthCodeURL(crm.AuthRequest{RedirectURL: "https://app.example.com/cb"})
		require.ErrorContains(t, err, "needs a state")
		_, err = b.connector.AuthCodeURL(crm.AuthRequest{State: "st", RedirectURL: "/oauth/callback"})
		require.ErrorContains(t, err, "absolute URL")
	})

	t.Run("WithoutAClientTheSettingsAreNamed", func(t *testing.T) {
		b := setup(t, options{noOAuth: true})
		_, err := b.connector.AuthCodeURL(crm.AuthRequest{State: "st", RedirectURL: "https://app.example.com/cb"})
		require.ErrorContains(t, err, "INTEGRATIONS_SALESFORCE_CLIENT_ID")
		_, err = b.connector.Refresh(t.Context(), b.raw)
		require.Equal(t, crm.ClassTransient, crm.ClassOf(err), "an operator's fix, not the customer's")
		require.ErrorContains(t, err, "INTEGRATIONS_SALESFORCE_CLIENT_SECRET")
		require.True(t, b.validate(t)[0].OK, "stored credentials still validate and deliver")
	})

	t.Run("SandboxOrgsRefreshAtTheTestLogin", func(t *testing.T) {
		b := setup(t, options{sandbox: true})
		var doc map[string]any
		require.NoError(t, json.Unmarshal(b.raw, &doc))
		require.Equal(t, salesforce.EnvironmentSandbox, doc["environment"])
		require.Equal(t, b.url+"/instance/"+b.org.Instance, doc["instance_url"], "the API lives at the token response's instance_url")
		require.Contains(t, b.validate(t)[0].Message, "(sandbox)")

		_, err := b.fake.ExpireTokens(t.Context(), b.org.ID)
		require.NoError(t, err)
		require.Equal(t, crm.ClassAuth, b.pushError(t, crm.Record{Key: "1", Name: "A B"}).Class)
		fresh, err := b.connector.Refresh(t.Context(), b.raw)
		require.NoError(t, err, "the fake refuses a sandbox grant at the production login, so this went to the test login")
		b.raw = fresh
		b.push(t, crm.Record{Key: "1", Name: "A B"})

		// A document naming the wrong login is refused a refresh.
		wrong := strings.Replace(string(fresh), `"environment":"sandbox"`, `"environment":"production"`, 1)
		_, err = b.connector.Refresh(t.Context(), []byte(wrong))
		require.Equal(t, crm.ClassAuth, crm.ClassOf(err))
	})

	t.Run("RotatedRefreshTokensAreKept", func(t *testing.T) {
		b := setup(t, options{org: salesforcefake.OrgUpdate{RotateRefreshTokens: ptr(true)}})
		fresh, err := b.connector.Refresh(t.Context(), b.raw)
		require.NoError(t, err)
		require.NotEqual(t, docSecrets(t, b.raw)[1], docSecrets(t, fresh)[1], "the new refresh token is in the document")
		_, err = b.connector.Refresh(t.Context(), b.raw)
		require.Equal(t, crm.ClassAuth, crm.ClassOf(err), "the old one is spent")
		again, err := b.connector.Refresh(t.Context(), fresh)
		require.NoError(t, err)
		b.secrets = append(b.secrets, docSecrets(t, fresh)...)
		b.secrets = append(b.secrets, docSecrets(t, again)...)
	})

	t.Run("AMisconfiguredClientIsTheOperators", func(t *testing.T) {
		b := setup(t, options{})
		_, err := b.fake.RegisterApp(t.Context(), salesforcefake.App{ClientID: testClientID, ClientSecret: "the-real-secret"})
		require.NoError(t, err)
		_, err = b.connector.Refresh(t.Context(), b.raw)
		var crmErr *crm.Error
		require.ErrorAs(t, err, &crmErr)
		require.Equal(t, crm.ClassTransient, crmErr.Class)
		require.Equal(t, "invalid_client", crmErr.Code)
		require.Contains(t, err.Error(), "INTEGRATIONS_SALESFORCE_CLIENT_ID")
		b.requireClean(t, err.Error(), "the-real-secret")
	})
}

func TestPacing(t *testing.T) {
	t.Parallel()

	t.Run("QuotaIsWhatTheHeaderSaid", func(t *testing.T) {
		b := setup(t, options{realPacing: true})
		_, known := b.connector.Quota(b.raw)
		require.False(t, known, "nothing reported yet")
		b.push(t, crm.Record{Key: "1", Name: "A B"})
		q, known := b.connector.Quota(b.raw)
		require.True(t, known)
		require.Equal(t, int64(salesforcefake.DefaultAPILimit), q.Limit)
		require.Equal(t, int64(salesforcefake.DefaultAPILimit-1), q.Remaining)
		require.Equal(t, "24h", q.Window)
		require.False(t, q.ObservedAt.IsZero())
	})

	t.Run("TheReserveHoldsDeliveriesNotValidation", func(t *testing.T) {
		b := setup(t, options{pacing: salesforce.Pacing{Window: time.Second, Hold: time.Hour, MaxWait: time.Second}})
		_, err := b.fake.SetLimit(t.Context(), b.org.ID, 1, 10*time.Millisecond)
		require.NoError(t, err)
		b.push(t, crm.Record{Key: "1", Name: "A B"})
		before := len(b.calls(t))

		held := b.pushError(t, crm.Record{Key: "2", Name: "C D"})
		require.Equal(t, crm.ClassRateLimited, held.Class)
		require.Empty(t, held.Code, "the connector's own reserve, not Salesforce's refusal")
		require.Greater(t, held.RetryAfter, 59*time.Minute)
		require.Contains(t, held.Error(), "reserve")
		require.Len(t, b.calls(t), before, "held without a call")
		_, err = b.fake.SetLimit(t.Context(), b.org.ID, 100, time.Hour)
		require.NoError(t, err)
		require.True(t, b.validate(t)[0].OK, "validation still runs")
		b.push(t, crm.Record{Key: "2", Name: "C D"})
		require.Len(t, b.leads(t).ByKey, 2, "an answer with room again ended the hold")
	})

	t.Run("RequestLimitExceededHoldsForHours", func(t *testing.T) {
		b := setup(t, options{realPacing: true})
		b.faults(t, salesforcefake.FaultsUpdate{LimitExceededNext: ptr(1)})
		err := b.pushError(t, crm.Record{Key: "1", Name: "A B"})
		require.Equal(t, crm.ClassRateLimited, err.Class)
		require.Equal(t, "REQUEST_LIMIT_EXCEEDED", err.Code)
		require.Equal(t, http.StatusForbidden, err.StatusCode)
		require.Equal(t, time.Hour, err.RetryAfter, "Salesforce says no delay: the connector waits DefaultPacing's hold")
		before := len(b.calls(t))

		again := b.pushError(t, crm.Record{Key: "1", Name: "A B"})
		require.Equal(t, crm.ClassRateLimited, again.Class)
		require.Equal(t, "REQUEST_LIMIT_EXCEEDED", again.Code)
		require.Len(t, b.calls(t), before, "the hold answers without calling Salesforce")
		require.Empty(t, b.leads(t).ByKey)
	})

	t.Run("ABacklogDrainsWithinTheAllowedRate", func(t *testing.T) {
		// The allocation is 5 calls per second (the connector's window is the
		// fake's); a backlog of 16 full batches, pushed as fast as the
		// connector lets it go, is measured on the fake's own timestamps.
		const limit, batches = 5, 16
		b := setup(t, options{pacing: salesforce.Pacing{Window: time.Second, Hold: 50 * time.Millisecond}})
		_, err := b.fake.SetLimit(t.Context(), b.org.ID, limit, time.Second)
		require.NoError(t, err)
		for i := range batches {
			recs := make([]crm.Record, salesforce.MaxBatchSize)
			for j := range recs {
				recs[j] = crm.Record{Key: fmt.Sprintf("b%d-%d", i, j), Name: "A B"}
			}
			b.push(t, recs...)
		}
		calls := b.calls(t)
		require.Len(t, calls, batches)
		for _, c := range calls {
			require.Equal(t, http.StatusOK, c.Status, "no REQUEST_LIMIT_EXCEEDED")
		}
		// How near the limit it drains is BenchmarkPacing's figure; a test
		// only holds what must never fail: never over the limit.
		rate := float64(batches-1) / calls[batches-1].At.Sub(calls[0].At).Seconds()
		require.LessOrEqual(t, rate, float64(limit))
		require.Equal(t, batches*salesforce.MaxBatchSize, b.leads(t).Leads)
	})

	t.Run("ConcurrencyPerOrgIsBounded", func(t *testing.T) {
		b := setup(t, options{pacing: salesforce.Pacing{Window: time.Second, Concurrency: 2}})
		b.faults(t, salesforcefake.FaultsUpdate{LatencyMS: ptr(50)})
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				_, err := b.connector.Push(t.Context(), b.raw, []crm.Record{{Key: string(rune('a' + i)), Name: "A B"}})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, int64(2), b.maxInFlight.Load(), "at most Concurrency calls of the org at once")
		require.Len(t, b.leads(t).ByKey, 8)
	})
}

func TestParseCredentials(t *testing.T) {
	t.Parallel()
	c := salesforce.NewConnector(salesforce.Config{})
	good := map[string]any{"access_token": "00D!tok", "refresh_token": "5Aep", "instance_url": "https://acme.my.salesforce.com",
		"id": "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA", "issued_at": "1", "environment": "production"}
	with := func(field string, v any) []byte {
		doc := map[string]any{}
		for k, val := range good {
			doc[k] = val
		}
		doc[field] = v
		data, err := json.Marshal(doc)
		require.NoError(t, err)
		return data
	}
	require.NoError(t, c.ParseCredentials(with("issued_at", "1")))
	for value, says := range map[string]string{
		"http://acme.my.salesforce.com":               "must use https",
		"https://user:pw@acme.my.salesforce.com":      "plain URL",
		"https://acme.my.salesforce.com/?x=1":         "plain URL",
		"ftp://acme.my.salesforce.com":                "https URL",
		"":                                            "instance_url is missing",
		"acme.my.salesforce.com/services/data/v67.0/": "plain URL",
	} {
		err := c.ParseCredentials(with("instance_url", value))
		require.ErrorContains(t, err, says, value)
	}

	t.Run("InstanceURLsOnSalesforceDomainsOnly", func(t *testing.T) {
		t.Parallel()
		// The access token and every call go to the instance URL: a
		// document must not point them at a server of its choosing.
		for _, value := range []string{
			"https://acme.my.salesforce.com",
			"https://ACME.my.salesforce.com/",
			"https://acme--uat.sandbox.my.salesforce.com",
			"https://acme.develop.my.salesforce.com",
			"https://na139.salesforce.com",
			"https://acme.my.salesforce.mil",
			"https://acme.lightning.force.com",
			"https://acme.cloudforce.com",
			"https://acme.my.salesforce.com:443",
		} {
			require.NoError(t, c.ParseCredentials(with("instance_url", value)), value)
		}
		for value, says := range map[string]string{
			"https://attacker.example.com":              "on a Salesforce domain",
			"https://acme.my.salesforce.com.evil.test":  "on a Salesforce domain",
			"https://evilsalesforce.com":                "on a Salesforce domain",
			"https://salesforce.com@evil.test":          "plain URL",
			"https://10.0.0.7":                          "on a Salesforce domain",
			"https://169.254.169.254/latest/meta-data/": "on a Salesforce domain",
			"https://127.0.0.1:8091/instance/na1":       "on a Salesforce domain",
			"http://127.0.0.1:8091/instance/na1":        "must use https",
			"http://localhost:8091":                     "must use https",
			"http://0.0.0.0:8092/instance/na1":          "must use https",
			"https://acme.my.salesforce.com:8443":       "default https port",
		} {
			err := c.ParseCredentials(with("instance_url", value))
			require.ErrorContains(t, err, says, value)
			require.NotContains(t, err.Error(), strings.TrimPrefix(strings.TrimPrefix(value, "https://"), "http://"), "the URL is not echoed")
		}
	})

	t.Run("TheConfiguredLoginsDomain", func(t *testing.T) {
		t.Parallel()
		corp := salesforce.NewConnector(salesforce.Config{LoginURL: "https://sf-login.corp.example", TestLoginURL: "https://sf-test.corp.example"})
		require.NoError(t, corp.ParseCredentials(with("instance_url", "https://org1.corp.example")))
		require.NoError(t, corp.ParseCredentials(with("instance_url", "https://acme.my.salesforce.com")), "Salesforce's own stay")
		require.ErrorContains(t, corp.ParseCredentials(with("instance_url", "https://corp.example.evil.test")), "on a Salesforce domain")
		require.ErrorContains(t, corp.ParseCredentials(with("instance_url", "http://org1.corp.example")), "must use https")
	})

	t.Run("LoopbackOnlyWithALoopbackLogin", func(t *testing.T) {
		t.Parallel()
		// The fake and the dev stack log in on loopback, and their
		// instances are there too, over plain http.
		dev := salesforce.NewConnector(salesforce.Config{LoginURL: "http://127.0.0.1:8092", TestLoginURL: "http://127.0.0.1:8092/test"})
		for _, value := range []string{"http://127.0.0.1:8091/instance/na1", "http://localhost:9", "http://[::1]:8092/instance/x", "https://acme.my.salesforce.com"} {
			require.NoError(t, dev.ParseCredentials(with("instance_url", value)), value)
		}
		require.ErrorContains(t, dev.ParseCredentials(with("instance_url", "http://10.0.0.7")), "must use https")
		require.ErrorContains(t, dev.ParseCredentials(with("instance_url", "https://attacker.example.com")), "on a Salesforce domain")
	})
	require.ErrorContains(t, c.ParseCredentials(with("environment", "staging")), `environment must be "production" or "sandbox"`)
	require.ErrorContains(t, c.ParseCredentials(with("environment", "")), "environment is missing")
	require.ErrorContains(t, c.ParseCredentials(with("login_url", "https://evil.example.com")), "unknown field \"login_url\"",
		"a document cannot name where the client secret goes")
	err := c.ParseCredentials(with("access_token", "00D!tok with space"))
	require.ErrorContains(t, err, "access_token contains whitespace")
	require.NotContains(t, err.Error(), "00D!tok")
}

// TestPacingFollowsTheOrgSalesforceNames: a credentials document comes from
// whoever authorizes, so neither its id nor its instance_url is trusted
// with another customer's org or with our calls.
func TestPacingFollowsTheOrgSalesforceNames(t *testing.T) {
	t.Parallel()

	t.Run("AnotherOrgsTokenNamingTheVictim", func(t *testing.T) {
		b := setup(t, options{realPacing: true})
		var victim map[string]any
		require.NoError(t, json.Unmarshal(b.raw, &victim))
		// The attacker's own org and tokens, which the connector has never
		// seen (issued to another client), with the victim's identity URL.
		attacker, err := b.fake.CreateOrg(t.Context(), salesforcefake.OrgUpdate{})
		require.NoError(t, err)
		tok, err := b.fake.IssueTokens(t.Context(), attacker.ID)
		require.NoError(t, err)
		doc, err := json.Marshal(map[string]string{"access_token": tok.AccessToken, "refresh_token": tok.RefreshToken,
			"instance_url": tok.InstanceURL, "id": victim["id"].(string), "environment": "production"})
		require.NoError(t, err)
		require.NoError(t, b.connector.ParseCredentials(doc), "the document is well formed; its id is just not believed")

		// The attacker's org runs out of its allocation: Salesforce's
		// REQUEST_LIMIT_EXCEEDED holds that org's deliveries for an hour.
		_, err = b.fake.UpdateFaults(t.Context(), attacker.ID, salesforcefake.FaultsUpdate{LimitExceededNext: ptr(1)})
		require.NoError(t, err)
		_, err = b.connector.Push(t.Context(), doc, []crm.Record{{Key: "a1", Name: "A B"}})
		var held *crm.Error
		require.ErrorAs(t, err, &held)
		require.Equal(t, crm.ClassRateLimited, held.Class)
		require.Equal(t, "REQUEST_LIMIT_EXCEEDED", held.Code)

		// The victim's deliveries are not held, and its quota is its own.
		results := b.push(t, crm.Record{Key: "v1", Name: "C D"})
		require.Equal(t, crm.RecordDelivered, results[0].Status)
		q, ok := b.connector.Quota(b.raw)
		require.True(t, ok)
		require.Equal(t, int64(salesforcefake.DefaultAPILimit-1), q.Remaining, "the victim's one call, not the attacker's")

		// The attacker's own org is held, whichever document it uses.
		before, err := b.fake.Calls(t.Context(), attacker.ID)
		require.NoError(t, err)
		_, err = b.connector.Push(t.Context(), doc, []crm.Record{{Key: "a2", Name: "A B"}})
		require.Equal(t, crm.ClassRateLimited, crm.ClassOf(err))
		after, err := b.fake.Calls(t.Context(), attacker.ID)
		require.NoError(t, err)
		require.Len(t, after, len(before), "held without a call")
		leads, err := b.fake.Leads(t.Context(), attacker.ID)
		require.NoError(t, err)
		require.Empty(t, leads.ByKey)
	})

	t.Run("WhenTheIdentityServiceCannotSay", func(t *testing.T) {
		b := setup(t, options{})
		b.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.URL.Path, "/services/oauth2/userinfo") {
				return false
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		})
		// A worker that has not seen the token asks the identity service,
		// which fails: the delivery goes on, paced per grant.
		fresh := salesforce.NewConnector(salesforce.Config{LoginURL: b.fake.LoginURL(), TestLoginURL: b.fake.TestLoginURL(),
			Pacing: salesforce.Pacing{Window: time.Second}})
		results, err := fresh.Push(t.Context(), b.raw, []crm.Record{{Key: "g1", Name: "A B"}})
		require.NoError(t, err)
		require.Equal(t, crm.RecordDelivered, results[0].Status)
		_, ok := fresh.Quota(b.raw)
		require.True(t, ok, "the grant's quota")
	})

	t.Run("AnInstanceURLOutsideSalesforce", func(t *testing.T) {
		t.Parallel()
		// The attacker's server, where the document would send our calls
		// (and the token): it must never hear from the connector.
		var heard atomic.Int64
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			heard.Add(1)
			w.Header().Set("Sforce-Limit-Info", "api-usage=1/1")
			w.WriteHeader(http.StatusOK)
		})
		plain := httptest.NewServer(handler)
		t.Cleanup(plain.Close)
		tls := httptest.NewTLSServer(handler)
		t.Cleanup(tls.Close)
		// A connector for real Salesforce (its logins are not on loopback).
		c := salesforce.NewConnector(salesforce.Config{ClientID: testClientID, ClientSecret: testClientSecret, HTTPClient: tls.Client()})
		for _, instance := range []string{plain.URL, tls.URL, "https://attacker.example.com"} {
			doc, err := json.Marshal(map[string]string{"access_token": "00D000000000001!tok", "refresh_token": "5Aep-x",
				"instance_url": instance, "id": "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA", "environment": "production"})
			require.NoError(t, err)
			err = c.ParseCredentials(doc)
			require.ErrorContains(t, err, "instance_url", instance)
			require.NotContains(t, err.Error(), "00D000000000001!tok")

			checks, err := c.Validate(t.Context(), doc)
			require.NoError(t, err)
			require.Equal(t, integration.ReasonExpiredCredentials, checks[0].Code, "unusable credentials, without a call")
			_, err = c.Push(t.Context(), doc, []crm.Record{{Key: "a", Name: "A B"}})
			require.Equal(t, crm.ClassAuth, crm.ClassOf(err))
			_, err = c.Refresh(t.Context(), doc)
			require.Equal(t, crm.ClassAuth, crm.ClassOf(err))
		}
		require.Zero(t, heard.Load(), "no call reached the document's server")
	})
}
