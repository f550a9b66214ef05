package activities_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/store"
)

// fakeCRM is a connector whose Push answers from a script, and which can
// refresh its credentials like an OAuth CRM.
type fakeCRM struct {
	// beforePush, when set, is called with the call's index (from 0) before
	// each push is answered, so a test can hold a push.
	beforePush func(call int)
	pushes     [][]crm.Record
	creds      [][]byte
	script     []error
	refreshTo  []byte
	// onRefresh runs while a refresh is under way.
	onRefresh func()
	// checks and validateErr are what Validate answers; validated the
	// credentials it was given.
	checks      []integration.Check
	validateErr error
	validated   [][]byte
	// checksFor, when set, answers Validate by the credentials given.
	checksFor func(raw []byte) []integration.Check
}

func (f *fakeCRM) Provider() string              { return "fake" }
func (f *fakeCRM) ParseCredentials([]byte) error { return nil }
func (f *fakeCRM) BatchLimit() int               { return 2 }

func (f *fakeCRM) Validate(_ context.Context, raw []byte) ([]integration.Check, error) {
	f.validated = append(f.validated, raw)
	if f.checksFor != nil {
		return f.checksFor(raw), f.validateErr
	}
	return f.checks, f.validateErr
}

func (f *fakeCRM) Push(_ context.Context, raw []byte, records []crm.Record) ([]crm.RecordResult, error) {
	call := len(f.pushes)
	if f.beforePush != nil {
		f.beforePush(call)
	}
	f.pushes = append(f.pushes, records)
	f.creds = append(f.creds, raw)
	if call < len(f.script) && f.script[call] != nil {
		return nil, f.script[call]
	}
	out := make([]crm.RecordResult, len(records))
	for i, r := range records {
		out[i] = crm.RecordResult{Key: r.Key, Status: crm.RecordDelivered, CRMID: "rec-" + r.Key}
		if r.Email == "bad" {
			out[i] = crm.RecordResult{Key: r.Key, Status: crm.RecordRejected, Reason: "invalid email"}
		}
	}
	return out, nil
}

func (f *fakeCRM) Refresh(_ context.Context, raw []byte) ([]byte, error) {
	if f.onRefresh != nil {
		f.onRefresh()
	}
	if f.refreshTo == nil {
		return nil, &crm.Error{Class: crm.ClassAuth, Err: errors.New("refresh token revoked")}
	}
	return f.refreshTo, nil
}

// zeroKey is the tests' encryption key.
var zeroKey = make([]byte, credential.KeySize)

// t0 is a time for rows whose time does not matter.
func t0() time.Time { return time.Now().UTC() }

