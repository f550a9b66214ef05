package workflows_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	sdkworker "go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/crm/sandbox/sandboxfake"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/internal/teststack"
	"github.com/acme/integrations/workflows"
)

// A replay fixture is a history of released workflow code: once written it
// is never rewritten, so old histories keep proving that new code replays
// them. A new behaviour gets a new fixture. A recorder drives one
// integration through what its fixture must cover and returns the
// workflow ID; the fixture holds every run of that workflow, one file per
// run when it continued as new (NAME.json, NAME.run2.json, ...).
type recorder struct {
	// config is the per-integration config of the recorded integration.
	config workflows.Config
	record func(t *testing.T, b *e2eBundle) string
	// covers lists what the fixture must contain (checked every run, so a
	// fixture cannot silently stop covering it): event types, activity
	// types, effect types of Notify inputs, markers.
	covers []string
}

var recorders = map[string]recorder{
	"crm_lifecycle": {config: syncConfig, record: recordCRMLifecycle,
		covers: []string{"Validate", "Project", "effect:notify-paused", "effect:resolve-paused", "signal:pause", "signal:resume"}},
	"lead_lifecycle": {config: syncConfig, record: recordLeadLifecycle,
		covers: []string{"signal:lead-received", "effect:request-revision", "update:complete-setup"}},
	"crm_sync": {config: syncConfig, record: recordCRMSync,
		covers: []string{"Deliver", "signal:sync", "marker:lead-sync"}},
	// Recorded with the worker policy and the truthful-status rules.
	"crm_attention_and_resume": {config: syncConfig, record: recordAttentionAndResume,
		covers: []string{"marker:worker-policy", "marker:truthful-status", "effect:needs-attention", "effect:attention-resolved", "effect:resolve-all", "update:pause", "update:resume"}},
	"lead_setup_timers": {config: workflows.Config{ReminderAfter: time.Second, AbandonAfter: 2 * time.Second}, record: recordSetupTimers,
		covers: []string{"TimerFired", "effect:setup-reminder", "effect:setup-abandoned", "effect:resolve-all"}},
	"crm_reauthorization": {config: syncConfig, record: recordReauthorization,
		covers: []string{"marker:safe-reauthorization", "update:authorize", "Validate", "WorkflowExecutionUpdateCompleted"}},
	// The workers restarted with another policy while the run waited.
	"crm_worker_policy_change": {config: workflows.Config{}, record: recordPolicyChange,
		covers: []string{"marker:worker-policy", "marker:worker-policy:changed", "signal:pause", "signal:resume"}},
	"crm_continue_as_new": {config: workflows.Config{MaxHistoryEvents: 60}, record: recordContinueAsNew,
		covers: []string{"WorkflowExecutionContinuedAsNew", "marker:worker-policy", "signal:pause", "signal:resume"}},
}

// TestRecordHistory writes the missing replay fixtures when
// INTEGRATIONS_RECORD_HISTORY=1; otherwise it checks they all exist and
// cover what their recorder says.
func TestRecordHistory(t *testing.T) {
	t.Parallel()
	for name, rec := range recorders {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name+".json")
			if _, err := os.Stat(path); err != nil {
				if os.Getenv("INTEGRATIONS_RECORD_HISTORY") != "1" {
					t.Fatalf("replay fixture %s missing: run with INTEGRATIONS_RECORD_HISTORY=1", path)
				}
				record(t, name, rec)
			}
			files, err := filepath.Glob(filepath.Join("testdata", name+"*.json"))
			require.NoError(t, err)
			var covered []string
			for _, file := range files {
				covered = append(covered, fixtureFacts(t, file)...)
			}
			for _, want := range rec.covers {
				require.Contains(t, covered, want, "fixture %s covers %s", name, want)
			}
		})
	}
}

