package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/workflows"
)

// These are fast unit tests of the workflow shell: the SDK's test
// environment skips time, and the activities are mocks that record what the
// workflow asked of them. No Temporal server or database is involved.

// acts is a typed handle on the activity methods, for naming them in mocks.
var acts = &activities.Activities{}

// testStart is the workflow clock at the start of every run.
var testStart = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// validateResult is one scripted answer of the Validate mock.
type validateResult struct {
	checks []integration.Check
	err    error
}

type testBundle struct {
	env *testsuite.TestWorkflowEnvironment
	// policy is the worker's policy the runs read; setPolicy changes it
	// mid-run, as a worker restarted with another policy would.
	policy atomic.Pointer[integration.Policy]

	mu sync.Mutex
	// projected, notified and validated record the activity calls in order.
	projected []activities.ProjectInput
	notified  []activities.NotifyInput
	validated []activities.ValidateInput
	// validatedAt is the workflow time of each Validate call.
	validatedAt []time.Time
	// validateScript answers Validate calls in order (retries included);
	// calls beyond it pass.
	validateScript []validateResult
	// delivered records Deliver calls (with the time they ran);
	// deliverScript answers them in order, then nothing is pending.
	delivered     []time.Time
	deliverScript []activities.DeliverResult
	// deliverErrs, by call, make Deliver fail as an activity.
	deliverErrs map[int]error
}

// setup builds a test environment the way worker.New builds a worker: with
// the Runtime interceptor installed, serving the bundle's policy (the
// defaults until setPolicy).
func setup(t *testing.T) *testBundle {
	t.Helper()
	b := &testBundle{}
	b.setPolicy(integration.DefaultPolicy())
	runtime := &workflows.Runtime{Policy: func() integration.Policy { return *b.policy.Load() }}
	return setupWithInterceptors(t, b, []interceptor.WorkerInterceptor{runtime})
}

// setPolicy changes the worker policy the runs read from now on.
func (b *testBundle) setPolicy(p integration.Policy) { b.policy.Store(&p) }

func setupWithInterceptors(t *testing.T, b *testBundle, interceptors []interceptor.WorkerInterceptor) *testBundle {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(testenv.DiscardLogger())
	env := suite.NewTestWorkflowEnvironment()
	env.SetWorkerOptions(sdkworker.Options{Interceptors: interceptors})
	env.SetStartTime(testStart)
	// Every test ends its run explicitly; a stuck workflow fails fast.
	env.SetTestTimeout(5 * time.Second)
	env.RegisterWorkflow(workflows.LeadIntegration)
	env.RegisterWorkflow(workflows.CRMIntegration)
	env.RegisterActivity(acts)

	b.env = env
	env.OnActivity(acts.Project, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ProjectInput) error {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.projected = append(b.projected, in)
			return nil
		})
	env.OnActivity(acts.Notify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.NotifyInput) error {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.notified = append(b.notified, in)
			return nil
		})
	env.OnActivity(acts.Validate, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ValidateInput) ([]integration.Check, error) {
			b.mu.Lock()
			defer b.mu.Unlock()
			call := len(b.validated)
			b.validated = append(b.validated, in)
			b.validatedAt = append(b.validatedAt, env.Now().UTC())
			if call < len(b.validateScript) {
				return b.validateScript[call].checks, b.validateScript[call].err
			}
			return passingChecks(), nil
		})
	env.OnActivity(acts.Deliver, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
			b.mu.Lock()
			defer b.mu.Unlock()
			call := len(b.delivered)
			b.delivered = append(b.delivered, env.Now())
			if err := b.deliverErrs[call]; err != nil {
				return activities.DeliverResult{}, err
			}
			if call < len(b.deliverScript) {
				return b.deliverScript[call], nil
			}
			return activities.DeliverResult{}, nil
		})
	return b
}

func passingChecks() []integration.Check {
	return []integration.Check{{Name: "token", OK: true}, {Name: "scopes", OK: true}}
}

func expiredChecks() []integration.Check {
	return []integration.Check{
		{Name: "token", OK: false, Code: integration.ReasonExpiredCredentials, Message: "the refresh token was revoked", Remediation: "authorize again"},
		{Name: "scopes", OK: true},
	}
}

// newInput is the first-run input of a new integration, as the starter
// makes it: version 1, not yet projected.
func newInput(t *testing.T, kind integration.Kind, cfg workflows.Config) workflows.Input {
	t.Helper()
	spec := integration.Spec{ID: "int-1", OrgID: "org-1", Kind: kind, Provider: "sandbox", Name: "Main"}
	if kind == integration.KindLead {
		spec.Provider, spec.ExpectedSource = "zillow", "Zillow-Test"
	}
	s, err := integration.New(spec, testStart)
	require.NoError(t, err)
	return workflows.Input{State: s, Config: cfg, LastChange: integration.Created(s, "test")}
}