type testBundle struct {
	ctx   context.Context
	dbURL string
	store *store.Store
	kr    *credential.Keyring
	fake  *fakeCRM
	acts  *activities.Activities
	crmID string
	lead  string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	dbURL := testenv.SQLiteURL(t)
	st, err := store.Open(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	require.NoError(t, st.Migrate(ctx))
	kr, err := credential.NewKeyring(zeroKey)
	require.NoError(t, err)
	b := &testBundle{ctx: ctx, dbURL: dbURL, store: st, kr: kr, fake: &fakeCRM{}, crmID: "crm-1", lead: "lead-1"}
	b.acts = &activities.Activities{Store: st, Connectors: crm.NewRegistry(b.fake), Keyring: kr}
	now := time.Now().UTC()
	for _, spec := range []integration.Spec{
		{ID: b.lead, OrgID: "org", Kind: integration.KindLead, Provider: "p", ExpectedSource: "s"},
		{ID: b.crmID, OrgID: "org", Kind: integration.KindCRM, Provider: "fake"},
	} {
		s, err := integration.New(spec, now)
		require.NoError(t, err)
		s.Status, s.Reason, s.Version = integration.StatusActive, integration.ReasonNone, 2
		_, err = st.Project(ctx, s, integration.Change{IntegrationID: s.ID, Version: 2, Event: integration.EventCompleteSetup, ToStatus: s.Status, At: now})
		require.NoError(t, err)
	}
	b.authorize(t, `{"token":"old"}`)
	return b
}

// addCandidate stores raw as a candidate version of the CRM integration's
// credentials, sealed as the starter does.
func (b *testBundle) addCandidate(t *testing.T, raw string) store.Credential {
	t.Helper()
	cred, err := b.store.AddCandidateCredential(b.ctx, b.crmID, b.kr.Sealer([]byte(raw), b.crmID), time.Now().UTC())
	require.NoError(t, err)
	return cred
}

// authorize stores raw as the CRM integration's current credentials.
func (b *testBundle) authorize(t *testing.T, raw string) store.Credential {
	t.Helper()
	cred := b.addCandidate(t, raw)
	current, err := b.store.PromoteCredential(b.ctx, b.crmID, cred.Version, time.Now().UTC())
	require.NoError(t, err)
	require.True(t, current)
	return cred
}

func (b *testBundle) addLeads(t *testing.T, emails ...string) {
	t.Helper()
	for i, email := range emails {
		res, err := b.store.AddLead(b.ctx, store.Lead{IntegrationID: b.lead, ExternalID: fmt.Sprintf("x-%d-%s", i, email), Source: "s", Email: email, ReceivedAt: time.Now().UTC()})
		require.NoError(t, err)
		require.Equal(t, []string{b.crmID}, res.Routed)
	}
}

func (b *testBundle) deliver(t *testing.T) activities.DeliverResult {
	t.Helper()
	res, err := b.acts.Deliver(b.ctx, activities.DeliverInput{IntegrationID: b.crmID, Provider: "fake"})
	require.NoError(t, err)
	return res
}

func (b *testBundle) counts(t *testing.T) store.DeliveryCounts {
	t.Helper()
	c, err := b.store.DeliveryCounts(b.ctx, b.crmID)
	require.NoError(t, err)
	return c
}

func TestDeliverBatchesAndRecordsOutcomes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.Equal(t, activities.DeliverResult{}, b.deliver(t), "nothing pending, no call")
	require.Empty(t, b.fake.pushes)

	b.addLeads(t, "a@x", "bad", "c@x")
	res := b.deliver(t)
	require.Equal(t, activities.DeliverResult{Delivered: 2, Rejected: 1}, res, "batches follow each other until nothing is pending")
	require.Equal(t, store.DeliveryCounts{Delivered: 2, Rejected: 1}, withoutTimes(b.counts(t)))
	require.Len(t, b.fake.pushes, 2, "two batches of the connector's limit (2)")
	require.Len(t, b.fake.pushes[0], 2)
	require.Equal(t, "a@x", b.fake.pushes[0][0].Email, "oldest first")
	require.Equal(t, activities.DeliverResult{}, b.deliver(t))
}

func TestDeliverClassifiesFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		err   error
		class activities.FailureClass
	}{
		{"transient", &crm.Error{Class: crm.ClassTransient, StatusCode: 503, Err: errors.New("HTTP 503")}, activities.FailureTransient},
		{"unclassified", errors.New("connection reset"), activities.FailureTransient},
		{"rate limited", &crm.Error{Class: crm.ClassRateLimited, StatusCode: 429, RetryAfter: 3 * time.Second, Err: errors.New("HTTP 429")}, activities.FailureRateLimited},
		{"permission", &crm.Error{Class: crm.ClassPermission, StatusCode: 403, Err: errors.New("HTTP 403")}, activities.FailurePermission},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.fake.script = []error{tc.err}
			b.addLeads(t, "a@x")
			res := b.deliver(t)
			require.NotNil(t, res.Failure)
			require.Equal(t, tc.class, res.Failure.Class)
			require.NotContains(t, res.Failure.Message, "a@x")
			if tc.class == activities.FailureRateLimited {
				require.Equal(t, 3*time.Second, res.Failure.RetryAfter)
			}
			require.Equal(t, int64(1), b.counts(t).Pending, "the lead waits")
			// The next attempt delivers it.
			require.Equal(t, activities.DeliverResult{Delivered: 1}, b.deliver(t))
		})
	}
}

func TestDeliverRefreshesExpiredCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.script = []error{&crm.Error{Class: crm.ClassAuth, StatusCode: 401, Err: errors.New("HTTP 401")}}
	b.fake.refreshTo = []byte(`{"token":"new"}`)
	b.addLeads(t, "a@x")
	require.Equal(t, activities.DeliverResult{Delivered: 1}, b.deliver(t))
	require.Equal(t, [][]byte{[]byte(`{"token":"old"}`), []byte(`{"token":"new"}`)}, b.fake.creds, "retried once with the refreshed token")
	cred, err := b.store.CurrentCredential(b.ctx, b.crmID)
	require.NoError(t, err)
	require.Equal(t, 2, cred.Version, "the refreshed credentials are stored as a new version")
	require.Equal(t, 1, cred.GrantVersion, "of the same grant")
	require.False(t, cred.Candidate(), "current at once")
	require.Equal(t, b.kr.ActiveKeyID().String(), cred.KeyID)
	raw, err := b.kr.Open(cred.Ciphertext, b.crmID, cred.Version)
	require.NoError(t, err)
	require.Equal(t, `{"token":"new"}`, string(raw))

	// A refresh that fails is an auth failure for the workflow to validate.
	b.fake.script = append(b.fake.script, nil, &crm.Error{Class: crm.ClassAuth, StatusCode: 401, Err: errors.New("HTTP 401")})
	b.fake.refreshTo = nil
	b.addLeads(t, "b@x")
	res := b.deliver(t)
	require.NotNil(t, res.Failure)
	require.Equal(t, activities.FailureAuth, res.Failure.Class)
}

