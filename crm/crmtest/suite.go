package crmtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
)

// Lead PII in the suite's records. No error, check, rejection reason or CRM
// ID may contain any of it.
const (
	piiName       = "Zelda Quillfeather"
	piiEmailLocal = "zelda.quill"
	piiPhone      = "+1-555-01"
	piiMessage    = "call me about the blue house"
	piiAttribute  = "secret attribute"
)

// rejectMarker is what the record the CRM refuses carries in its email.
const rejectMarker = "crmtest-refused"

// The outage and rate limit the suite simulates.
const (
	outageStatus = http.StatusServiceUnavailable
	retryAfter   = 2 * time.Second
)

// Pacing: the call limit the suite sets, and how many windows' worth of
// calls the backlog takes. The window is short because a pacing connector
// really waits it out; the check reads the fake's timestamps, not the clock.
const (
	pacingCalls   = 3
	pacingWindow  = 2 * time.Second
	pacingWindows = 3
)

// Run runs the connector contract suite against h, each check a parallel
// subtest on an account of its own:
//
//   - ParseCredentials accepts the account's document and refuses malformed
//     ones (empty, not an object, truncated, trailing data, a secret field
//     missing, empty or of the wrong type), naming the field where one is
//     at fault and never echoing a secret.
//   - Validate: a good account passes every check, the same way twice; a
//     revoked one fails crm.CheckCredentials with expired_credentials and
//     reports the others with crm.NotChecked; a dropped permission fails
//     crm.CheckScopes with insufficient_permissions, naming it (unless
//     NoPermissions); disabled
//     API access fails crm.CheckAPIAccess with api_disabled (APIDisabled);
//     during an outage Validate returns a crm.ClassTransient error, not
//     failed checks.
//   - Push answers records one to one, in order, by key; an empty batch
//     makes no call; pushing the same records again makes no second record;
//     a record the CRM refuses is crm.RecordRejected with the CRM's reason,
//     the rest delivered; an outage is crm.ClassTransient, a rate limit
//     crm.ClassRateLimited with a RetryAfter, revoked credentials
//     crm.ClassAuth, a dropped permission (or disabled API access)
//     crm.ClassPermission, each storing nothing; more than BatchLimit
//     records is crm.ErrBatchTooLarge before any call.
//   - Refresh (Refresh): an expired access token fails Push with
//     crm.ClassAuth, and Refresh returns a different document that works; a
//     revoked grant fails Refresh with crm.ClassAuth.
//   - Pacing (Pacing): under a limit of n calls per window, a backlog is
//     pushed without a single rate-limit answer, no window of the fake's
//     recorded call times holds more than n calls, and the backlog drains
//     at no less than half the allowed rate (minDrainShare).
//   - Push/BatchRefused (BatchRefusal): a batch the CRM refuses as a whole
//     for one record's content fails with crm.ClassBatchRejected and
//     stores nothing; so does that record alone, with the HTTP status
//     (that refusal is the record's rejection, which the caller's split
//     ends at); the same batch without that record goes through.
//   - OAuth (OAuth): the consent page of AuthCodeURL redirects to the
//     callback with the state and a code; Exchange turns the code into
//     credentials that validate and deliver; the code works once; neither
//     the consent URL nor any error holds the client secret or a token.
//
// No error, check, rejection reason or CRM ID may contain a secret of the
// account or any of the records' PII, and no error a URL (errors reach
// customers, who must not see our endpoints; see crm.Error).
func Run(t *testing.T, h Harness) {
	s := &suite{h: h, caps: h.Capabilities()}

	t.Run("ParseCredentials", s.parseCredentials)
	t.Run("Validate", func(t *testing.T) {
		t.Run("Good", s.validateGood)
		t.Run("Revoked", s.validateRevoked)
		t.Run("MissingPermission", s.validateMissingPermission)
		t.Run("APIDisabled", s.validateAPIDisabled)
		t.Run("Outage", s.validateOutage)
	})
	t.Run("Push", func(t *testing.T) {
		t.Run("OneToOne", s.pushOneToOne)
		t.Run("Idempotent", s.pushIdempotent)
		t.Run("RecordRejected", s.pushRecordRejected)
		t.Run("Outage", s.pushOutage)
		t.Run("RateLimited", s.pushRateLimited)
		t.Run("Revoked", s.pushRevoked)
		t.Run("MissingPermission", s.pushMissingPermission)
		t.Run("APIDisabled", s.pushAPIDisabled)
		t.Run("TooLarge", s.pushTooLarge)
		t.Run("BatchRefused", s.pushBatchRefused)
	})
	t.Run("Refresh", func(t *testing.T) {
		t.Run("ExpiredAccessToken", s.refreshExpired)
		t.Run("RevokedGrant", s.refreshRevoked)
	})
	t.Run("Pacing", s.pacing)
	t.Run("OAuth", s.oauth)
}