// activeCRMInput is the input of a run that continues an active CRM
// integration which is already projected.
func activeCRMInput(t *testing.T, cfg workflows.Config) workflows.Input {
	t.Helper()
	in := newInput(t, integration.KindCRM, cfg)
	s := in.State
	var change integration.Change
	for _, ev := range []integration.Event{
		{Type: integration.EventAuthorize, Checks: passingChecks(), At: testStart},
		{Type: integration.EventCompleteSetup, At: testStart},
	} {
		tr, err := s.Apply(ev)
		require.NoError(t, err)
		s, change = tr.State, tr.Change
	}
	require.Equal(t, integration.StatusActive, s.Status)
	return workflows.Input{
		State: s, Config: cfg, LastChange: change, ProjectedVersion: s.Version,
		Timers: integration.Timers{
			NextValidationAt: testStart.Add(cfg.Overrides().Or(integration.DefaultPolicy()).ValidationInterval),
			// A syncing run carries its safety timer across continue-as-new.
			NextSyncAt: testStart.Add(cfg.Overrides().Or(integration.DefaultPolicy()).SyncInterval),
		},
		Run: 2,
	}
}

// at runs fn when the workflow clock reaches testStart+d.
func (b *testBundle) at(d time.Duration, fn func()) { b.env.RegisterDelayedCallback(fn, d) }

func (b *testBundle) signalAt(d time.Duration, name string, cmd workflows.Command) {
	b.at(d, func() { b.env.SignalWorkflow(name, cmd) })
}

// cancelAt cancels the run at testStart+d: how a test ends a workflow that
// would otherwise wait forever.
func (b *testBundle) cancelAt(d time.Duration) { b.at(d, b.env.CancelWorkflow) }

// updateOutcome is what an update sent with updateAt came back with.
type updateOutcome struct {
	done     bool
	rejected error
	snapshot workflows.Snapshot
	err      error
}

func (b *testBundle) updateAt(t *testing.T, d time.Duration, name string, cmd workflows.Command) *updateOutcome {
	t.Helper()
	out := &updateOutcome{}
	b.at(d, func() {
		b.env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { out.done, out.rejected = true, err },
			OnComplete: func(result any, err error) {
				out.done, out.err = true, err
				if snap, ok := result.(workflows.Snapshot); ok {
					out.snapshot = snap
				}
			},
		}, cmd)
	})
	return out
}

// query returns the status snapshot; call it from a callback while the
// workflow runs.
func (b *testBundle) query(t *testing.T) workflows.Snapshot {
	t.Helper()
	v, err := b.env.QueryWorkflow(workflows.QueryStatus)
	require.NoError(t, err)
	var snap workflows.Snapshot
	require.NoError(t, v.Get(&snap))
	return snap
}

// queryAt records the snapshot at testStart+d into *snap.
func (b *testBundle) queryAt(t *testing.T, d time.Duration, snap *workflows.Snapshot) {
	b.at(d, func() { *snap = b.query(t) })
}

func (b *testBundle) projections() []activities.ProjectInput {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]activities.ProjectInput(nil), b.projected...)
}

func (b *testBundle) notifications() []activities.NotifyInput {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]activities.NotifyInput(nil), b.notified...)
}

func (b *testBundle) validations() []activities.ValidateInput {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]activities.ValidateInput(nil), b.validated...)
}

// effects lists the effect types the workflow carried out, in order.
func (b *testBundle) effects() []integration.EffectType {
	var out []integration.EffectType
	for _, n := range b.notifications() {
		out = append(out, n.Effect.Type)
	}
	return out
}

// changes summarises the projected change records without their times.
func (b *testBundle) changes() []string {
	var out []string
	for _, p := range b.projections() {
		c := p.Change
		out = append(out, fmt.Sprintf("v%d %s %s/%s->%s/%s", c.Version, c.Event, c.FromStatus, c.FromReason, c.ToStatus, c.ToReason))
	}
	return out
}

// requireConsistentProjections checks every projection carries a state and
// its own change record, with versions going up by exactly one from first.
func (b *testBundle) requireConsistentProjections(t *testing.T, first int64) {
	t.Helper()
	for i, p := range b.projections() {
		want := first + int64(i)
		require.Equal(t, want, p.State.Version, "projection %d", i)
		require.Equal(t, want, p.Change.Version, "projection %d", i)
		require.Equal(t, p.State.ID, p.Change.IntegrationID)
		require.Equal(t, p.State.Status, p.Change.ToStatus)
		require.Equal(t, p.State.Reason, p.Change.ToReason)
		if i > 0 {
			prev := b.projections()[i-1].State
			require.Equal(t, prev.Status, p.Change.FromStatus)
			require.Equal(t, prev.Reason, p.Change.FromReason)
			require.Equal(t, p.Change.At, p.State.UpdatedAt)
		}
	}
}

