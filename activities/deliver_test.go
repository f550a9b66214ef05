package activities_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	// fail, when set, answers a call it returns an error for with that
	// error (after script): the CRM's view of what it is sent.
	fail      func(records []crm.Record) error
	refreshTo []byte
	// refreshErr, when set, is what Refresh fails with.
	refreshErr error
	// onRefresh runs while a refresh is under way.
	onRefresh func()
	// checks and validateErr are what Validate answers; validated the
	// credentials it was given.
	checks      []integration.Check
	validateErr error
	validated   [][]byte
	// checksFor, when set, answers Validate by the credentials given.
	checksFor func(raw []byte) []integration.Check
	// limit is the batch limit; 0 means 2.
	limit int
	// upserts counts the deliveries of each key the CRM took.
	upserts map[string]int
}

func (f *fakeCRM) Provider() string              { return "fake" }
func (f *fakeCRM) DisplayName() string           { return "Fake CRM" }
func (f *fakeCRM) ParseCredentials([]byte) error { return nil }
func (f *fakeCRM) BatchLimit() int               { return cmp.Or(f.limit, 2) }

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
	if f.fail != nil {
		if err := f.fail(records); err != nil {
			return nil, err
		}
	}
	out := make([]crm.RecordResult, len(records))
	for i, r := range records {
		out[i] = crm.RecordResult{Key: r.Key, Status: crm.RecordDelivered, CRMID: "rec-" + r.Key}
		switch {
		case r.Email == "bad":
			out[i] = crm.RecordResult{Key: r.Key, Status: crm.RecordRejected, Reason: "invalid email"}
		case strings.HasPrefix(r.Email, "quoted"):
			// A CRM that quotes what it refuses, as real ones do.
			out[i] = crm.RecordResult{Key: r.Key, Status: crm.RecordRejected, Reason: fmt.Sprintf("email %s (from %s) is blocked, see https://crm.example/help", strings.ToUpper(r.Email), r.Name)}
		default:
			if f.upserts == nil {
				f.upserts = map[string]int{}
			}
			f.upserts[r.Key]++
		}
	}
	return out, nil
}