// suite holds what every subtest shares; each subtest makes its own account.
type suite struct {
	h    Harness
	caps Capabilities
}

// setup starts a parallel subtest on a fresh account.
func (s *suite) setup(t *testing.T) Account {
	t.Helper()
	t.Parallel()
	acct := s.h.NewAccount(t)
	require.NotEmpty(t, acct.Credentials, "crmtest: NewAccount returned no credentials")
	require.NotEmpty(t, acct.Secrets, "crmtest: NewAccount names no secrets in the credentials")
	return acct
}

// requireClean fails if text contains a secret of acct or any of the
// records' PII.
func requireClean(t *testing.T, acct Account, text string) {
	t.Helper()
	for _, secret := range acct.Secrets {
		require.NotContains(t, text, secret, "a secret of the credentials")
	}
	for _, pii := range []string{piiName, piiEmailLocal, piiPhone, piiMessage, piiAttribute, rejectMarker} {
		require.NotContains(t, text, pii, "lead PII")
	}
}

// requireCleanError fails if err's text contains a secret of acct, any of
// the records' PII, or a URL.
func requireCleanError(t *testing.T, acct Account, err error) {
	t.Helper()
	requireClean(t, acct, err.Error())
	for _, scheme := range []string{"http://", "https://"} {
		require.NotContains(t, err.Error(), scheme, "an error customers may see names no URL")
	}
}

// requireNothingStored fails if the account holds any record.
func (s *suite) requireNothingStored(t *testing.T, acct Account) {
	t.Helper()
	require.Empty(t, s.h.Records(t, acct), "a refused call stores nothing")
}

// records returns n records full of PII, keyed "<prefix>-<i>". Each has its
// own email and phone: CRMs without a key field (Follow Up Boss) tell
// people apart by them.
func records(prefix string, n int) []crm.Record {
	recs := make([]crm.Record, n)
	for i := range recs {
		recs[i] = crm.Record{
			Key:        fmt.Sprintf("%s-%d", prefix, i),
			Source:     "crmtest-partner",
			Name:       piiName,
			Email:      fmt.Sprintf("%s+%s-%d@example.org", piiEmailLocal, prefix, i),
			Phone:      fmt.Sprintf("%s%02d", piiPhone, i%100),
			Message:    piiMessage,
			Attributes: map[string]any{"budget": 450000, "notes": piiAttribute},
		}
	}
	return recs
}

// keys returns the records' keys.
func keys(recs []crm.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Key
	}
	return out
}

// onePerKey is what Records answers once each of keys was delivered once.
func onePerKey(keys []string) map[string]int {
	m := make(map[string]int, len(keys))
	for _, k := range keys {
		m[k] = 1
	}
	return m
}

// batchSize is how many records the suite pushes per call where it wants
// more than one: a few, within the connector's limit.
func (s *suite) batchSize() int {
	return min(s.h.Connector().BatchLimit(), 3)
}

// pushAll pushes recs in batches of at most BatchLimit, requiring every
// call to succeed, and returns the results in order.
func (s *suite) pushAll(t *testing.T, acct Account, recs []crm.Record) []crm.RecordResult {
	t.Helper()
	c := s.h.Connector()
	var all []crm.RecordResult
	for batch := range slices.Chunk(recs, c.BatchLimit()) {
		results, err := c.Push(t.Context(), acct.Credentials, batch)
		require.NoError(t, err)
		require.NoError(t, crm.CheckResults(batch, results), "results answer records one to one, in order")
		all = append(all, results...)
	}
	for _, r := range all {
		requireClean(t, acct, r.Reason+" "+r.CRMID)
	}
	return all
}