func (b *testBundle) requireCanceled(t *testing.T) {
	t.Helper()
	require.True(t, b.env.IsWorkflowCompleted())
	err := b.env.GetWorkflowError()
	require.Error(t, err)
	var canceled *temporal.CanceledError
	require.True(t, errors.As(err, &canceled), "want the test's cancellation, got %v", err)
}

func requireRejection(t *testing.T, err error, contains string) {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "want an application error, got %T %v", err, err)
	require.Equal(t, workflows.RejectionErrorType, appErr.Type())
	require.Contains(t, appErr.Error(), contains)
}

func TestUnitSetupReminderAndAbandon(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const day = 24 * time.Hour
	var beforeReminder, afterReminder, afterAbandon workflows.Snapshot
	b.queryAt(t, integration.DefaultReminderAfter-time.Minute, &beforeReminder)
	b.queryAt(t, integration.DefaultReminderAfter+time.Minute, &afterReminder)
	b.queryAt(t, 31*day, &afterAbandon)
	stillRunning := false
	b.at(31*day+time.Minute, func() { stillRunning = !b.env.IsWorkflowCompleted() })
	b.cancelAt(40 * day)

	b.env.ExecuteWorkflow(workflows.CRMIntegration, newInput(t, integration.KindCRM, workflows.Config{}))
	b.requireCanceled(t)

	require.False(t, beforeReminder.State.ReminderSent)
	require.Equal(t, int64(1), beforeReminder.State.Version)
	require.True(t, afterReminder.State.ReminderSent)
	require.False(t, afterReminder.State.Abandoned)
	require.Equal(t, int64(2), afterReminder.State.Version)
	require.True(t, afterAbandon.State.Abandoned)
	require.Equal(t, integration.StatusSetupIncomplete, afterAbandon.State.Status)
	require.Equal(t, integration.ReasonAwaitingAuthorization, afterAbandon.State.Reason)
	require.Equal(t, int64(3), afterAbandon.ProjectedVersion)
	require.True(t, stillRunning, "an abandoned integration is flagged, never ended")

	// Once each, up to the cancellation 40 days in.
	require.Equal(t, []integration.EffectType{integration.EffectSetupReminder, integration.EffectAbandoned}, b.effects())
	notes := b.notifications()
	require.Equal(t, integration.ReasonAwaitingAuthorization, notes[0].Effect.Reason)
	require.True(t, notes[0].State.ReminderSent)
	require.True(t, notes[1].State.Abandoned)
	require.Empty(t, b.validations(), "no validation runs during setup")

	require.Equal(t, []string{
		"v1 created /->setup_incomplete/awaiting_authorization",
		"v2 setup-reminder-due setup_incomplete/awaiting_authorization->setup_incomplete/awaiting_authorization",
		"v3 setup-abandon-due setup_incomplete/awaiting_authorization->setup_incomplete/awaiting_authorization",
	}, b.changes())
	b.requireConsistentProjections(t, 1)
	p := b.projections()
	require.Equal(t, testStart.Add(integration.DefaultReminderAfter), p[1].Change.At)
	require.Equal(t, "system", p[1].Change.Actor)
	require.Equal(t, testStart.Add(integration.DefaultAbandonAfter), p[2].Change.At)
	require.False(t, p[1].State.Abandoned)
	require.True(t, p[2].State.ReminderSent && p[2].State.Abandoned)
}

func TestUnitSetupReminderHonoursConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cancelAt(10 * time.Hour)

	b.env.ExecuteWorkflow(workflows.LeadIntegration, newInput(t, integration.KindLead,
		workflows.Config{ReminderAfter: 2 * time.Hour, AbandonAfter: 5 * time.Hour}))
	b.requireCanceled(t)

	require.Equal(t, []integration.EffectType{integration.EffectSetupReminder, integration.EffectAbandoned}, b.effects())
	p := b.projections()
	require.Len(t, p, 3)
	require.Equal(t, testStart.Add(2*time.Hour), p[1].Change.At)
	require.Equal(t, testStart.Add(5*time.Hour), p[2].Change.At)
	b.requireConsistentProjections(t, 1)
}

func TestUnitActivationPreventsReminder(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	for _, tc := range []struct {
		name     string
		kind     integration.Kind
		workflow any
		// firstStep is the command that makes setup completable.
		firstStep string
		cmd       workflows.Command
	}{
		{"lead", integration.KindLead, workflows.LeadIntegration, workflows.LeadReceived, workflows.Command{Source: "Zillow-Test"}},
		{"crm", integration.KindCRM, workflows.CRMIntegration, workflows.Authorize, workflows.Command{By: "alice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			first := b.updateAt(t, time.Hour, tc.firstStep, tc.cmd)
			complete := b.updateAt(t, 2*time.Hour, workflows.CompleteSetup, workflows.Command{By: "alice"})
			var late workflows.Snapshot
			b.queryAt(t, 31*day, &late)
			b.cancelAt(32 * day)

			// A daily validation keeps the simulated month short.
			b.env.ExecuteWorkflow(tc.workflow, newInput(t, tc.kind, workflows.Config{ValidationInterval: day}))
			b.requireCanceled(t)

			require.True(t, first.done)
			require.NoError(t, first.rejected)
			require.NoError(t, first.err)
			require.NoError(t, complete.rejected)
			require.NoError(t, complete.err)
			require.Equal(t, integration.StatusActive, complete.snapshot.State.Status)

			require.Equal(t, integration.StatusActive, late.State.Status)
			require.False(t, late.State.ReminderSent)
			require.False(t, late.State.Abandoned)
			require.Equal(t, int64(3), late.State.Version, "daily validations that pass change nothing")
			require.Empty(t, b.effects(), "no reminder, no abandonment once active")
			b.requireConsistentProjections(t, 1)
		})
	}
}