func (f *fakeCRM) Refresh(_ context.Context, raw []byte) ([]byte, error) {
	if f.onRefresh != nil {
		f.onRefresh()
	}
	if f.refreshErr != nil {
		return nil, f.refreshErr
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

	// A token endpoint that is down says nothing about the grant: a
	// transient failure, retried, never an auth failure that pauses.
	b.fake.script = append(b.fake.script, &crm.Error{Class: crm.ClassAuth, StatusCode: 401, Err: errors.New("HTTP 401")})
	b.fake.refreshErr = &crm.Error{Class: crm.ClassTransient, StatusCode: 503, Err: errors.New("token endpoint answered 503")}
	res = b.deliver(t)
	require.NotNil(t, res.Failure)
	require.Equal(t, activities.FailureTransient, res.Failure.Class, "%+v", res.Failure)
	cred, err = b.store.CurrentCredential(b.ctx, b.crmID)
	require.NoError(t, err)
	require.Equal(t, 2, cred.Version, "nothing stored")
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
	require.NotContains(t, err.Error(), "disk I/O error", "customers see what failed, not the database's words")
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

// addLead adds one lead with the given email and name and returns its ID.
func (b *testBundle) addLead(t *testing.T, email, name string) int64 {
	t.Helper()
	res, err := b.store.AddLead(b.ctx, store.Lead{IntegrationID: b.lead, ExternalID: "ext-" + email, Source: "s", Email: email, Name: name, ReceivedAt: time.Now().UTC()})
	require.NoError(t, err)
	require.Equal(t, []string{b.crmID}, res.Routed)
	return res.LeadID
}

// row reads a delivery of the bundle's CRM integration as it is stored.
func (b *testBundle) row(t *testing.T, leadID int64) (status, reason string, attempts, solo int) {
	t.Helper()
	db := testenv.OpenSQL(t, b.dbURL)
	defer db.Close()
	q := db.Rebind(`SELECT status, reason, attempts, solo_failures FROM lead_deliveries WHERE crm_integration_id = ? AND lead_id = ?`)
	require.NoError(t, db.QueryRowContext(b.ctx, q, b.crmID, leadID).Scan(&status, &reason, &attempts, &solo))
	return status, reason, attempts, solo
}

// requireOncePerKey fails unless the fake CRM took every one of leadIDs
// exactly once, and nothing else.
func (b *testBundle) requireOncePerKey(t *testing.T, leadIDs []int64) {
	t.Helper()
	want := map[string]int{}
	for _, id := range leadIDs {
		want[strconv.FormatInt(id, 10)] = 1
	}
	require.Equal(t, want, b.fake.upserts, "every lead delivered exactly once")
}

// pushedKey reports whether any call from call index from on carried key.
func (b *testBundle) pushedKey(from int, key int64) bool {
	for _, batch := range b.fake.pushes[from:] {
		for _, r := range batch {
			if r.Key == strconv.FormatInt(key, 10) {
				return true
			}
		}
	}
	return false
}

func TestDeliverSplitsARefusedBatchUntilTheLeadsAtFault(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.limit = 8
	refusal := &crm.Error{Class: crm.ClassBatchRejected, StatusCode: 400, Code: "batch_refused", Err: errors.New("the CRM answered 400 Bad Request")}
	b.fake.fail = func(records []crm.Record) error {
		for _, r := range records {
			if strings.HasPrefix(r.Email, "refused") {
				return refusal
			}
		}
		return nil
	}
	var good, refused []int64
	for i := range 10 {
		if i == 2 || i == 6 {
			refused = append(refused, b.addLead(t, fmt.Sprintf("refused-%d@x", i), "Ada Secret"))
			continue
		}
		good = append(good, b.addLead(t, fmt.Sprintf("lead%d@x", i), "Grace"))
	}

	res := b.deliver(t)
	require.Equal(t, activities.DeliverResult{Delivered: 8, Rejected: 2}, res, "the run ends well: nothing waits")
	require.Equal(t, store.DeliveryCounts{Delivered: 8, Rejected: 2}, withoutTimes(b.counts(t)))
	b.requireOncePerKey(t, good)
	for _, id := range refused {
		status, reason, _, solo := b.row(t, id)
		require.Equal(t, store.DeliveryRejected, status)
		require.Equal(t, "refused by the CRM when sent on its own: batch_rejected (HTTP 400, batch_refused)", reason,
			"the CRM's class, status and code, never the value")
		require.Zero(t, solo, "a refusal is an answer, not a failure")
	}
	// 8 and 2; the 8 split until each refused lead stands alone.
	require.LessOrEqual(t, len(b.fake.pushes), 12)
	require.Equal(t, activities.DeliverResult{}, b.deliver(t))
}

func TestDeliverSplitsABatchTooLargeForTheCRM(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.limit = 8
	// A CRM whose size limit a batch of more than three big leads passes
	// (the sandbox's 413): no lead is at fault on its own.
	b.fake.fail = func(records []crm.Record) error {
		big := 0
		for _, r := range records {
			if strings.HasPrefix(r.Email, "big") {
				big++
			}
		}
		if big > 3 {
			return &crm.Error{Class: crm.ClassBatchRejected, StatusCode: 413, Code: "body_too_large", Err: errors.New("the CRM answered 413")}
		}
		return nil
	}
	var ids []int64
	for i := range 16 {
		ids = append(ids, b.addLead(t, fmt.Sprintf("big%d@x", i), ""))
	}
	require.Equal(t, activities.DeliverResult{Delivered: 16}, b.deliver(t))
	b.requireOncePerKey(t, ids)
}

func TestDeliverSetsAsideALeadThatFailsOnItsOwn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.MaxDeliveryAttempts = 3
	// The CRM fails every call that carries this one lead, as if it choked
	// on it, and takes every other call.
	b.fake.fail = func(records []crm.Record) error {
		for _, r := range records {
			if r.Email == "poison@x" {
				return &crm.Error{Class: crm.ClassTransient, StatusCode: 503, Code: "simulated_failure", Err: errors.New("the CRM answered 503")}
			}
		}
		return nil
	}
	others := []int64{b.addLead(t, "a0@x", "")}
	poison := b.addLead(t, "poison@x", "Zelda Secret")
	others = append(others, b.addLead(t, "a1@x", ""))

	// The batch with it fails as a whole: that could be an outage.
	res := b.deliver(t)
	require.NotNil(t, res.Failure)
	require.Equal(t, activities.FailureTransient, res.Failure.Class)
	require.Equal(t, "crm transient (HTTP 503, simulated_failure): the CRM answered 503", res.Failure.Message)
	_, _, attempts, solo := b.row(t, poison)
	require.Equal(t, [2]int{1, 0}, [2]int{attempts, solo}, "an attempt, not a failure of its own")

	// Then it goes alone, the others flow around it, and each failure
	// followed by a delivery of others counts; the third sets it aside.
	for round := 1; round <= 3; round++ {
		others = append(others, b.addLead(t, fmt.Sprintf("r%d-1@x", round), ""), b.addLead(t, fmt.Sprintf("r%d-2@x", round), ""))
		res := b.deliver(t)
		require.Nil(t, res.Failure, "round %d: the CRM works; one lead does not", round)
		status, reason, _, solo := b.row(t, poison)
		require.Equal(t, round, solo, "round %d", round)
		if round < 3 {
			require.Zero(t, res.GaveUp)
			require.Equal(t, store.DeliveryPending, status, "round %d", round)
			continue
		}
		require.Equal(t, 1, res.GaveUp)
		require.Equal(t, store.DeliveryGaveUp, status)
		require.Equal(t, "gave up after 3 failures of its own (each time the CRM took other leads right after it); last error: crm transient (HTTP 503, simulated_failure): the CRM answered 503", reason)
	}
	c := b.counts(t)
	require.Equal(t, [3]int64{0, int64(len(others)), 1}, [3]int64{c.Pending, c.Delivered, c.GaveUp})
	b.requireOncePerKey(t, others)

	// Set aside, it is never pushed again, and blocks nothing.
	calls := len(b.fake.pushes)
	others = append(others, b.addLead(t, "later@x", ""))
	require.Equal(t, activities.DeliverResult{Delivered: 1}, b.deliver(t))
	require.False(t, b.pushedKey(calls, poison))
	b.requireOncePerKey(t, others)
}

func TestDeliverOutageSetsNothingAside(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.MaxDeliveryAttempts = 2
	down := true
	b.fake.fail = func([]crm.Record) error {
		if down {
			return &crm.Error{Class: crm.ClassTransient, StatusCode: 503, Err: errors.New("the CRM answered 503")}
		}
		return nil
	}
	var ids []int64
	for i := range 5 {
		ids = append(ids, b.addLead(t, fmt.Sprintf("lead%d@x", i), ""))
	}

	// Many more attempts than the limit: every call fails, so no failure
	// is any lead's own, and each attempt costs a call or two.
	for attempt := range 12 {
		calls := len(b.fake.pushes)
		res := b.deliver(t)
		require.NotNil(t, res.Failure, "attempt %d", attempt)
		require.Equal(t, activities.FailureTransient, res.Failure.Class)
		require.LessOrEqual(t, len(b.fake.pushes)-calls, 2, "attempt %d: a lead and its probe at most", attempt)
	}
	c := b.counts(t)
	require.Equal(t, [2]int64{5, 0}, [2]int64{c.Pending, c.GaveUp}, "an outage gives up nothing")
	for _, id := range ids {
		_, _, _, solo := b.row(t, id)
		require.Zero(t, solo)
	}

	down = false
	require.Equal(t, activities.DeliverResult{Delivered: 5}, b.deliver(t), "after the outage, everything flows")
	b.requireOncePerKey(t, ids)
}

func TestDeliverAloneWithNobodyToProbeIsNoVerdict(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.acts.MaxDeliveryAttempts = 1
	b.fake.fail = func(records []crm.Record) error {
		return &crm.Error{Class: crm.ClassTransient, StatusCode: 502, Err: errors.New("the CRM answered 502")}
	}
	lead := b.addLead(t, "only@x", "")
	for range 3 {
		res := b.deliver(t)
		require.NotNil(t, res.Failure, "the failure stands: a failed sync, retried")
		require.Zero(t, res.GaveUp)
	}
	status, _, attempts, solo := b.row(t, lead)
	require.Equal(t, store.DeliveryPending, status, "a lead alone cannot tell its failure from the CRM's")
	require.Equal(t, [2]int{3, 0}, [2]int{attempts, solo})
}

func TestDeliverMessagesAreClean(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// A connector error wrapping our endpoint, with one the CRM's error
	// leaked into.
	b.fake.script = []error{fmt.Errorf("push to http://10.1.2.3:8090/api/v1/contacts/batch: %w", &crm.Error{
		Class: crm.ClassTransient, StatusCode: 500, Code: "internal", Err: errors.New("POST https://crm.internal:8443/batch answered 500")})}
	b.addLead(t, "a@x", "")
	res := b.deliver(t)
	require.NotNil(t, res.Failure)
	require.Equal(t, "crm transient (HTTP 500, internal): POST [url] answered 500", res.Failure.Message)

	// A CRM that quotes what it rejects: the stored reason does not.
	quoted := b.addLead(t, "quoted.zelda@example.org", "Zelda Quillfeather")
	require.Equal(t, activities.DeliverResult{Delivered: 1, Rejected: 1}, b.deliver(t))
	status, reason, _, _ := b.row(t, quoted)
	require.Equal(t, store.DeliveryRejected, status)
	require.Equal(t, "email [redacted] (from [redacted]) is blocked, see [url]", reason)
}

func TestCleanReasonRedactsEveryLeadValue(t *testing.T) {
	t.Parallel()
	lead := store.Lead{
		ExternalID: "z-991", Name: "Wei Li", FirstName: "Wei", LastName: "Li", Company: "Quillfeather Analytics",
		Email: "wei.li@example.org", Phone: "+1 555 0199", Message: "call after five",
		Attributes: map[string]any{"budget": "seven-fifty-k", "rooms": 3.0},
	}
	for _, tc := range []struct{ reason, want string }{
		{"Li is not a valid last name", "[redacted] is not a valid last name"},
		{"first name Wei rejected; Listing closed", "first name [redacted] rejected; Listing closed"},
		{"company Quillfeather Analytics is blocked", "company [redacted] is blocked"},
		{"duplicate of Wei Li (wei.li@example.org)", "duplicate of [redacted] ([redacted])"},
		{"phone +1 555 0199 invalid, message call after five too short", "phone [redacted] invalid, message [redacted] too short"},
		{"budget seven-fifty-k out of range for z-991", "budget [redacted] out of range for [redacted]"},
		{"INVALID_EMAIL_ADDRESS", "INVALID_EMAIL_ADDRESS"},
	} {
		require.Equal(t, tc.want, activities.CleanReason(tc.reason, lead), tc.reason)
	}
}