// requireDelivered fails unless every result is RecordDelivered.
func requireDelivered(t *testing.T, results []crm.RecordResult) {
	t.Helper()
	for _, r := range results {
		require.Equal(t, crm.RecordDelivered, r.Status, "record %s: %s", r.Key, r.Reason)
		require.Empty(t, r.Reason, "record %s: a delivered record has no reason", r.Key)
	}
}

// pushError pushes recs in one call, which must fail as a whole with a
// *crm.Error free of secrets and PII, and returns that error.
func (s *suite) pushError(t *testing.T, acct Account, recs []crm.Record) *crm.Error {
	t.Helper()
	results, err := s.h.Connector().Push(t.Context(), acct.Credentials, recs)
	require.Error(t, err)
	require.Nil(t, results, "a failed call returns no results")
	requireCleanError(t, acct, err)
	var crmErr *crm.Error
	require.ErrorAs(t, err, &crmErr, "a whole-call failure is a *crm.Error")
	return crmErr
}

// validate runs Validate, which must run (no error), and checks what every
// outcome shares: at least one check, crm.CheckCredentials first, unique
// names, and no secret in any text.
func (s *suite) validate(t *testing.T, acct Account, raw []byte) []integration.Check {
	t.Helper()
	checks, err := s.h.Connector().Validate(t.Context(), raw)
	require.NoError(t, err, "Validate could not run")
	require.NotEmpty(t, checks)
	require.Equal(t, crm.CheckCredentials, checks[0].Name, "the credentials check comes first")
	seen := map[string]bool{}
	for _, c := range checks {
		require.NotEmpty(t, c.Name)
		require.False(t, seen[c.Name], "check %s is reported twice", c.Name)
		seen[c.Name] = true
		requireClean(t, acct, c.Message+" "+c.Remediation)
	}
	return checks
}

// check returns the check named name, failing if there is none.
func check(t *testing.T, checks []integration.Check, name string) integration.Check {
	t.Helper()
	for _, c := range checks {
		if c.Name == name {
			return c
		}
	}
	require.Failf(t, "missing check", "no check %s among %v", name, checks)
	return integration.Check{}
}

// requireAllOK fails unless every check passed.
func requireAllOK(t *testing.T, checks []integration.Check) {
	t.Helper()
	for _, c := range checks {
		require.True(t, c.OK, "check %s: %s", c.Name, c.Message)
		require.Empty(t, c.Code, c.Name)
	}
}

// requireFailed fails unless c failed with code and says what to do.
func requireFailed(t *testing.T, c integration.Check, code integration.Reason) {
	t.Helper()
	require.False(t, c.OK, c.Name)
	require.Equal(t, code, c.Code, "check %s: %s", c.Name, c.Message)
	require.NotEmpty(t, c.Message, c.Name)
	require.NotEmpty(t, c.Remediation, "check %s: a failed check says what to do", c.Name)
}