func TestUnitActivationAfterReminderStopsAbandon(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	b := setup(t)
	b.updateAt(t, 4*day, workflows.Authorize, workflows.Command{})
	b.updateAt(t, 4*day+time.Hour, workflows.CompleteSetup, workflows.Command{})
	b.cancelAt(31 * day)

	b.env.ExecuteWorkflow(workflows.CRMIntegration, newInput(t, integration.KindCRM, workflows.Config{ValidationInterval: 7 * day}))
	b.requireCanceled(t)

	require.Equal(t, []integration.EffectType{integration.EffectSetupReminder}, b.effects())
	require.Equal(t, []string{
		"v1 created /->setup_incomplete/awaiting_authorization",
		"v2 setup-reminder-due setup_incomplete/awaiting_authorization->setup_incomplete/awaiting_authorization",
		"v3 authorize setup_incomplete/awaiting_authorization->setup_incomplete/awaiting_finish",
		"v4 complete-setup setup_incomplete/awaiting_finish->active/",
	}, b.changes())
}

func TestUnitPeriodicValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	unreachable := errors.New("dial tcp: connection refused")
	b.validateScript = []validateResult{
		{checks: passingChecks()},                                  // authorize, 3h
		{checks: passingChecks()},                                  // periodic, 6h: no change
		{checks: expiredChecks()},                                  // 7h: paused
		{err: unreachable}, {err: unreachable}, {err: unreachable}, // 8h: all attempts fail
		{checks: passingChecks()}, // 9h: active again
	}
	var validationsInSetup, validationsAtActivation int
	b.at(3*time.Hour-time.Minute, func() { validationsInSetup = len(b.validations()) })
	authorize := b.updateAt(t, 3*time.Hour, workflows.Authorize, workflows.Command{By: "alice"})
	b.at(5*time.Hour-time.Minute, func() { validationsAtActivation = len(b.validations()) })
	complete := b.updateAt(t, 5*time.Hour, workflows.CompleteSetup, workflows.Command{By: "alice"})
	var at6, at7, at8, at9 workflows.Snapshot
	b.queryAt(t, 6*time.Hour+time.Minute, &at6)
	b.queryAt(t, 7*time.Hour+time.Minute, &at7)
	b.queryAt(t, 8*time.Hour+time.Minute, &at8)
	b.queryAt(t, 9*time.Hour+time.Minute, &at9)
	b.cancelAt(9*time.Hour + 30*time.Minute)

	b.env.ExecuteWorkflow(workflows.CRMIntegration, newInput(t, integration.KindCRM, workflows.Config{}))
	b.requireCanceled(t)

	require.Zero(t, validationsInSetup, "no periodic validation while awaiting authorization")
	require.Equal(t, 1, validationsAtActivation, "only authorize validates while awaiting finish")
	require.NoError(t, authorize.err)
	require.Equal(t, integration.ReasonAwaitingFinish, authorize.snapshot.State.Reason)
	require.NoError(t, complete.err)
	require.Equal(t, integration.StatusActive, complete.snapshot.State.Status)
	require.NotNil(t, complete.snapshot.NextValidationAt)
	require.Equal(t, testStart.Add(6*time.Hour), *complete.snapshot.NextValidationAt)

	require.Equal(t, integration.StatusActive, at6.State.Status)
	require.Equal(t, int64(3), at6.State.Version, "a passing validation that matches the last one is no change")
	require.Equal(t, integration.StatusPaused, at7.State.Status)
	require.Equal(t, integration.ReasonExpiredCredentials, at7.State.Reason)
	require.Equal(t, at7.State, at8.State, "an unreachable CRM says nothing about the credentials")
	require.Equal(t, testStart.Add(9*time.Hour), *at8.NextValidationAt, "the next attempt is one interval later")
	require.Equal(t, integration.StatusActive, at9.State.Status)
	require.Equal(t, int64(5), at9.ProjectedVersion)

	v := b.validations()
	require.Len(t, v, len(b.validateScript), "authorize, four periodic runs, the failing one attempted three times")
	for _, in := range v {
		require.Equal(t, activities.ValidateInput{IntegrationID: "int-1", Provider: "sandbox"}, in)
	}

	require.Equal(t, []integration.EffectType{integration.EffectNotifyPaused, integration.EffectResolvePaused}, b.effects())
	paused := b.notifications()[0]
	require.Equal(t, integration.ReasonExpiredCredentials, paused.Effect.Reason)
	require.Equal(t, expiredChecks(), paused.Effect.Checks)
	require.Equal(t, integration.StatusPaused, paused.State.Status)

	require.Equal(t, []string{
		"v1 created /->setup_incomplete/awaiting_authorization",
		"v2 authorize setup_incomplete/awaiting_authorization->setup_incomplete/awaiting_finish",
		"v3 complete-setup setup_incomplete/awaiting_finish->active/",
		"v4 validated active/->paused/expired_credentials",
		"v5 validated paused/expired_credentials->active/",
	}, b.changes())
	b.requireConsistentProjections(t, 1)
	p := b.projections()
	require.Equal(t, testStart.Add(7*time.Hour), p[3].Change.At)
	require.Equal(t, "system", p[3].Change.Actor)
	require.Equal(t, "alice", p[1].Change.Actor)
}