// record runs rec against a fresh stack and writes its runs' histories.
func record(t *testing.T, name string, rec recorder) {
	b := setupE2E(t, testenv.Database{Name: "sqlite", URL: testenv.SQLiteURL(t)}, rec.config)
	wid := rec.record(t, b)
	require.Eventually(t, func() bool {
		d, err := b.stack.Temporal.DescribeWorkflowExecution(b.ctx, wid, "")
		require.NoError(t, err)
		return d.WorkflowExecutionInfo.Status == enums.WORKFLOW_EXECUTION_STATUS_COMPLETED
	}, 30*time.Second, 100*time.Millisecond, "the recorded workflow completes")
	// Walk back from the last run through the continue-as-new chain.
	var runs [][]string
	for runID := ""; ; {
		iter := b.stack.Temporal.GetWorkflowHistory(b.ctx, wid, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		var events []string
		previous := ""
		for iter.HasNext() {
			ev, err := iter.Next()
			require.NoError(t, err)
			if a := ev.GetWorkflowExecutionStartedEventAttributes(); a != nil {
				previous = a.GetContinuedExecutionRunId()
			}
			raw, err := protojson.Marshal(ev)
			require.NoError(t, err)
			events = append(events, string(raw))
		}
		runs = append([][]string{events}, runs...)
		if previous == "" {
			break
		}
		runID = previous
	}
	require.NoError(t, os.MkdirAll("testdata", 0o755))
	for i, events := range runs {
		file := name + ".json"
		if i > 0 {
			file = name + ".run" + string(rune('1'+i)) + ".json"
		}
		require.NoError(t, os.WriteFile(filepath.Join("testdata", file), []byte(`{"events":[`+strings.Join(events, ",")+`]}`), 0o644))
	}
}

// fixtureFacts lists what a fixture holds, in the words of recorder.covers:
// event types, activity types, "signal:NAME", "update:NAME",
// "marker:CHANGE-ID" (versions and side effects) and "effect:TYPE" (read
// from the decoded Notify inputs).
func fixtureFacts(t *testing.T, file string) []string {
	t.Helper()
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	var history historypb.History
	require.NoError(t, protojson.Unmarshal(raw, &history), "fixture %s", file)
	var facts []string
	policyMarkers := 0
	for _, ev := range history.Events {
		facts = append(facts, strings.TrimPrefix(ev.EventType.String(), "EVENT_TYPE_"))
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			facts = append(facts, a.ActivityType.GetName())
			if a.ActivityType.GetName() == "Notify" {
				for _, p := range a.Input.GetPayloads() {
					var in struct {
						Effect struct {
							Type string `json:"type"`
						} `json:"effect"`
					}
					require.NoError(t, json.Unmarshal(p.Data, &in))
					facts = append(facts, "effect:"+in.Effect.Type)
				}
			}
		}
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil {
			facts = append(facts, "signal:"+a.SignalName)
		}
		if a := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes(); a != nil {
			facts = append(facts, "update:"+a.GetAcceptedRequest().GetInput().GetName())
		}
		if a := ev.GetMarkerRecordedEventAttributes(); a != nil {
			for key, payloads := range a.Details {
				if key != "change-id" && key != "side-effect-id" {
					continue
				}
				for _, p := range payloads.Payloads {
					var id string
					if json.Unmarshal(p.Data, &id) == nil {
						// Side-effect IDs carry a call counter: "worker-policy_5".
						id, _, _ = strings.Cut(id, "_")
						facts = append(facts, "marker:"+id)
						if key == "side-effect-id" && id == "worker-policy" {
							policyMarkers++
						}
					}
				}
			}
		}
	}
	if policyMarkers > 1 {
		// A policy marker is recorded only when the value changed.
		facts = append(facts, "marker:worker-policy:changed")
	}
	slices.Sort(facts)
	return slices.Compact(facts)
}

func recordCRMLifecycle(t *testing.T, b *e2eBundle) string {
	crmID := testenv.ID("recorded-crm")
	key := b.activeCRM(t, "recorded-org", crmID)
	// Signals in a burst, as an operator or script might send them.
	for _, name := range []string{workflows.Pause, workflows.Resume, workflows.Pause} {
		b.signal(t, integration.KindCRM, crmID, name, workflows.Command{By: "op"})
	}
	b.describe(t, integration.KindCRM, crmID)
	_, err := b.stack.Starter.Command(b.ctx, crmID, integration.EventResume, "op", "")
	require.NoError(t, err)
	_, err = b.stack.Sandbox.Revoke(b.ctx, key)
	require.NoError(t, err)
	b.waitFor(t, crmID, integration.StatusPaused)
	_, err = b.stack.Sandbox.Restore(b.ctx, key)
	require.NoError(t, err)
	b.waitFor(t, crmID, integration.StatusActive)
	_, err = b.stack.Starter.Command(b.ctx, crmID, integration.EventDelete, "op", "")
	require.NoError(t, err)
	return integration.WorkflowID(integration.KindCRM, crmID)
}