func TestDeliverRefreshLosesToAReauthorization(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.script = []error{&crm.Error{Class: crm.ClassAuth, StatusCode: 401, Err: errors.New("HTTP 401")}}
	b.fake.refreshTo = []byte(`{"token":"refreshed"}`)
	// While the old grant is refreshed, new credentials are authorized and
	// validated.
	b.fake.onRefresh = func() { b.authorize(t, `{"token":"reauthorized"}`) }
	b.addLeads(t, "a@x")

	require.Equal(t, activities.DeliverResult{Delivered: 1}, b.deliver(t))
	require.Equal(t, [][]byte{[]byte(`{"token":"old"}`), []byte(`{"token":"reauthorized"}`)}, b.fake.creds,
		"retried with what is current, not with the refresh of the replaced grant")
	cred, err := b.store.CurrentCredential(b.ctx, b.crmID)
	require.NoError(t, err)
	require.Equal(t, 2, cred.Version)
	creds, err := b.store.ListCredentials(b.ctx, store.CredentialKey{}, 10)
	require.NoError(t, err)
	require.Len(t, creds, 2, "the superseded refresh is not stored")
}

func TestDeliverSaysWhatToFixWhenCredentialsDoNotDecrypt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.addLeads(t, "a@x")
	// The worker runs with a new key and without the old one.
	other, err := credential.NewKeyring(bytes.Repeat([]byte{7}, credential.KeySize))
	require.NoError(t, err)
	b.acts.Keyring = other

	_, err = b.acts.Deliver(b.ctx, activities.DeliverInput{IntegrationID: b.crmID, Provider: "fake"})
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	require.True(t, app.NonRetryable())
	require.Equal(t, "CredentialDecrypt", app.Type())
	require.Contains(t, app.Message(), b.kr.ActiveKeyID().String(), "names the missing key")
	require.Contains(t, app.Message(), credential.OldKeysEnv, "and where to put it")
	require.NotContains(t, app.Message(), "token", "never the credentials")
	require.Empty(t, b.fake.pushes)
	require.Equal(t, int64(1), b.counts(t).Pending)
}

func withoutTimes(c store.DeliveryCounts) store.DeliveryCounts {
	c.OldestPendingSince, c.LastDeliveredAt = nil, nil
	return c
}

func TestDeliverPagesThroughTheBacklog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.SetPaging(4, time.Hour) // pages of two batches of 2
	emails := make([]string, 9)
	for i := range emails {
		emails[i] = fmt.Sprintf("lead%d@x", i)
	}
	b.addLeads(t, emails...)

	require.Equal(t, activities.DeliverResult{Delivered: 9}, b.deliver(t))
	require.Equal(t, store.DeliveryCounts{Delivered: 9}, withoutTimes(b.counts(t)))
	var pushed []string
	for _, batch := range b.fake.pushes {
		require.LessOrEqual(t, len(batch), 2)
		for _, r := range batch {
			pushed = append(pushed, r.Email)
		}
	}
	require.Equal(t, emails, pushed, "every lead once, oldest first, across pages read ahead")
}

func TestDeliverStopsAtAFailingBatchAndRecordsWhatWentBefore(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.SetPaging(4, time.Hour)
	b.addLeads(t, "a@x", "b@x", "c@x", "d@x", "e@x", "f@x", "g@x", "h@x", "i@x")
	// The fourth call is the second batch of the second page.
	b.fake.script = []error{nil, nil, nil, &crm.Error{Class: crm.ClassTransient, StatusCode: 503, Err: errors.New("HTTP 503")}}

	res := b.deliver(t)
	require.Equal(t, 6, res.Delivered, "the first page and the batch before the failure")
	require.NotNil(t, res.Failure)
	require.Equal(t, activities.FailureTransient, res.Failure.Class)
	require.False(t, res.More)
	require.Len(t, b.fake.pushes, 4, "nothing pushed after the failure")
	require.Equal(t, store.DeliveryCounts{Pending: 3, Delivered: 6}, withoutTimes(b.counts(t)))

	require.Equal(t, activities.DeliverResult{Delivered: 3}, b.deliver(t), "the next attempt delivers the rest")
	require.Equal(t, "g@x", b.fake.pushes[4][0].Email)
}