func TestUnitContinueAsNewWhenIdle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The safety sync timer is pushed out of the way of the timers these
	// tests watch.
	in := activeCRMInput(t, workflows.Config{MaxHistoryEvents: 100, SyncInterval: 24 * time.Hour})
	b.at(30*time.Minute, func() {
		// History grows past the limit while a signal waits: the signal
		// is applied before the run hands over.
		b.env.SetCurrentHistoryLength(150)
		b.env.SignalWorkflow(workflows.Pause, workflows.Command{By: "ops", Note: "maintenance"})
	})
	b.cancelAt(5 * time.Hour) // only reached if the run failed to continue as new

	b.env.ExecuteWorkflow(workflows.CRMIntegration, in)

	require.True(t, b.env.IsWorkflowCompleted())
	err := b.env.GetWorkflowError()
	require.True(t, workflow.IsContinueAsNewError(err), "want continue-as-new, got %v", err)
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(err, &can))
	require.Equal(t, "CRMIntegration", can.WorkflowType.Name)
	var next workflows.Input
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))

	require.Equal(t, integration.StatusPaused, next.State.Status)
	require.Equal(t, integration.ReasonManual, next.State.Reason)
	require.Equal(t, in.State.Version+1, next.State.Version)
	require.Equal(t, next.State.Version, next.ProjectedVersion, "the pause was projected before handing over")
	require.Equal(t, integration.EventPause, next.LastChange.Event)
	require.Equal(t, next.State.Version, next.LastChange.Version)
	require.Equal(t, "maintenance", next.LastChange.Note)
	require.Equal(t, in.NextValidationAt, next.NextValidationAt)
	require.Equal(t, in.Run+1, next.Run)
	require.Equal(t, in.Config, next.Config, "the next run gets the configuration as given; defaults apply per run")
	require.Equal(t, []string{"v4 pause active/->paused/manual"}, b.changes(), "a run that starts projected writes nothing again")
}

func TestUnitContinueAsNewOnTimerWake(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The safety sync timer is pushed out of the way of the timers these
	// tests watch.
	in := activeCRMInput(t, workflows.Config{MaxHistoryEvents: 100, SyncInterval: 24 * time.Hour})
	// The limit is crossed while the run sleeps; the next timer wakes it.
	b.at(30*time.Minute, func() { b.env.SetCurrentHistoryLength(150) })
	b.cancelAt(5 * time.Hour)

	b.env.ExecuteWorkflow(workflows.CRMIntegration, in)

	err := b.env.GetWorkflowError()
	require.True(t, workflow.IsContinueAsNewError(err), "want continue-as-new, got %v", err)
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(err, &can))
	var next workflows.Input
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Equal(t, in.State, next.State, "the validation passed with the same checks: no change")
	require.Equal(t, in.ProjectedVersion, next.ProjectedVersion)
	require.Equal(t, in.NextValidationAt.Add(integration.DefaultValidationInterval), next.NextValidationAt)
	require.Equal(t, in.Run+1, next.Run)
	require.Len(t, b.validations(), 1)
	require.Empty(t, b.projections())
}

func TestUnitRejectedUpdateChangesNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		command  string
		contains string
	}{
		{"pause during setup", workflows.Pause, "setup is incomplete"},
		{"resume during setup", workflows.Resume, "is not paused"},
		{"complete setup before authorize", workflows.CompleteSetup, "not authorized yet"},
		{"lead received by a CRM integration", workflows.LeadReceived, "does not receive leads"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			out := b.updateAt(t, time.Hour, tc.command, workflows.Command{By: "alice"})
			var after workflows.Snapshot
			b.queryAt(t, 2*time.Hour, &after)
			b.cancelAt(3 * time.Hour)

			b.env.ExecuteWorkflow(workflows.CRMIntegration, newInput(t, integration.KindCRM, workflows.Config{}))
			b.requireCanceled(t)

			require.True(t, out.done)
			requireRejection(t, out.rejected, tc.contains)
			require.Equal(t, int64(1), after.State.Version)
			require.Equal(t, integration.ReasonAwaitingAuthorization, after.State.Reason)
			require.Zero(t, after.PendingMessages)
			require.Equal(t, []string{"v1 created /->setup_incomplete/awaiting_authorization"}, b.changes(), "only the creation is projected")
			require.Empty(t, b.validations())
			require.Empty(t, b.effects())
		})
	}
}