func recordLeadLifecycle(t *testing.T, b *e2eBundle) string {
	leadID := testenv.ID("recorded-lead")
	_, err := b.stack.Starter.Create(b.ctx, integration.Spec{ID: leadID, OrgID: "recorded-org", Kind: integration.KindLead, Provider: "zillow", ExpectedSource: "Z"}, "test")
	require.NoError(t, err)
	b.signal(t, integration.KindLead, leadID, workflows.LeadReceived, workflows.Command{Source: "z"})
	b.signal(t, integration.KindLead, leadID, workflows.LeadReceived, workflows.Command{Source: "Z"})
	b.describe(t, integration.KindLead, leadID)
	_, err = b.stack.Starter.Command(b.ctx, leadID, integration.EventCompleteSetup, "op", "")
	require.NoError(t, err)
	_, err = b.stack.Starter.Command(b.ctx, leadID, integration.EventDelete, "op", "")
	require.NoError(t, err)
	return integration.WorkflowID(integration.KindLead, leadID)
}

// recordCRMSync records deliveries, a failing sync with backoff, a rate
// limit, recovery and a rejected lead.
func recordCRMSync(t *testing.T, b *e2eBundle) string {
	f := &flowBundle{e2eBundle: b, org: "recorded-org"}
	crmID, key := f.crm(t)
	f.activeLead(t)
	f.sendLeads(t, 3, "Z")
	f.waitDelivered(t, crmID, 3)
	_, err := b.stack.Sandbox.SetFaults(b.ctx, key, sandboxfake.Faults{FailNext: 3, FailStatus: 503})
	require.NoError(t, err)
	f.sendLeads(t, 2, "Z")
	f.waitDelivered(t, crmID, 5)
	f.waitStatus(t, crmID, integration.StatusActive)
	_, err = b.stack.Sandbox.SetFaults(b.ctx, key, sandboxfake.Faults{RateLimitNext: 1, RetryAfterSeconds: 1})
	require.NoError(t, err)
	f.sendLeads(t, 2, "Z")
	f.waitDelivered(t, crmID, 7)
	_, err = b.stack.Starter.Command(b.ctx, crmID, integration.EventDelete, "op", "")
	require.NoError(t, err)
	return integration.WorkflowID(integration.KindCRM, crmID)
}

// recordAttentionAndResume records a failing sync past the attention
// threshold, a manual pause and resume while failing (failed_sync, not
// active), the recovery that resolves the alert, and a delete.
func recordAttentionAndResume(t *testing.T, b *e2eBundle) string {
	f := &flowBundle{e2eBundle: b, org: "recorded-org"}
	crmID, key := f.crm(t)
	f.activeLead(t)
	_, err := b.stack.Sandbox.SetFaults(b.ctx, key, sandboxfake.Faults{FailNext: 1000, FailStatus: 503})
	require.NoError(t, err)
	f.sendLeads(t, 1, "Z")
	require.Eventually(t, func() bool { return f.state(t, crmID).NeedsAttention }, 30*time.Second, 50*time.Millisecond, "needs attention")
	_, err = b.stack.Starter.Command(b.ctx, crmID, integration.EventPause, "op", "")
	require.NoError(t, err)
	require.NoError(t, b.stack.Sandbox.ClearFaults(b.ctx, key))
	st, err := b.stack.Starter.Command(b.ctx, crmID, integration.EventResume, "op", "")
	require.NoError(t, err)
	require.Equal(t, integration.StatusFailedSync, st.Status, "resumed while failing")
	f.waitDelivered(t, crmID, 1)
	f.waitStatus(t, crmID, integration.StatusActive)
	_, err = b.stack.Starter.Command(b.ctx, crmID, integration.EventDelete, "op", "")
	require.NoError(t, err)
	return integration.WorkflowID(integration.KindCRM, crmID)
}