func (s *suite) parseCredentials(t *testing.T) {
	acct := s.setup(t)
	c := s.h.Connector()
	good := bytes.TrimSpace(acct.Credentials)
	require.NoError(t, c.ParseCredentials(acct.Credentials))

	var doc map[string]any
	require.NoError(t, json.Unmarshal(good, &doc), "crmtest: Account.Credentials must be a JSON object")
	// withField is the document with field set to v (or removed, for nil).
	withField := func(field string, v any) []byte {
		changed := make(map[string]any, len(doc))
		for k, val := range doc {
			changed[k] = val
		}
		if v == nil {
			delete(changed, field)
		} else {
			changed[field] = v
		}
		data, err := json.Marshal(changed)
		require.NoError(t, err)
		return data
	}

	// A number can itself be a secret, so a type error must not quote it.
	const numberSecret = 424242
	type malformed struct {
		raw []byte
		// field is the field at fault, which the error must name ("" for
		// a document that is wrong as a whole).
		field string
	}
	cases := map[string]malformed{
		"empty":         {raw: nil},
		"blank":         {raw: []byte(" \n\t")},
		"bare secret":   {raw: []byte(acct.Secrets[0])},
		"JSON string":   {raw: []byte(`"` + acct.Secrets[0] + `"`)},
		"null":          {raw: []byte("null")},
		"empty object":  {raw: []byte("{}")},
		"array":         {raw: append(append([]byte("["), good...), ']')},
		"truncated":     {raw: good[:len(good)-1]},
		"trailing data": {raw: append(append([]byte{}, good...), " x"...)},
	}
	secretFields := 0
	for field, v := range doc {
		if str, ok := v.(string); !ok || !slices.Contains(acct.Secrets, str) {
			continue
		}
		secretFields++
		cases["missing "+field] = malformed{raw: withField(field, nil), field: field}
		cases["empty "+field] = malformed{raw: withField(field, ""), field: field}
		cases["number "+field] = malformed{raw: withField(field, numberSecret), field: field}
	}
	require.NotZero(t, secretFields, "crmtest: no top-level field of Account.Credentials holds one of Account.Secrets")

	for name, tc := range cases {
		err := c.ParseCredentials(tc.raw)
		require.Error(t, err, "%s: a malformed document is refused", name)
		requireClean(t, acct, err.Error())
		require.NotContains(t, err.Error(), fmt.Sprint(numberSecret), name)
		if tc.field != "" {
			require.Contains(t, err.Error(), tc.field, "%s: the error says which field is wrong", name)
		}
	}
}

func (s *suite) validateGood(t *testing.T) {
	acct := s.setup(t)
	checks := s.validate(t, acct, acct.Credentials)
	requireAllOK(t, checks)
	// Unchanged state gives identical checks, so the workflow sees no change.
	require.Equal(t, checks, s.validate(t, acct, acct.Credentials))
}

func (s *suite) validateRevoked(t *testing.T) {
	acct := s.setup(t)
	s.h.Revoke(t, acct)

	checks := s.validate(t, acct, acct.Credentials)
	requireFailed(t, checks[0], integration.ReasonExpiredCredentials)
	for _, c := range checks[1:] {
		// The credentials hide everything else: claiming a pass would be untrue.
		require.False(t, c.OK, c.Name)
		require.Empty(t, c.Code, "check %s: only the credentials check carries the reason", c.Name)
		require.True(t, strings.HasPrefix(c.Message, "not checked: "), "check %s is reported with crm.NotChecked: %s", c.Name, c.Message)
	}
	require.Len(t, integration.Validation{Checks: checks}.Failed(), len(checks))

	s.h.Restore(t, acct)
	requireAllOK(t, s.validate(t, acct, acct.Credentials))
}

func (s *suite) validateMissingPermission(t *testing.T) {
	if s.caps.NoPermissions {
		t.Skip("the CRM's credentials carry no permission to drop (Capabilities().NoPermissions is set)")
	}
	acct := s.setup(t)
	permission := s.h.DropPermission(t, acct)
	require.NotEmpty(t, permission, "crmtest: DropPermission names the permission")

	checks := s.validate(t, acct, acct.Credentials)
	require.True(t, checks[0].OK, "the credentials still work: %s", checks[0].Message)
	scopes := check(t, checks, crm.CheckScopes)
	requireFailed(t, scopes, integration.ReasonInsufficientPermissions)
	require.Contains(t, scopes.Message, permission, "the message names the missing permission")
}

func (s *suite) validateAPIDisabled(t *testing.T) {
	if !s.caps.APIDisabled {
		t.Skip("the CRM cannot turn API access off (Capabilities().APIDisabled is false)")
	}
	acct := s.setup(t)
	s.h.DisableAPI(t, acct)

	checks := s.validate(t, acct, acct.Credentials)
	require.True(t, checks[0].OK, "the credentials still work: %s", checks[0].Message)
	requireFailed(t, check(t, checks, crm.CheckAPIAccess), integration.ReasonAPIDisabled)
}

