package workflows_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm/sandbox/sandboxfake"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
	"github.com/acme/integrations/workflows"
)

// syncConfig makes failures, backoff and validation fast enough to watch.
var syncConfig = workflows.Config{
	ValidationInterval: time.Second,
	SyncInterval:       3 * time.Second,
	SyncBackoffInitial: 200 * time.Millisecond,
	SyncBackoffMax:     time.Second,
	Attention:          integration.AttentionThreshold{Failures: 3, After: time.Second},
}

type flowBundle struct {
	*e2eBundle
	org  string
	lead string
	sent int
}

func setupFlow(t *testing.T, db testenv.Database) *flowBundle {
	t.Helper()
	return &flowBundle{e2eBundle: setupE2E(t, db, syncConfig), org: testenv.ID("org")}
}

// activeLead creates the org's lead integration and activates it.
func (b *flowBundle) activeLead(t *testing.T) {
	t.Helper()
	b.lead = testenv.ID("lead")
	_, token, err := b.stack.Starter.CreateLead(b.ctx, integration.Spec{ID: b.lead, OrgID: b.org, Provider: "zillow", ExpectedSource: "Z"}, "test")
	require.NoError(t, err)
	require.NotEmpty(t, token)
	b.sendLeads(t, 3, "Z") // test leads, before activation
	_, err = b.stack.Starter.Command(b.ctx, b.lead, integration.EventCompleteSetup, "test", "")
	require.NoError(t, err)
}

// sendLeads sends n new leads through intake and returns how many were
// routed to CRMs in total.
// leadPII is the lead data sendLeads sends, as stored and as connectors
// send it (the name in parts): what no history, log or customer-visible
// error may contain.
var leadPII = []string{"Ada Lovelace", "Lovelace", "example.com", "+1 555 0100", "Analytical Engines", "call me after five", "seven-fifty-k"}

func (b *flowBundle) sendLeads(t *testing.T, n int, source string) int {
	t.Helper()
	routed := 0
	for range n {
		b.sent++
		out, err := b.stack.Starter.Intake(b.ctx, b.lead, starter.Lead{
			ExternalID: fmt.Sprintf("ext-%d", b.sent), Source: source,
			Name: "Ada Lovelace", Email: fmt.Sprintf("ada%d@example.com", b.sent), Phone: "+1 555 0100",
			Company: "Analytical Engines Ltd", Message: "call me after five about the engine",
			Attributes: map[string]any{"budget": "seven-fifty-k"},
		})
		require.NoError(t, err)
		require.False(t, out.Duplicate)
		routed += out.Routed
	}
	return routed
}

// crm creates an active CRM integration in the org with its own sandbox
// account, and returns the account's key.
func (b *flowBundle) crm(t *testing.T) (string, string) {
	t.Helper()
	id := testenv.ID("crm")
	return id, b.activeCRM(t, b.org, id)
}

func (b *flowBundle) counts(t *testing.T, crmID string) store.DeliveryCounts {
	t.Helper()
	c, err := b.stack.Store.DeliveryCounts(b.ctx, crmID)
	require.NoError(t, err)
	return c
}

func (b *flowBundle) waitDelivered(t *testing.T, crmID string, n int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		c := b.counts(t, crmID)
		return c.Delivered+c.Rejected == n && c.Pending == 0
	}, 60*time.Second, 100*time.Millisecond, "%s delivers %d leads (now %+v)", crmID, n, b.counts(t, crmID))
}

// waitStatus waits for the projection: deliveries are recorded before the
// workflow projects the status they lead to.
func (b *flowBundle) waitStatus(t *testing.T, id string, status integration.Status) {
	t.Helper()
	require.Eventually(t, func() bool { return b.state(t, id).Status == status }, 30*time.Second, 50*time.Millisecond,
		"%s reaches %s", id, status)
}

func (b *flowBundle) state(t *testing.T, id string) integration.State {
	t.Helper()
	st, err := b.stack.Store.Get(b.ctx, id)
	require.NoError(t, err)
	return st
}

// requireExactlyOnce checks the sandbox holds exactly the given number of
// records, each lead once.
func (b *flowBundle) requireExactlyOnce(t *testing.T, key string, n int) sandboxfake.RecordStats {
	t.Helper()
	stats, err := b.stack.Sandbox.Records(b.ctx, key)
	require.NoError(t, err)
	require.Equal(t, n, stats.Records, "records in the CRM")
	require.Len(t, stats.ByKey, n)
	for k := range stats.ByKey {
		_, err := strconv.ParseInt(k, 10, 64)
		require.NoError(t, err, "records are keyed by lead ID")
	}
	return stats
}