func TestUnitRejectedUpdateWhenActive(t *testing.T) {
	t.Parallel()
	b := setup(t)
	resume := b.updateAt(t, 10*time.Minute, workflows.Resume, workflows.Command{})
	complete := b.updateAt(t, 20*time.Minute, workflows.CompleteSetup, workflows.Command{})
	b.cancelAt(30 * time.Minute)

	in := activeCRMInput(t, workflows.Config{})
	b.env.ExecuteWorkflow(workflows.CRMIntegration, in)
	b.requireCanceled(t)

	requireRejection(t, resume.rejected, "is not paused")
	requireRejection(t, complete.rejected, "already complete")
	require.Empty(t, b.projections())
	require.Empty(t, b.validations(), "a rejected resume is not validated against the CRM")
}

func TestUnitRejectedSignalIgnored(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.signalAt(time.Hour, workflows.Pause, workflows.Command{By: "ops"})
	b.signalAt(time.Hour+time.Minute, workflows.CompleteSetup, workflows.Command{By: "ops"})
	var after workflows.Snapshot
	b.queryAt(t, 2*time.Hour, &after)
	// The workflow still takes commands after ignoring the signals.
	authorize := b.updateAt(t, 3*time.Hour, workflows.Authorize, workflows.Command{By: "alice"})
	b.cancelAt(4 * time.Hour)

	b.env.ExecuteWorkflow(workflows.CRMIntegration, newInput(t, integration.KindCRM, workflows.Config{}))
	b.requireCanceled(t)

	require.Equal(t, int64(1), after.State.Version)
	require.Equal(t, integration.StatusSetupIncomplete, after.State.Status)
	require.Equal(t, integration.ReasonAwaitingAuthorization, after.State.Reason)
	require.Zero(t, after.PendingMessages)
	require.NoError(t, authorize.err)
	require.Equal(t, int64(2), authorize.snapshot.State.Version)
	require.Equal(t, []string{
		"v1 created /->setup_incomplete/awaiting_authorization",
		"v2 authorize setup_incomplete/awaiting_authorization->setup_incomplete/awaiting_finish",
	}, b.changes())
}

func TestUnitDeleteEndsWorkflow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		update bool
	}{{"signal", false}, {"update", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			cmd := workflows.Command{By: "alice", Note: "created by mistake"}
			var out *updateOutcome
			if tc.update {
				out = b.updateAt(t, time.Hour, workflows.Delete, cmd)
			} else {
				b.signalAt(time.Hour, workflows.Delete, cmd)
			}
			b.cancelAt(10 * time.Hour) // only reached if delete did not end the run

			b.env.ExecuteWorkflow(workflows.CRMIntegration, newInput(t, integration.KindCRM, workflows.Config{}))

			require.True(t, b.env.IsWorkflowCompleted())
			require.NoError(t, b.env.GetWorkflowError())
			var result integration.State
			require.NoError(t, b.env.GetWorkflowResult(&result))
			require.Equal(t, integration.StatusDeleted, result.Status)
			require.Equal(t, integration.ReasonNone, result.Reason)
			require.Equal(t, int64(2), result.Version)
			require.Equal(t, testStart.Add(time.Hour), result.UpdatedAt)
			require.True(t, testStart.Add(time.Hour).Equal(b.env.Now()), "the run ended when deleted, not at %v", b.env.Now())
			if tc.update {
				require.NoError(t, out.err)
				require.Equal(t, integration.StatusDeleted, out.snapshot.State.Status)
				require.Equal(t, int64(2), out.snapshot.ProjectedVersion)
			}
			require.Equal(t, []string{
				"v1 created /->setup_incomplete/awaiting_authorization",
				"v2 delete setup_incomplete/awaiting_authorization->deleted/",
			}, b.changes())
			p := b.projections()
			require.Equal(t, "created by mistake", p[1].Change.Note)
			require.Equal(t, []integration.EffectType{integration.EffectResolveAll}, b.effects())
		})
	}
}

// sendBatch delivers pause, resume, pause in one workflow task, the way a
// server hands over signals that arrived while the worker was busy.
func sendBatch(b *testBundle, d time.Duration) {
	b.at(d, func() {
		b.env.SignalWorkflowSkippingWorkflowTask(workflows.Pause, workflows.Command{By: "ops", Note: "1"})
		b.env.SignalWorkflowSkippingWorkflowTask(workflows.Resume, workflows.Command{By: "ops", Note: "2"})
		b.env.SignalWorkflow(workflows.Pause, workflows.Command{By: "ops", Note: "3"})
	})
}