func (s *suite) validateOutage(t *testing.T) {
	acct := s.setup(t)
	s.h.FailNext(t, acct, 1, outageStatus)

	checks, err := s.h.Connector().Validate(t.Context(), acct.Credentials)
	require.Error(t, err, "an outage means validation could not run, not that checks failed")
	require.Nil(t, checks)
	requireCleanError(t, acct, err)
	var crmErr *crm.Error
	require.ErrorAs(t, err, &crmErr)
	require.Equal(t, crm.ClassTransient, crmErr.Class)
	require.Equal(t, outageStatus, crmErr.StatusCode)

	// The outage was one call long.
	requireAllOK(t, s.validate(t, acct, acct.Credentials))
}

func (s *suite) pushOneToOne(t *testing.T) {
	acct := s.setup(t)
	c := s.h.Connector()
	require.Positive(t, c.BatchLimit())

	// Nothing to push makes no call.
	results, err := c.Push(t.Context(), acct.Credentials, nil)
	require.NoError(t, err)
	require.Empty(t, results)
	require.Empty(t, s.h.Calls(t, acct), "an empty batch makes no call")

	recs := records("one", 2*s.batchSize()+1)
	results = s.pushAll(t, acct, recs)
	requireDelivered(t, results)
	ids := map[string]string{}
	for _, r := range results {
		if r.CRMID == "" {
			continue
		}
		other, dup := ids[r.CRMID]
		require.False(t, dup, "records %s and %s got the same CRM ID", other, r.Key)
		ids[r.CRMID] = r.Key
	}
	require.Equal(t, onePerKey(keys(recs)), s.h.Records(t, acct))
}

func (s *suite) pushIdempotent(t *testing.T) {
	acct := s.setup(t)
	recs := records("again", s.batchSize())
	first := s.pushAll(t, acct, recs)
	requireDelivered(t, first)

	// A batch whose outcome was unknown is pushed again as it was, and
	// again with a new record beside the old ones.
	again := s.pushAll(t, acct, recs)
	requireDelivered(t, again)
	extended := append(slices.Clone(recs[1:]), records("again-new", 1)...)
	more := s.pushAll(t, acct, extended)
	requireDelivered(t, more)

	for i, r := range again {
		if first[i].CRMID != "" && r.CRMID != "" {
			require.Equal(t, first[i].CRMID, r.CRMID, "record %s: the same record, updated", r.Key)
		}
	}
	require.Equal(t, onePerKey(keys(append(slices.Clone(recs), extended...))), s.h.Records(t, acct),
		"pushing a record again makes no second record")
}

func (s *suite) pushRecordRejected(t *testing.T) {
	acct := s.setup(t)
	reason := s.h.RejectRecords(t, acct, "email", rejectMarker)
	require.NotEmpty(t, reason, "crmtest: RejectRecords returns the reason the connector reports")

	recs := records("reject", 3)
	bad := &recs[1]
	bad.Email = piiEmailLocal + "." + rejectMarker + "@example.org"
	results := s.pushAll(t, acct, recs)

	requireDelivered(t, []crm.RecordResult{results[0], results[2]})
	got := results[1]
	require.Equal(t, crm.RecordRejected, got.Status)
	require.Contains(t, got.Reason, reason, "the CRM's reason")
	require.NotContains(t, got.Reason, bad.Email, "the reason never quotes the offending value")
	require.Empty(t, got.CRMID, "the CRM holds no record for a rejected one")
	require.Equal(t, onePerKey([]string{recs[0].Key, recs[2].Key}), s.h.Records(t, acct))
}

func (s *suite) pushOutage(t *testing.T) {
	acct := s.setup(t)
	recs := records("outage", s.batchSize())
	s.h.FailNext(t, acct, 1, outageStatus)

	err := s.pushError(t, acct, recs)
	require.Equal(t, crm.ClassTransient, err.Class)
	require.Equal(t, outageStatus, err.StatusCode)
	s.requireNothingStored(t, acct)

	// The CRM recovers; the same batch goes through.
	requireDelivered(t, s.pushAll(t, acct, recs))
}

