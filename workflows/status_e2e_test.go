package workflows_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm/sandbox/sandboxfake"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/store"
)

// These tests follow a failing CRM integration out of every path that used
// to leave a status that was not true (issue 10), end to end: dev server,
// worker, sandbox CRM, both databases.

// failingWithAttention makes crmID's sandbox fail every call and sends a
// lead, then waits until the integration needs attention (syncConfig: 3
// failures over 1s).
func (b *flowBundle) failingWithAttention(t *testing.T, crmID, key string) integration.State {
	t.Helper()
	_, err := b.stack.Sandbox.SetFaults(b.ctx, key, sandboxfake.Faults{FailNext: 100000, FailStatus: 503})
	require.NoError(t, err)
	b.sendLeads(t, 1, "Z")
	var st integration.State
	require.Eventually(t, func() bool { st = b.state(t, crmID); return st.NeedsAttention }, 30*time.Second, 50*time.Millisecond,
		"%s needs attention", crmID)
	require.Equal(t, integration.StatusFailedSync, st.Status)
	requireNotices(t, b, crmID, "needs_attention", store.NotificationOpen, 1)
	return st
}

func TestResumedWhileFailingShowsFailedSyncUntilASyncSucceeds(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupFlow(t, db)
		crmID, key := b.crm(t)
		b.activeLead(t)
		failing := b.failingWithAttention(t, crmID, key)

		paused, err := b.stack.Starter.Command(b.ctx, crmID, integration.EventPause, "ops", "maintenance")
		require.NoError(t, err)
		require.Equal(t, integration.StatusPaused, paused.Status)
		require.Equal(t, integration.ReasonManual, paused.Reason)

		// Resume while the CRM still fails: the status must say so.
		resumed, err := b.stack.Starter.Command(b.ctx, crmID, integration.EventResume, "ops", "")
		require.NoError(t, err)
		require.Equal(t, integration.StatusFailedSync, resumed.Status, "not a healthy active: the last sync failed")
		require.Equal(t, integration.ReasonSyncError, resumed.Reason)
		require.GreaterOrEqual(t, resumed.ConsecutiveFailures, failing.ConsecutiveFailures)
		require.True(t, resumed.NeedsAttention)
		require.NotEmpty(t, resumed.LastSyncError)
		require.NotNil(t, resumed.NextAttemptAt)

		// The CRM recovers: the next sync makes it active, clears the
		// counters and resolves the support alert.
		require.NoError(t, b.stack.Sandbox.ClearFaults(b.ctx, key))
		b.waitDelivered(t, crmID, 1)
		b.waitStatus(t, crmID, integration.StatusActive)
		st := b.state(t, crmID)
		require.Zero(t, st.ConsecutiveFailures)
		require.False(t, st.NeedsAttention)
		require.Empty(t, st.LastSyncError)
		requireNotices(t, b, crmID, "needs_attention", store.NotificationResolved, 1)
	})
}

func TestDeleteResolvesEveryNotificationAndAlert(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupFlow(t, db)
		crmID, key := b.crm(t)
		b.activeLead(t)
		b.failingWithAttention(t, crmID, key)
		// Then the key is revoked: validation pauses it and notifies the
		// org, with the support alert still open.
		_, err := b.stack.Sandbox.Revoke(b.ctx, key)
		require.NoError(t, err)
		b.waitStatus(t, crmID, integration.StatusPaused)
		requireNotices(t, b, crmID, "paused", store.NotificationOpen, 2)

		// A lead integration with an open request to the partner.
		leadID := testenv.ID("lead")
		_, _, err = b.stack.Starter.CreateLead(b.ctx, integration.Spec{ID: leadID, OrgID: b.org, Provider: "zillow", ExpectedSource: "Z"}, "test")
		require.NoError(t, err)
		b.lead = leadID
		b.sendLeads(t, 1, "not Z")
		requireNotices(t, b, leadID, "source_revision", store.NotificationOpen, 1)

		for _, id := range []string{crmID, leadID} {
			_, err := b.stack.Starter.Command(b.ctx, id, integration.EventDelete, "ops", "")
			require.NoError(t, err)
			notes, err := b.stack.Store.Notifications(b.ctx, id)
			require.NoError(t, err)
			require.NotEmpty(t, notes)
			for _, n := range notes {
				require.Equal(t, store.NotificationResolved, n.Status, "%s: %s/%s stays open after delete", id, n.Kind, n.Channel)
				require.NotNil(t, n.ResolvedAt)
			}
		}
	})
}