// TestLeadsReachEveryCRMExactlyOnce: leads sent before activation reach no
// CRM; after it, every lead reaches every CRM of the org exactly once,
// including one that was paused, one that was failing and one being
// validated while the leads arrived, and one created later (later leads
// only).
func TestLeadsReachEveryCRMExactlyOnce(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupFlow(t, db)
		healthy, healthyKey := b.crm(t)
		paused, pausedKey := b.crm(t)
		failing, failingKey := b.crm(t)
		revoked, revokedKey := b.crm(t)
		otherOrg := testenv.ID("crm")
		otherKey := b.activeCRM(t, testenv.ID("other-org"), otherOrg)

		b.activeLead(t) // 3 test leads before activation: routed nowhere
		_, err := b.stack.Starter.Command(b.ctx, paused, integration.EventPause, "ops", "")
		require.NoError(t, err)
		_, err = b.stack.Sandbox.SetFaults(b.ctx, failingKey, sandboxfake.Faults{FailNext: 4, FailStatus: 503})
		require.NoError(t, err)
		_, err = b.stack.Sandbox.Revoke(b.ctx, revokedKey)
		require.NoError(t, err)

		require.Equal(t, 4*20, b.sendLeads(t, 20, "Z"), "each lead queued for the org's 4 CRMs")
		b.waitDelivered(t, healthy, 20)
		require.Eventually(t, func() bool { return b.state(t, revoked).Status == integration.StatusPaused }, 30*time.Second, 100*time.Millisecond)
		require.Equal(t, int64(20), b.counts(t, paused).Pending, "a paused CRM keeps its leads waiting")

		// A CRM created now gets only the leads that arrive from now on.
		later, laterKey := b.crm(t)
		require.Equal(t, 5*10, b.sendLeads(t, 10, "Z"))

		_, err = b.stack.Starter.Command(b.ctx, paused, integration.EventResume, "ops", "")
		require.NoError(t, err)
		_, err = b.stack.Sandbox.Restore(b.ctx, revokedKey)
		require.NoError(t, err)
		for _, id := range []string{healthy, paused, failing, revoked} {
			b.waitDelivered(t, id, 30)
			b.waitStatus(t, id, integration.StatusActive)
		}
		b.waitDelivered(t, later, 10)
		for _, key := range []string{healthyKey, pausedKey, failingKey, revokedKey} {
			b.requireExactlyOnce(t, key, 30)
		}
		b.requireExactlyOnce(t, laterKey, 10)
		b.requireExactlyOnce(t, otherKey, 0)
		n, err := b.stack.Store.CountLeads(b.ctx, b.lead)
		require.NoError(t, err)
		require.Equal(t, int64(33), n, "test leads are stored too")

		// A repeated external ID is stored once and answered as a duplicate.
		out, err := b.stack.Starter.Intake(b.ctx, b.lead, starter.Lead{ExternalID: "ext-5", Source: "Z"})
		require.NoError(t, err)
		require.True(t, out.Duplicate)
		require.Zero(t, out.Routed)
	})
}