func (s *suite) pushRateLimited(t *testing.T) {
	acct := s.setup(t)
	recs := records("limited", s.batchSize())
	s.h.RateLimitNext(t, acct, 1, retryAfter)

	err := s.pushError(t, acct, recs)
	require.Equal(t, crm.ClassRateLimited, err.Class)
	require.Positive(t, err.RetryAfter, "a rate limit says how long to wait")
	s.requireNothingStored(t, acct)

	// As the caller does: the next attempt comes after the delay the
	// error named. A connector may fail a push at once while the CRM's
	// delay lasts, rather than block it.
	waitOut(t, err.RetryAfter)
	requireDelivered(t, s.pushAll(t, acct, recs))
}

// waitOut sleeps d, a delay a rate limit named; the suite's own rate
// limits name a few seconds at most.
func waitOut(t *testing.T, d time.Duration) {
	t.Helper()
	require.LessOrEqual(t, d, time.Minute, "the suite's rate limit asked for %s, far more than it set", d)
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-t.Context().Done():
		t.Fatal("the test ended while waiting out a rate limit")
	}
}

func (s *suite) pushRevoked(t *testing.T) {
	acct := s.setup(t)
	s.h.Revoke(t, acct)

	require.Equal(t, crm.ClassAuth, s.pushError(t, acct, records("revoked", s.batchSize())).Class)
	s.requireNothingStored(t, acct)
}

func (s *suite) pushMissingPermission(t *testing.T) {
	if s.caps.NoPermissions {
		t.Skip("the CRM's credentials carry no permission to drop (Capabilities().NoPermissions is set)")
	}
	acct := s.setup(t)
	s.h.DropPermission(t, acct)

	require.Equal(t, crm.ClassPermission, s.pushError(t, acct, records("permission", s.batchSize())).Class)
	s.requireNothingStored(t, acct)
}

func (s *suite) pushAPIDisabled(t *testing.T) {
	if !s.caps.APIDisabled {
		t.Skip("the CRM cannot turn API access off (Capabilities().APIDisabled is false)")
	}
	acct := s.setup(t)
	s.h.DisableAPI(t, acct)

	require.Equal(t, crm.ClassPermission, s.pushError(t, acct, records("disabled", s.batchSize())).Class)
	s.requireNothingStored(t, acct)
}

func (s *suite) pushTooLarge(t *testing.T) {
	acct := s.setup(t)
	c := s.h.Connector()
	recs := records("large", c.BatchLimit()+1)

	results, err := c.Push(t.Context(), acct.Credentials, recs)
	require.ErrorIs(t, err, crm.ErrBatchTooLarge)
	require.Nil(t, results)
	requireCleanError(t, acct, err)
	require.Empty(t, s.h.Calls(t, acct), "refused before any call")
	s.requireNothingStored(t, acct)
}

// refresher returns the connector as a crm.Refresher, skipping the test
// for a CRM whose credentials do not refresh.
func (s *suite) refresher(t *testing.T) crm.Refresher {
	t.Helper()
	if !s.caps.Refresh {
		t.Skip("the CRM's credentials do not refresh (Capabilities().Refresh is false)")
	}
	r, ok := s.h.Connector().(crm.Refresher)
	require.True(t, ok, "Capabilities().Refresh is set: the connector must implement crm.Refresher")
	return r
}

func (s *suite) refreshExpired(t *testing.T) {
	r := s.refresher(t)
	acct := s.setup(t)
	recs := records("refresh", s.batchSize())
	s.h.ExpireAccessToken(t, acct)

	require.Equal(t, crm.ClassAuth, s.pushError(t, acct, recs).Class, "an expired access token is an auth error the caller refreshes on")
	s.requireNothingStored(t, acct)

	refreshed, err := r.Refresh(t.Context(), acct.Credentials)
	require.NoError(t, err)
	require.NotEqual(t, string(acct.Credentials), string(refreshed), "Refresh never returns the document unchanged")
	require.NoError(t, s.h.Connector().ParseCredentials(refreshed), "the refreshed document is stored like any other")

	acct.Credentials = refreshed
	requireAllOK(t, s.validate(t, acct, refreshed))
	requireDelivered(t, s.pushAll(t, acct, recs))
	require.Equal(t, onePerKey(keys(recs)), s.h.Records(t, acct))
}

