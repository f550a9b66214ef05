package workflows_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/workflows"
)

// TestUnitReauthorizationValidatesTheCandidate: an authorize names the
// stored candidate version; the workflow validates that version (the
// activity promotes it only if it passes). New credentials that fail on an
// active integration are refused with the failed checks, and nothing
// changes; ones that pass are applied.
func TestUnitReauthorizationValidatesTheCandidate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.validateScript = []validateResult{{checks: expiredChecks()}, {checks: passingChecks()}}
	bad := b.updateAt(t, time.Minute, workflows.Authorize, workflows.Command{By: "alice", CredentialVersion: 2})
	var between workflows.Snapshot
	b.queryAt(t, 2*time.Minute, &between)
	good := b.updateAt(t, 3*time.Minute, workflows.Authorize, workflows.Command{By: "alice", CredentialVersion: 3})
	b.cancelAt(time.Hour)

	in := activeCRMInput(t, workflows.Config{})
	b.env.ExecuteWorkflow(workflows.CRMIntegration, in)
	b.requireCanceled(t)

	requireRejection(t, bad.err, "failed validation")
	requireRejection(t, bad.err, "the refresh token was revoked")
	require.Equal(t, integration.StatusActive, between.State.Status, "a bad key leaves it active")
	require.Equal(t, in.State.Version, between.State.Version, "and changes nothing")
	require.NoError(t, good.err)
	require.Equal(t, integration.StatusActive, good.snapshot.State.Status)
	require.Equal(t, []activities.ValidateInput{
		{IntegrationID: "int-1", Provider: "sandbox", CredentialVersion: 2},
		{IntegrationID: "int-1", Provider: "sandbox", CredentialVersion: 3},
	}, b.validations())
	require.Empty(t, b.effects(), "no pause, no notification")
}