// TestSyncFaults drives one CRM integration through 5xx, 429 and a revoked
// key mid-sync.
func TestSyncFaults(t *testing.T) {
	t.Parallel()
	b := setupFlow(t, testenv.Database{Name: "postgres", URL: testenv.PostgresURL(t)})
	crmID, key := b.crm(t)
	b.activeLead(t)
	ctx := context.Background()

	// 5xx for a while: failed_sync with the error and a next attempt...
	_, err := b.stack.Sandbox.SetFaults(ctx, key, sandboxfake.Faults{FailNext: 1000, FailStatus: 503})
	require.NoError(t, err)
	b.sendLeads(t, 5, "Z")
	require.Eventually(t, func() bool {
		st := b.state(t, crmID)
		return st.Status == integration.StatusFailedSync && st.NeedsAttention
	}, 30*time.Second, 50*time.Millisecond, "failing sync needs attention")
	st := b.state(t, crmID)
	require.Equal(t, integration.ReasonSyncError, st.Reason)
	require.Contains(t, st.LastSyncError, "503")
	require.NotNil(t, st.NextAttemptAt)
	require.GreaterOrEqual(t, st.ConsecutiveFailures, 3)
	requireNotices(t, b, crmID, "needs_attention", "open", 1)
	// ...then it recovers by itself, nothing lost, the alert resolved.
	require.NoError(t, b.stack.Sandbox.ClearFaults(ctx, key))
	b.waitDelivered(t, crmID, 5)
	require.Eventually(t, func() bool { return b.state(t, crmID).Status == integration.StatusActive }, 10*time.Second, 50*time.Millisecond)
	st = b.state(t, crmID)
	require.False(t, st.NeedsAttention)
	require.Zero(t, st.ConsecutiveFailures)
	requireNotices(t, b, crmID, "needs_attention", "open", 0)

	// 429 with Retry-After: no call before the delay, never failed_sync.
	_, err = b.stack.Sandbox.SetFaults(ctx, key, sandboxfake.Faults{RateLimitNext: 1, RetryAfterSeconds: 2})
	require.NoError(t, err)
	versionBefore := b.state(t, crmID).Version
	b.sendLeads(t, 3, "Z")
	// Watched until delivered: the status never leaves active meanwhile.
	for deadline := time.Now().Add(30 * time.Second); b.counts(t, crmID).Pending > 0; time.Sleep(50 * time.Millisecond) {
		require.Equal(t, integration.StatusActive, b.state(t, crmID).Status, "a rate limit is not a failure")
		if time.Now().After(deadline) {
			t.Fatalf("the rate-limited leads are still pending after 30 s: %+v", b.counts(t, crmID))
		}
	}
	b.waitDelivered(t, crmID, 8)
	require.Equal(t, versionBefore, b.state(t, crmID).Version, "the rate limit changed nothing visible")
	// The gap is measured on the sandbox's own record of the calls (the
	// only 429 of this test, then every call after it), not on our clock.
	calls, err := b.stack.Sandbox.Calls(ctx, key)
	require.NoError(t, err)
	var limitedAt time.Time
	limited := 0
	for _, c := range calls {
		if c.Status == 429 {
			limitedAt = c.At
			limited++
			continue
		}
		if !limitedAt.IsZero() {
			require.GreaterOrEqual(t, c.At.Sub(limitedAt), 2*time.Second, "no call before Retry-After")
		}
	}
	require.Equal(t, 1, limited, "the sandbox answered 429 once")

	// A revoked key mid-sync: paused with expired_credentials; after the
	// restore every pending lead is delivered.
	_, err = b.stack.Sandbox.Revoke(ctx, key)
	require.NoError(t, err)
	b.sendLeads(t, 4, "Z")
	require.Eventually(t, func() bool {
		st := b.state(t, crmID)
		return st.Status == integration.StatusPaused && st.Reason == integration.ReasonExpiredCredentials
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, int64(4), b.counts(t, crmID).Pending)
	_, err = b.stack.Sandbox.Restore(ctx, key)
	require.NoError(t, err)
	b.waitDelivered(t, crmID, 12)
	b.waitStatus(t, crmID, integration.StatusActive)
	b.requireExactlyOnce(t, key, 12)

	// A lead the CRM refuses on its own merits is rejected; the integration
	// stays active.
	b.sent++
	_, err = b.stack.Starter.Intake(ctx, b.lead, starter.Lead{ExternalID: fmt.Sprintf("ext-%d", b.sent), Source: "Z", Email: "not-an-email"})
	require.NoError(t, err)
	b.waitDelivered(t, crmID, 13)
	c := b.counts(t, crmID)
	require.Equal(t, int64(1), c.Rejected)
	require.Equal(t, integration.StatusActive, b.state(t, crmID).Status)

	// No lead data in the history of the CRM workflow, nor of the lead
	// workflow (told the source of each test lead), every payload decoded.
	for _, wid := range []string{integration.WorkflowID(integration.KindCRM, crmID), integration.WorkflowID(integration.KindLead, b.lead)} {
		history := testenv.HistoryText(t, b.stack.Temporal, wid)
		testenv.RequirePresent(t, history, b.org, "the scan of "+wid+" reads payloads: the org is only in its input and search attributes")
		for _, pii := range []string{"Ada Lovelace", "example.com", "555 0100"} {
			testenv.RequireAbsent(t, history, pii, "lead data in the history of "+wid)
		}
	}
	require.NotContains(t, b.stack.Logs.String(), "example.com")
}

func requireNotices(t *testing.T, b *flowBundle, id, kind, status string, want int) {
	t.Helper()
	require.Eventually(t, func() bool {
		notes, err := b.stack.Store.Notifications(b.ctx, id)
		require.NoError(t, err)
		n := 0
		for _, note := range notes {
			if note.Kind == kind && note.Status == status {
				n++
			}
		}
		return n == want
	}, 20*time.Second, 100*time.Millisecond, "want %d %s %s notifications", want, status, kind)
}