func TestUnitSignalBatchAppliedInArrivalOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sendBatch(b, 10*time.Minute)
	var after workflows.Snapshot
	b.queryAt(t, 20*time.Minute, &after)
	b.cancelAt(30 * time.Minute)

	b.env.ExecuteWorkflow(workflows.CRMIntegration, activeCRMInput(t, workflows.Config{}))
	b.requireCanceled(t)

	require.Equal(t, integration.StatusPaused, after.State.Status)
	require.Equal(t, integration.ReasonManual, after.State.Reason)
	require.Equal(t, []string{
		"v4 pause active/->paused/manual",
		"v5 resume paused/manual->active/",
		"v6 pause active/->paused/manual",
	}, b.changes())
	var notes []string
	for _, p := range b.projections() {
		notes = append(notes, p.Change.Note)
	}
	require.Equal(t, []string{"1", "2", "3"}, notes)
	require.Len(t, b.validations(), 1, "resume validates once")
}

// TestUnitWithoutRuntimeRefusesToRun shows what a worker without the
// Runtime interceptor gets: not a silent reordering of the batch pause,
// resume, pause (channels would drain it as pause, pause, resume and leave
// the integration active), but a run that refuses to proceed, saying why.
func TestUnitWithoutRuntimeRefusesToRun(t *testing.T) {
	t.Parallel()
	b := setupWithInterceptors(t, &testBundle{}, nil)
	sendBatch(b, 10*time.Minute)

	b.env.ExecuteWorkflow(workflows.CRMIntegration, activeCRMInput(t, workflows.Config{}))

	require.True(t, b.env.IsWorkflowCompleted())
	err := b.env.GetWorkflowError()
	require.Error(t, err)
	require.Contains(t, err.Error(), "workflows.Runtime worker interceptor")
	require.Contains(t, err.Error(), "out of order")
	require.Empty(t, b.projections(), "nothing was applied")
}

// TestUnitUpdateBehindPendingSignal covers updates the validator cannot
// judge: a signal of the same batch is not decoded yet, so the update is
// accepted, queued behind the signal, and judged by the main loop against
// the state the signal left.
func TestUnitUpdateBehindPendingSignal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		command string
		// rejection is the main loop's reason, empty when applied.
		rejection string
		changes   []string
	}{
		{"pause rejected once paused", workflows.Pause, "already paused", []string{"v4 pause active/->paused/manual"}},
		{"resume allowed once paused", workflows.Resume, "", []string{"v4 pause active/->paused/manual", "v5 resume paused/manual->active/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			var out *updateOutcome
			b.at(10*time.Minute, func() {
				b.env.SignalWorkflowSkippingWorkflowTask(workflows.Pause, workflows.Command{By: "ops"})
				out = &updateOutcome{}
				b.env.UpdateWorkflow(tc.command, "", &testsuite.TestUpdateCallback{
					OnAccept: func() {},
					OnReject: func(err error) { out.done, out.rejected = true, err },
					OnComplete: func(result any, err error) {
						out.done, out.err = true, err
						if snap, ok := result.(workflows.Snapshot); ok {
							out.snapshot = snap
						}
					},
				}, workflows.Command{By: "alice"})
			})
			b.cancelAt(30 * time.Minute)

			b.env.ExecuteWorkflow(workflows.CRMIntegration, activeCRMInput(t, workflows.Config{}))
			b.requireCanceled(t)

			require.NotNil(t, out)
			require.True(t, out.done)
			require.NoError(t, out.rejected, "the validator lets the main loop judge behind a pending signal")
			if tc.rejection != "" {
				requireRejection(t, out.err, tc.rejection)
			} else {
				require.NoError(t, out.err)
				require.Equal(t, integration.StatusActive, out.snapshot.State.Status)
				require.Equal(t, int64(5), out.snapshot.State.Version)
			}
			require.Equal(t, tc.changes, b.changes())
			require.Equal(t, "ops", b.projections()[0].Change.Actor, "the signal went first")
		})
	}
}

func (b *testBundle) deliveries() []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Time(nil), b.delivered...)
}

func transient() activities.DeliverResult {
	return activities.DeliverResult{Failure: &activities.DeliverFailure{Class: activities.FailureTransient, Message: "crm transient (HTTP 503)"}}
}

