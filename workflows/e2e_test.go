package workflows_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/internal/teststack"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/workflows"
)

type e2eBundle struct {
	stack *teststack.Stack
	ctx   context.Context
}

func setupE2E(t *testing.T, db testenv.Database, cfg workflows.Config) *e2eBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return &e2eBundle{stack: teststack.New(t, db, teststack.Options{Config: cfg}), ctx: ctx}
}

// activeCRM creates a CRM integration and takes it to active with a fresh
// sandbox key, which it returns.
func (b *e2eBundle) activeCRM(t *testing.T, org, id string) string {
	t.Helper()
	acct, err := b.stack.Sandbox.CreateAccount(b.ctx, nil)
	require.NoError(t, err)
	_, err = b.stack.Starter.Create(b.ctx, integration.Spec{ID: id, OrgID: org, Kind: integration.KindCRM, Provider: "sandbox"}, "test")
	require.NoError(t, err)
	_, err = b.stack.Starter.Authorize(b.ctx, id, teststack.Credentials(acct.APIKey), "test")
	require.NoError(t, err)
	st, err := b.stack.Starter.Command(b.ctx, id, integration.EventCompleteSetup, "test", "")
	require.NoError(t, err)
	require.Equal(t, integration.StatusActive, st.Status)
	return acct.APIKey
}

// describe waits until the workflow has processed and projected everything
// it received, and returns its snapshot.
func (b *e2eBundle) describe(t *testing.T, kind integration.Kind, id string) workflows.Snapshot {
	t.Helper()
	h, err := b.stack.Temporal.UpdateWorkflow(b.ctx, client.UpdateWorkflowOptions{
		WorkflowID: integration.WorkflowID(kind, id), UpdateName: workflows.UpdateDescribe,
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	require.NoError(t, err)
	var snap workflows.Snapshot
	require.NoError(t, h.Get(b.ctx, &snap))
	return snap
}

func (b *e2eBundle) signal(t *testing.T, kind integration.Kind, id, name string, cmd workflows.Command) {
	t.Helper()
	require.NoError(t, b.stack.Temporal.SignalWorkflow(b.ctx, integration.WorkflowID(kind, id), "", name, cmd))
}

// transitions summarises the event history of an integration without
// times, for comparing two integrations.
func (b *e2eBundle) transitions(t *testing.T, id string) []string {
	t.Helper()
	changes, err := b.stack.Store.Events(b.ctx, id)
	require.NoError(t, err)
	var out []string
	for _, ch := range changes {
		out = append(out, fmt.Sprintf("v%d %s %s/%s->%s/%s", ch.Version, ch.Event, ch.FromStatus, ch.FromReason, ch.ToStatus, ch.ToReason))
	}
	return out
}

// TestSignalEqualsUpdate drives two integrations through the same commands,
// one with signals (as an operator would from the Temporal UI) and one with
// updates (as the CLI does), and requires the same outcome.
func TestSignalEqualsUpdate(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupE2E(t, db, workflows.Config{})
		org := testenv.ID("org")
		viaSignal, viaUpdate := testenv.ID("lead-sig"), testenv.ID("lead-upd")
		for _, id := range []string{viaSignal, viaUpdate} {
			_, err := b.stack.Starter.Create(b.ctx, integration.Spec{ID: id, OrgID: org, Kind: integration.KindLead, Provider: "zillow", ExpectedSource: "Z"}, "test")
			require.NoError(t, err)
		}
		// Lead commands.
		b.signal(t, integration.KindLead, viaSignal, workflows.LeadReceived, workflows.Command{Source: "z"})
		b.signal(t, integration.KindLead, viaSignal, workflows.CompleteSetup, workflows.Command{By: "op"}) // rejected: mismatch
		b.signal(t, integration.KindLead, viaSignal, workflows.LeadReceived, workflows.Command{Source: "Z"})
		b.signal(t, integration.KindLead, viaSignal, workflows.CompleteSetup, workflows.Command{By: "op"})
		snap := b.describe(t, integration.KindLead, viaSignal)

		_, err := b.stack.Starter.Intake(b.ctx, viaUpdate, starter.Lead{ExternalID: "l-1", Source: "z"})
		require.NoError(t, err)
		_, err = b.stack.Starter.Command(b.ctx, viaUpdate, integration.EventCompleteSetup, "op", "")
		require.True(t, integration.IsRejection(err), "%v", err)
		_, err = b.stack.Starter.Intake(b.ctx, viaUpdate, starter.Lead{ExternalID: "l-2", Source: "Z"})
		require.NoError(t, err)
		st, err := b.stack.Starter.Command(b.ctx, viaUpdate, integration.EventCompleteSetup, "op", "")
		require.NoError(t, err)

		require.Equal(t, integration.StatusActive, snap.State.Status)
		require.Equal(t, st.Status, snap.State.Status)
		require.Equal(t, st.Version, snap.State.Version)
		require.Equal(t, b.transitions(t, viaUpdate), b.transitions(t, viaSignal))

		// CRM commands, including the validation a resume runs.
		crmSig, crmUpd := testenv.ID("crm-sig"), testenv.ID("crm-upd")
		b.activeCRM(t, org, crmSig)
		b.activeCRM(t, org, crmUpd)
		for _, name := range []string{workflows.Pause, workflows.Resume, workflows.Pause} {
			b.signal(t, integration.KindCRM, crmSig, name, workflows.Command{By: "op"})
			_, err := b.stack.Starter.Command(b.ctx, crmUpd, integration.EventType(name), "op", "")
			require.NoError(t, err)
		}
		snap = b.describe(t, integration.KindCRM, crmSig)
		require.Equal(t, integration.StatusPaused, snap.State.Status)
		require.Equal(t, integration.ReasonManual, snap.State.Reason)
		require.Equal(t, b.transitions(t, crmUpd), b.transitions(t, crmSig))
		projected, err := b.stack.Store.Get(b.ctx, crmSig)
		require.NoError(t, err)
		require.Equal(t, snap.State.Version, projected.Version)
	})
}

