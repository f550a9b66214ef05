package activities_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
)

// TestNotifyPausedNamesTheCRM: the email and in-app notice of a pause call
// the CRM by the name the customer knows it by, and carry each failed
// check's fix.
func TestNotifyPausedNamesTheCRM(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s, err := b.store.Get(b.ctx, b.crmID)
	require.NoError(t, err)
	s.Status, s.Reason, s.Version, s.UpdatedAt = integration.StatusPaused, integration.ReasonExpiredCredentials, 3, time.Now().UTC()
	checks := []integration.Check{{Name: crm.CheckCredentials, Code: integration.ReasonExpiredCredentials, Message: "the key was rejected", Remediation: "authorize again"}}

	require.NoError(t, b.acts.Notify(b.ctx, activities.NotifyInput{State: s,
		Effect: integration.Effect{Type: integration.EffectNotifyPaused, Reason: integration.ReasonExpiredCredentials, Checks: checks}}))

	notes, err := b.store.Notifications(b.ctx, b.crmID)
	require.NoError(t, err)
	require.Len(t, notes, 2, "one email, one in-app")
	for _, n := range notes {
		require.Equal(t, "Your Fake CRM integration "+b.crmID+" is paused: Expired Credentials", n.Subject)
		require.Contains(t, n.Body, "authorize again")
	}
}