func TestDeliverLeavesMoreWhenTheBudgetIsSpent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Each push takes a second of a fake clock, the budget: one batch per
	// run, mid-page.
	var clock atomic.Int64
	b.acts.SetBudgetClock(func() time.Time { return time.Unix(clock.Load(), 0) })
	b.fake.beforePush = func(int) { clock.Add(1) }
	b.acts.SetPaging(4, time.Second)
	b.addLeads(t, "a@x", "b@x", "c@x", "d@x", "e@x")

	require.Equal(t, activities.DeliverResult{Delivered: 2, More: true}, b.deliver(t))
	require.Equal(t, activities.DeliverResult{Delivered: 2, More: true}, b.deliver(t))
	require.Equal(t, activities.DeliverResult{Delivered: 1}, b.deliver(t), "a short page: nothing more")
	require.Equal(t, store.DeliveryCounts{Delivered: 5}, withoutTimes(b.counts(t)))
}

func TestDeliverFailsWhenOutcomesCannotBeRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.SetPaging(10, time.Hour) // pages of five batches
	emails := make([]string, 200)
	for i := range emails {
		emails[i] = fmt.Sprintf("lead%d@x", i)
	}
	b.addLeads(t, emails...)
	// Reads work, recording an outcome does not.
	db := testenv.OpenSQL(t, b.dbURL)
	_, err := db.Exec(`CREATE TRIGGER no_outcomes BEFORE UPDATE OF status ON lead_deliveries
BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END`)
	require.NoError(t, err)
	// Every push after the first is held until the recorder has failed to
	// write the first batch's outcomes, so whether the pusher stops does
	// not depend on who runs first. The pusher may have decided on the
	// second push before it saw the failure (or may see it first and not
	// push again); a third is pushed only by a pusher that ignores it.
	recorderFailed := make(chan struct{})
	b.acts.OnRecorderFailure(func() { close(recorderFailed) })
	b.fake.beforePush = func(call int) {
		if call == 0 {
			return
		}
		select {
		case <-recorderFailed:
		case <-time.After(time.Minute):
			t.Fatal("the recorder never failed to write the first batch's outcomes")
		}
	}

	_, err = b.acts.Deliver(b.ctx, activities.DeliverInput{IntegrationID: b.crmID, Provider: "fake"})
	require.ErrorContains(t, err, "record outcomes")
	require.NotEmpty(t, b.fake.pushes)
	require.LessOrEqual(t, len(b.fake.pushes), 2, "pushing stops once recording failed: at most the push under way, of the 100 batches of the backlog")
	require.Equal(t, store.DeliveryCounts{Pending: 200}, withoutTimes(b.counts(t)))

	// Once the database works again the retry delivers every lead; the
	// CRM sees the first ones again under the same keys.
	_, err = db.Exec(`DROP TRIGGER no_outcomes`)
	require.NoError(t, err)
	b.acts.OnRecorderFailure(nil)
	b.fake.beforePush = nil
	failed := len(b.fake.pushes)
	require.Equal(t, activities.DeliverResult{Delivered: 200}, b.deliver(t))
	require.Equal(t, b.fake.pushes[0][0].Key, b.fake.pushes[failed][0].Key)
}

// TestDeliverMapsEveryLeadField: the CRM gets the lead's name, its parts
// and the company as intake stored them, with the other contact fields,
// keyed by the lead's ID.
func TestDeliverMapsEveryLeadField(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lead := store.Lead{
		IntegrationID: b.lead, ExternalID: "x-fields", Source: "s",
		Name: "Ludwig van Beethoven", FirstName: "Ludwig", LastName: "van Beethoven", Company: "Symphonies GmbH",
		Email: "ludwig@example.org", Phone: "+43 1 234", Message: "Da-da-da-dum",
		Attributes: map[string]any{"opus": 67.0}, ReceivedAt: time.Now().UTC(),
	}
	res, err := b.store.AddLead(b.ctx, lead)
	require.NoError(t, err)
	require.Equal(t, activities.DeliverResult{Delivered: 1}, b.deliver(t))
	require.Equal(t, [][]crm.Record{{{
		Key: fmt.Sprint(res.LeadID), Source: "s",
		Name: lead.Name, FirstName: lead.FirstName, LastName: lead.LastName, Company: lead.Company,
		Email: lead.Email, Phone: lead.Phone, Message: lead.Message, Attributes: lead.Attributes,
	}}}, b.fake.pushes)
}
