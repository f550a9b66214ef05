package workflows_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/acme/integrations/crm/sandbox/sandboxfake"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
)

// visible waits until the visibility query finds exactly the workflows
// want (IDs, in any order), and fails saying what it last found.
func (b *flowBundle) visible(t *testing.T, query string, want ...string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	var found []string
	require.Eventually(t, func() bool {
		resp, err := b.stack.Temporal.ListWorkflow(b.ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		require.NoError(t, err)
		found = found[:0]
		for _, e := range resp.Executions {
			found = append(found, e.Execution.WorkflowId)
		}
		slices.Sort(found)
		return slices.Equal(found, want)
	}, 30*time.Second, 200*time.Millisecond, "query %s finds %v (last found %v)", query, want, found)
}

// TestNeedsAttentionSearch: a CRM integration failing past the (shortened)
// attention threshold is found in the Temporal UI by
// IntegrationNeedsAttention = true, and no longer once it recovers.
func TestNeedsAttentionSearch(t *testing.T) {
	t.Parallel()
	b := setupFlow(t, testenv.Database{Name: "sqlite", URL: testenv.SQLiteURL(t)})
	failing, key := b.crm(t)
	healthy, _ := b.crm(t)
	b.activeLead(t)
	failingWID := integration.WorkflowID(integration.KindCRM, failing)
	attention := fmt.Sprintf(`IntegrationNeedsAttention = true AND IntegrationOrg = %q`, b.org)
	healthyQuery := fmt.Sprintf(`IntegrationNeedsAttention = false AND IntegrationStatus = "active" AND IntegrationKind = "crm" AND IntegrationOrg = %q`, b.org)
	b.visible(t, attention)

	_, err := b.stack.Sandbox.SetFaults(b.ctx, key, sandboxfake.Faults{FailNext: 1000, FailStatus: 503})
	require.NoError(t, err)
	b.sendLeads(t, 2, "Z")
	require.Eventually(t, func() bool { return b.state(t, failing).NeedsAttention }, 30*time.Second, 50*time.Millisecond,
		"%s fails past %d failures and %s", failing, syncConfig.Attention.Failures, syncConfig.Attention.After)
	require.GreaterOrEqual(t, b.state(t, failing).ConsecutiveFailures, syncConfig.Attention.Failures)
	b.visible(t, attention+` AND IntegrationStatus = "failed_sync" AND IntegrationReason = "sync_error"`, failingWID)
	b.visible(t, healthyQuery, integration.WorkflowID(integration.KindCRM, healthy))

	require.NoError(t, b.stack.Sandbox.ClearFaults(b.ctx, key))
	b.waitDelivered(t, failing, 2)
	b.waitStatus(t, failing, integration.StatusActive)
	b.visible(t, attention)
	b.visible(t, healthyQuery, failingWID, integration.WorkflowID(integration.KindCRM, healthy))
}