func (s *suite) refreshRevoked(t *testing.T) {
	r := s.refresher(t)
	acct := s.setup(t)
	s.h.Revoke(t, acct)

	refreshed, err := r.Refresh(t.Context(), acct.Credentials)
	require.Error(t, err)
	require.Nil(t, refreshed)
	require.Equal(t, crm.ClassAuth, crm.ClassOf(err), "a revoked grant asks for re-authorization: %v", err)
	requireCleanError(t, acct, err)
}

func (s *suite) pacing(t *testing.T) {
	if !s.caps.Pacing {
		t.Skip("the connector does not pace its calls (Capabilities().Pacing is false)")
	}
	acct := s.setup(t)
	s.h.LimitCalls(t, acct, pacingCalls, pacingWindow)
	before := len(s.h.Calls(t, acct))

	// A backlog of several windows' worth of calls, pushed as fast as the
	// connector lets it go: any rate-limit answer fails the push.
	recs := records("paced", pacingCalls*pacingWindows*s.h.Connector().BatchLimit())
	requireDelivered(t, s.pushAll(t, acct, recs))

	calls := s.h.Calls(t, acct)
	require.GreaterOrEqual(t, len(calls)-before, pacingCalls*pacingWindows)
	if err := checkPacing(calls, pacingCalls, pacingWindow); err != nil {
		require.Failf(t, "calls are not paced", "%v; the calls: %v", err, calls)
	}
	// Never over the limit, and not far under it either: the backlog's
	// own calls (those of setting up the account left out) drain at
	// least minDrainShare of the allowed rate.
	if err := checkDrainRate(calls[before:], pacingCalls, pacingWindow, minDrainShare); err != nil {
		require.Failf(t, "the backlog drains too slowly", "%v; the calls: %v", err, calls[before:])
	}
	require.Equal(t, onePerKey(keys(recs)), s.h.Records(t, acct))
}

// minDrainShare is the least share of the allowed rate the Pacing subtest
// accepts for a backlog's drain. A pacer runs at about 90% of it (95% of
// the limit, less an absolute margin per window: 89% at the suite's 3
// calls per 2 s), which BenchmarkPacing reports as %-of-limit. The test's
// floor is far lower because a loaded CI machine delays calls by amounts
// no pacer controls (scheduling, a slow fake), and a pacing test must
// never flake: it catches a pacer that waits whole windows, or holds for
// seconds it was not asked to, not one a few percent slow.
const minDrainShare = 0.5