// TestManyMessagesAcrossContinueAsNew sends 200 interleaved pause/resume
// messages (bursts of signals with updates between them) to a workflow
// forced to continue as new every few dozen events.
func TestManyMessagesAcrossContinueAsNew(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupE2E(t, db, workflows.Config{MaxHistoryEvents: 150})
		id := testenv.ID("crm")
		b.activeCRM(t, testenv.ID("org"), id)
		start := b.describe(t, integration.KindCRM, id).State.Version

		const messages = 200
		last := ""
		for i := range messages {
			name := workflows.Pause
			if i%2 == 1 {
				name = workflows.Resume
			}
			last = name
			cmd := workflows.Command{By: "load", Note: fmt.Sprintf("message %d", i)}
			if i%10 == 9 {
				// An update waits for every signal before it, so it is
				// never rejected for arriving ahead of them.
				b.describe(t, integration.KindCRM, id)
				_, err := b.stack.Starter.Command(b.ctx, id, integration.EventType(name), cmd.By, cmd.Note)
				require.NoError(t, err, "message %d", i)
				continue
			}
			b.signal(t, integration.KindCRM, id, name, cmd)
		}
		snap := b.describe(t, integration.KindCRM, id)
		require.Equal(t, workflows.Resume, last)
		require.Equal(t, integration.StatusActive, snap.State.Status, "the final state matches the last message")
		require.Equal(t, start+messages, snap.State.Version, "every message was one change")
		require.GreaterOrEqual(t, snap.Run, 3, "the workflow continued as new several times")

		changes, err := b.stack.Store.Events(b.ctx, id)
		require.NoError(t, err)
		require.Len(t, changes, int(start+messages), "one event row per change")
		for i, ch := range changes {
			require.Equal(t, int64(i+1), ch.Version)
			if int64(i) >= start {
				require.Equal(t, fmt.Sprintf("message %d", int64(i)-start), ch.Note, "messages applied in order")
			}
		}
		projected, err := b.stack.Store.Get(b.ctx, id)
		require.NoError(t, err)
		require.Equal(t, snap.State.Version, projected.Version)
		require.Equal(t, integration.StatusActive, projected.Status)
	})
}

func TestSearchAttributesFindWorkflow(t *testing.T) {
	t.Parallel()
	b := setupE2E(t, testenv.Database{Name: "sqlite", URL: testenv.SQLiteURL(t)}, workflows.Config{})
	org := testenv.ID("org")
	id := testenv.ID("crm")
	b.activeCRM(t, org, id)
	_, err := b.stack.Starter.Command(b.ctx, id, integration.EventPause, "op", "")
	require.NoError(t, err)

	query := fmt.Sprintf(`IntegrationStatus = "paused" AND IntegrationReason = "manual" AND IntegrationOrg = %q AND IntegrationKind = "crm" AND IntegrationProvider = "sandbox" AND IntegrationNeedsAttention = false`, org)
	require.Eventually(t, func() bool {
		resp, err := b.stack.Temporal.ListWorkflow(b.ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		require.NoError(t, err)
		return len(resp.Executions) == 1 && resp.Executions[0].Execution.WorkflowId == integration.WorkflowID(integration.KindCRM, id)
	}, 20*time.Second, 200*time.Millisecond, "visibility finds the paused workflow")
}

// TestNoSecretsInHistoryOrLogs authorizes with a real sandbox key and scans
// the workflow's whole history, every payload decoded, and everything the
// worker logged.
func TestNoSecretsInHistoryOrLogs(t *testing.T) {
	t.Parallel()
	b := setupE2E(t, testenv.Database{Name: "sqlite", URL: testenv.SQLiteURL(t)}, workflows.Config{MaxHistoryEvents: 60, ValidationInterval: time.Second})
	id, org := testenv.ID("crm"), testenv.ID("org")
	key := b.activeCRM(t, org, id)
	// A revoked key makes the validation fail and log, the riskiest path.
	_, err := b.stack.Sandbox.Revoke(b.ctx, key)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := b.stack.Store.Get(b.ctx, id)
		require.NoError(t, err)
		return st.Status == integration.StatusPaused
	}, 30*time.Second, 100*time.Millisecond)
	// The negative control: a secret of the test's own as an update
	// argument (a pause's note), where a leaked credential would travel.
	planted := testenv.ID("planted-secret")
	_, err = b.stack.Starter.Command(b.ctx, id, integration.EventPause, "op", "contains "+planted)
	require.NoError(t, err)

	history := testenv.HistoryText(t, b.stack.Temporal, integration.WorkflowID(integration.KindCRM, id))
	testenv.RequirePresent(t, history, org, "the scan reads payloads: the org is only in the workflow input and search attributes")
	testenv.RequirePresent(t, history, planted, "the scan sees an update argument")
	testenv.RequireAbsent(t, history, key, "the API key in the history")
	require.NotContains(t, b.stack.Logs.String(), key)
	require.NotEmpty(t, b.stack.Logs.String(), "the worker logged something")

	// The stored credentials are ciphertext.
	cred, err := b.stack.Store.CurrentCredential(b.ctx, id)
	require.NoError(t, err)
	require.NotContains(t, string(cred.Ciphertext), key)
}

func (b *e2eBundle) waitFor(t *testing.T, id string, status integration.Status) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := b.stack.Store.Get(b.ctx, id)
		require.NoError(t, err)
		return st.Status == status
	}, 30*time.Second, 100*time.Millisecond, "%s reaches %s", id, status)
}