// recordSetupTimers records a lead integration whose setup reminder and
// abandoned flag fire, then a delete.
func recordSetupTimers(t *testing.T, b *e2eBundle) string {
	leadID := testenv.ID("recorded-lead")
	_, err := b.stack.Starter.Create(b.ctx, integration.Spec{ID: leadID, OrgID: "recorded-org", Kind: integration.KindLead, Provider: "zillow", ExpectedSource: "Z"}, "test")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := b.stack.Store.Get(b.ctx, leadID)
		require.NoError(t, err)
		return st.Abandoned && st.ReminderSent
	}, 30*time.Second, 50*time.Millisecond, "reminded and abandoned")
	_, err = b.stack.Starter.Command(b.ctx, leadID, integration.EventDelete, "op", "")
	require.NoError(t, err)
	return integration.WorkflowID(integration.KindLead, leadID)
}

// recordContinueAsNew records a CRM integration that continues as new
// (history capped at 60 events) in the middle of commands, then a delete
// in a later run.
func recordContinueAsNew(t *testing.T, b *e2eBundle) string {
	crmID := testenv.ID("recorded-crm")
	b.activeCRM(t, "recorded-org", crmID)
	for i := range 12 {
		name := workflows.Pause
		if i%2 == 1 {
			name = workflows.Resume
		}
		b.signal(t, integration.KindCRM, crmID, name, workflows.Command{By: "op"})
		b.describe(t, integration.KindCRM, crmID)
	}
	require.Positive(t, b.describe(t, integration.KindCRM, crmID).Run, "continued as new")
	_, err := b.stack.Starter.Command(b.ctx, crmID, integration.EventDelete, "op", "")
	require.NoError(t, err)
	return integration.WorkflowID(integration.KindCRM, crmID)
}

// recordReauthorization records an active CRM integration given a key that
// fails validation (refused, nothing changes), then a good one.
func recordReauthorization(t *testing.T, b *e2eBundle) string {
	crmID := testenv.ID("recorded-crm")
	b.activeCRM(t, "recorded-org", crmID)
	weak, err := b.stack.Sandbox.CreateAccount(b.ctx, []string{"contacts.read"})
	require.NoError(t, err)
	_, err = b.stack.Starter.Authorize(b.ctx, crmID, teststack.Credentials(weak.APIKey), "op")
	require.True(t, integration.IsRejection(err), "a key lacking a scope is refused: %v", err)
	good, err := b.stack.Sandbox.CreateAccount(b.ctx, nil)
	require.NoError(t, err)
	st, err := b.stack.Starter.Authorize(b.ctx, crmID, teststack.Credentials(good.APIKey), "op")
	require.NoError(t, err)
	require.Equal(t, integration.StatusActive, st.Status)
	_, err = b.stack.Starter.Command(b.ctx, crmID, integration.EventDelete, "op", "")
	require.NoError(t, err)
	return integration.WorkflowID(integration.KindCRM, crmID)
}

// recordPolicyChange records an active CRM integration whose workers are
// restarted with a shorter validation interval while it waits: the run
// reads the new policy at its next wake-up (a pause), recording a second
// worker-policy marker, and its validation timer follows it.
func recordPolicyChange(t *testing.T, b *e2eBundle) string {
	crmID := testenv.ID("recorded-crm")
	b.activeCRM(t, "recorded-org", crmID)
	before := b.describe(t, integration.KindCRM, crmID)
	require.NotNil(t, before.NextValidationAt)

	b.stack.Service.Worker.Stop()
	cfg := b.stack.Service.Config
	cfg.Policy.ValidationInterval = 10 * time.Minute
	svc, err := app.New(b.ctx, cfg, app.WithLogger(b.stack.Service.Logger), app.WithTemporalClient(b.stack.Temporal),
		app.WithDevKeyring(), app.WithWorker(sdkworker.Options{}))
	require.NoError(t, err)
	t.Cleanup(svc.Close)
	require.NoError(t, svc.Start(b.ctx))

	b.signal(t, integration.KindCRM, crmID, workflows.Pause, workflows.Command{By: "op"})
	b.describe(t, integration.KindCRM, crmID)
	b.signal(t, integration.KindCRM, crmID, workflows.Resume, workflows.Command{By: "op"})
	after := b.describe(t, integration.KindCRM, crmID)
	require.NotNil(t, after.NextValidationAt)
	require.True(t, after.NextValidationAt.Before(*before.NextValidationAt), "the new interval reached the run: %s, was %s", after.NextValidationAt, before.NextValidationAt)
	_, err = b.stack.Starter.Command(b.ctx, crmID, integration.EventDelete, "op", "")
	require.NoError(t, err)
	return integration.WorkflowID(integration.KindCRM, crmID)
}