// checkDrainRate returns an error if calls, a backlog pushed as fast as
// the connector lets it go, went at less than share of n calls per window:
// the rate from the first call to the last, (len-1)/span, measured on the
// fake's recorded timestamps.
func checkDrainRate(calls []Call, n int, window time.Duration, share float64) error {
	if n <= 0 || window <= 0 {
		return fmt.Errorf("a limit of %d calls per %s is not a limit", n, window)
	}
	if len(calls) < 2 {
		return fmt.Errorf("%d calls make no rate", len(calls))
	}
	first, last := calls[0].At, calls[0].At
	for _, c := range calls[1:] {
		first, last = minTime(first, c.At), maxTime(last, c.At)
	}
	allowed := float64(n) / window.Seconds()
	// The longest span the calls may take at share of the allowed rate.
	longest := time.Duration(float64(len(calls)-1) / (share * allowed) * float64(time.Second))
	if span := last.Sub(first); span > longest {
		return fmt.Errorf("%d calls took %s, %.1f%% of the allowed %d per %s; at least %.0f%% would take at most %s",
			len(calls), span, 100*float64(len(calls)-1)/span.Seconds()/allowed, n, window, 100*share, longest)
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// checkPacing returns an error if any window of the given length holds more
// than n of the calls, or if a call was answered 429. A window is half-open,
// [at, at+window): a limiter that allows n calls per window lets call i+n go
// exactly one window after call i.
func checkPacing(calls []Call, n int, window time.Duration) error {
	if n <= 0 || window <= 0 {
		return fmt.Errorf("a limit of %d calls per %s is not a limit", n, window)
	}
	times := make([]time.Time, len(calls))
	var errs []error
	for i, c := range calls {
		times[i] = c.At
		if c.Status == http.StatusTooManyRequests {
			errs = append(errs, fmt.Errorf("call %d at %s was answered 429", i, c.At.Format(time.RFC3339Nano)))
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	for i := 0; i+n < len(times); i++ {
		if gap := times[i+n].Sub(times[i]); gap < window {
			errs = append(errs, fmt.Errorf("calls %d to %d fall within %s, less than the window of %s for %d calls", i, i+n, gap, window, n))
			break
		}
	}
	return errors.Join(errs...)
}

func (s *suite) pushBatchRefused(t *testing.T) {
	if !s.caps.BatchRefusal {
		t.Skip("the CRM does not refuse batches as a whole (Capabilities().BatchRefusal is false)")
	}
	acct := s.setup(t)
	s.h.RefuseBatches(t, acct, "email", rejectMarker)
	recs := records("refused-batch", s.batchSize())
	bad := recs[len(recs)-1]
	bad.Email = rejectMarker + "@example.org"
	recs[len(recs)-1] = bad

	require.Equal(t, crm.ClassBatchRejected, s.pushError(t, acct, recs).Class, "refused for what it carries")
	s.requireNothingStored(t, acct)

	// The record alone is refused the same way: a caller splitting the
	// batch ends there, with the CRM's status (and code) as its reason.
	alone := s.pushError(t, acct, []crm.Record{bad})
	require.Equal(t, crm.ClassBatchRejected, alone.Class, "the record at fault, alone")
	require.NotZero(t, alone.StatusCode, "the refusal names the CRM's HTTP status")
	requireClean(t, acct, alone.Summary())
	s.requireNothingStored(t, acct)

	rest := recs[:len(recs)-1]
	if len(rest) == 0 {
		return
	}
	requireDelivered(t, s.pushAll(t, acct, rest))
	require.Equal(t, onePerKey(keys(rest)), s.h.Records(t, acct))
}

// oauthCallback is where the suite asks the consent page to redirect to;
// nothing listens there, the harness only reads the redirect.
const oauthCallback = "http://127.0.0.1:9/oauth/callback"

func (s *suite) oauth(t *testing.T) {
	if !s.caps.OAuth {
		t.Skip("the CRM has no consent page (Capabilities().OAuth is false)")
	}
	t.Parallel()
	c, ok := s.h.Connector().(crm.OAuth)
	require.True(t, ok, "Capabilities().OAuth is set: the connector must implement crm.OAuth")
	const state = "crmtest-state-7f3a"
	consent, err := c.AuthCodeURL(crm.AuthRequest{State: state, RedirectURL: oauthCallback})
	require.NoError(t, err)
	require.NotContains(t, consent, "secret", "the consent URL carries no client secret")

	redirect := s.h.Consent(t, consent)
	require.Equal(t, "127.0.0.1:9", redirect.Host, "the consent page redirects to the callback")
	require.Equal(t, "/oauth/callback", redirect.Path)
	require.Equal(t, state, redirect.Query().Get("state"), "the state comes back unchanged")
	code := redirect.Query().Get("code")
	require.NotEmpty(t, code, "the consent page sends a code")

	raw, err := c.Exchange(t.Context(), crm.ExchangeRequest{Code: code, RedirectURL: oauthCallback})
	require.NoError(t, err)
	require.NoError(t, s.h.Connector().ParseCredentials(raw), "the exchanged document is stored like any other")
	acct := Account{Handle: "oauth", Credentials: raw, Secrets: []string{code}}
	requireAllOK(t, s.validate(t, acct, raw))
	recs := records("oauth", s.batchSize())
	requireDelivered(t, s.pushAll(t, acct, recs))

	again, err := c.Exchange(t.Context(), crm.ExchangeRequest{Code: code, RedirectURL: oauthCallback})
	require.Error(t, err, "a code works once")
	require.Nil(t, again)
	require.Equal(t, crm.ClassAuth, crm.ClassOf(err), "a spent code asks for consent again: %v", err)
	requireCleanError(t, acct, err)

	_, err = c.Exchange(t.Context(), crm.ExchangeRequest{Code: "forged-" + code, RedirectURL: oauthCallback})
	require.Error(t, err, "a forged code is refused")
	requireCleanError(t, acct, err)
}