// TestUnitSyncBackoffRateLimitAndAuth drives the delivery loop with a
// scripted Deliver: capped exponential backoff while failing, recovery,
// a Retry-After wait that is no failure, and an auth error that validates
// and pauses.
func TestUnitSyncBackoffRateLimitAndAuth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	in := activeCRMInput(t, workflows.Config{SyncInterval: 24 * time.Hour, SyncBackoffInitial: time.Second, SyncBackoffMax: 4 * time.Second})
	b.deliverScript = []activities.DeliverResult{
		transient(), transient(), transient(), transient(), // backoff 1s, 2s, 4s, 4s (capped)
		{Delivered: 100, More: true}, {Delivered: 5}, // a full batch goes on at once
		{Failure: &activities.DeliverFailure{Class: activities.FailureRateLimited, Message: "crm rate_limited (HTTP 429)", RetryAfter: 3 * time.Second}},
		{Delivered: 1},
		{Failure: &activities.DeliverFailure{Class: activities.FailureAuth, Message: "crm auth (HTTP 401)"}},
	}
	b.validateScript = []validateResult{{checks: expiredChecks()}}
	b.signalAt(time.Minute, workflows.SignalSync, workflows.Command{})
	b.signalAt(10*time.Minute, workflows.SignalSync, workflows.Command{})
	b.signalAt(20*time.Minute, workflows.SignalSync, workflows.Command{})
	var failing workflows.Snapshot
	b.queryAt(t, time.Minute+2*time.Second, &failing)
	b.cancelAt(time.Hour)

	b.env.ExecuteWorkflow(workflows.CRMIntegration, in)
	b.requireCanceled(t)

	calls := b.deliveries()
	require.Len(t, calls, 9)
	start := testStart.Add(time.Minute)
	var gaps []time.Duration
	for _, c := range calls[:6] {
		gaps = append(gaps, c.Sub(start))
	}
	require.Equal(t, []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 11 * time.Second, 11 * time.Second}, gaps,
		"retries back off 1s, 2s, 4s, capped at 4s; a full batch is followed at once")
	require.Equal(t, 3*time.Second, calls[7].Sub(calls[6]), "no call before Retry-After")

	require.Equal(t, integration.StatusFailedSync, failing.State.Status, "failing while retrying")
	require.Equal(t, "crm transient (HTTP 503)", failing.State.LastSyncError)
	require.NotNil(t, failing.State.NextAttemptAt)
	require.Equal(t, []string{
		"v4 sync-failed active/->failed_sync/sync_error",
		"v5 sync-failed failed_sync/sync_error->failed_sync/sync_error",
		"v6 sync-failed failed_sync/sync_error->failed_sync/sync_error",
		"v7 sync-failed failed_sync/sync_error->failed_sync/sync_error",
		"v8 sync-succeeded failed_sync/sync_error->active/",
		// The 429 changed nothing; the 401 validated and paused.
		"v9 validated active/->paused/expired_credentials",
	}, b.changes())
	require.Len(t, b.validations(), 1)
	require.Contains(t, b.effects(), integration.EffectNotifyPaused)
}

// TestUnitDeliverErrorIsAFailedSync: an activity error (credentials that
// do not decrypt) makes a failed sync that is retried, never the end of
// the workflow.
func TestUnitDeliverErrorIsAFailedSync(t *testing.T) {
	t.Parallel()
	b := setup(t)
	in := activeCRMInput(t, workflows.Config{SyncInterval: 24 * time.Hour, SyncBackoffInitial: time.Second})
	b.deliverErrs = map[int]error{0: temporal.NewNonRetryableApplicationError("deliver crm-1: cannot decrypt credentials version 1; check the encryption key", "CredentialDecrypt", nil)}
	b.deliverScript = []activities.DeliverResult{{}, {Delivered: 3}}
	b.signalAt(time.Minute, workflows.SignalSync, workflows.Command{})
	b.cancelAt(time.Hour)

	b.env.ExecuteWorkflow(workflows.CRMIntegration, in)
	b.requireCanceled(t)
	require.Len(t, b.deliveries(), 2, "retried after the backoff")
	require.Equal(t, []string{
		"v4 sync-failed active/->failed_sync/sync_error",
		"v5 sync-succeeded failed_sync/sync_error->active/",
	}, b.changes())
	p := b.projections()
	require.Equal(t, "delivery could not run: deliver crm-1: cannot decrypt credentials version 1; check the encryption key", p[0].State.LastSyncError)
}

// TestUnitOldRunUpgradesOnNudge: a CRM run that replays without the
// lead-sync marker does not deliver, but a nudge makes it continue as new
// into a run that does.
func TestUnitOldRunUpgradesOnNudge(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env.OnGetVersion("lead-sync", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	in := activeCRMInput(t, workflows.Config{SyncInterval: time.Minute})
	b.signalAt(10*time.Minute, workflows.SignalSync, workflows.Command{})
	b.cancelAt(time.Hour)

	b.env.ExecuteWorkflow(workflows.CRMIntegration, in)
	err := b.env.GetWorkflowError()
	require.True(t, workflow.IsContinueAsNewError(err), "want continue-as-new, got %v", err)
	require.Empty(t, b.deliveries(), "the old run never delivers")
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(err, &can))
	var next workflows.Input
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.True(t, next.SyncRequested, "the next run delivers at once")
	require.Equal(t, in.Run+1, next.Run)
}
