package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/integration"
)

// acts is only a typed handle on the activity methods; the worker registers
// a wired instance.
var acts *activities.Activities

// LeadIntegration owns the lifecycle of one lead integration
// (workflow ID lead:<id>).
func LeadIntegration(ctx workflow.Context, in Input) (integration.State, error) {
	return newRunner(in).run(ctx)
}

// CRMIntegration owns the lifecycle of one CRM integration
// (workflow ID crm:<id>).
func CRMIntegration(ctx workflow.Context, in Input) (integration.State, error) {
	return newRunner(in).run(ctx)
}

// runner is the one state struct of a run: the input it carries across
// continue-as-new, what the run read at its start (versions, the worker's
// runtime), the policy in force, and the message queue.
type runner struct {
	in Input
	// rt is what the worker's Runtime interceptor hands the run.
	rt *runtime
	// v is which changes of the workflow logic this run has.
	v versions
	// policy is the effective policy (the integration's overrides over the
	// worker's policy over the defaults), and rules the transition rules
	// under it; both are refreshed at every wait (see refreshPolicy).
	policy    integration.Policy
	policySet bool
	rules     integration.Rules

	queue    []message
	nextSeq  int
	outcomes map[int]outcome
	// signals are the command signal channels, in Messages order.
	signals []workflow.ReceiveChannel
	// nudges is the sync signal channel.
	nudges workflow.ReceiveChannel
	// upgrade asks for a continue-as-new so a run without lead delivery
	// gains it.
	upgrade bool
	// versionsRead is set once r.v holds the run's versions: update
	// handlers the SDK runs while they are registered (updates that came
	// with the first task) see the zero versions before that.
	versionsRead bool
}

func newRunner(in Input) *runner {
	return &runner{in: in, outcomes: map[int]outcome{}}
}

func (r *runner) snapshot() Snapshot {
	s := Snapshot{State: r.in.State, ProjectedVersion: r.in.ProjectedVersion, PendingMessages: len(r.queue), Run: r.in.Run}
	if r.in.State.ValidatesPeriodically() && !r.in.NextValidationAt.IsZero() {
		t := r.in.NextValidationAt
		s.NextValidationAt = &t
	}
	if r.syncing() {
		s.SyncRequested = r.in.SyncRequested
		if !r.in.RetryAt.IsZero() {
			t := r.in.RetryAt
			s.RetryAt = &t
		}
		if !r.in.NextSyncAt.IsZero() {
			t := r.in.NextSyncAt
			s.NextSyncAt = &t
		}
	}
	return s
}

func (r *runner) run(ctx workflow.Context) (integration.State, error) {
	logger := workflow.GetLogger(ctx)
	if err := r.register(ctx); err != nil {
		return r.in.State, err
	}
	r.v = readVersions(ctx, r.in.State.Kind)
	r.versionsRead = true
	r.refreshPolicy(ctx)
	if r.syncing() && r.in.NextSyncAt.IsZero() {
		// A run that gained syncing at this continue-as-new: deliver
		// whatever waited, which also starts the safety timer.
		r.in.SyncRequested = true
	}
	if err := r.upsertSearchAttributes(ctx); err != nil {
		return r.in.State, err
	}
	for {
		if err := r.projectIfBehind(ctx); err != nil {
			return r.in.State, err
		}
		r.drainSignals()
		if len(r.queue) > 0 {
			msg := r.queue[0]
			r.queue = r.queue[1:]
			if err := r.process(ctx, msg); err != nil {
				return r.in.State, err
			}
			continue
		}
		if r.in.State.Status == integration.StatusDeleted {
			idle, err := r.idle(ctx)
			if err != nil {
				return r.in.State, err
			}
			if idle {
				logger.Info("integration deleted; workflow ends", "integration", r.in.State.ID, "version", r.in.State.Version)
				return r.in.State, nil
			}
			continue
		}
		if r.shouldContinueAsNew(ctx) {
			idle, err := r.idle(ctx)
			if err != nil {
				return r.in.State, err
			}
			if idle {
				next := r.in
				next.Run++
				logger.Info("continuing as new", "integration", r.in.State.ID, "version", r.in.State.Version, "run", next.Run)
				return r.in.State, workflow.NewContinueAsNewError(ctx, WorkflowFor(r.in.State.Kind), next)
			}
			continue
		}
		// Commands go first; then one batch of deliveries at a time, so a
		// pause waits for one batch at most. Continue-as-new is checked
		// before, so a steady flow of leads cannot keep history growing:
		// a requested sync is carried into the next run.
		if r.syncDue(ctx) {
			if err := r.sync(ctx); err != nil {
				return r.in.State, err
			}
			continue
		}
		if err := r.wait(ctx); err != nil {
			return r.in.State, err
		}
	}
}

// shouldContinueAsNew reports whether history is long enough to start a
// fresh run.
func (r *runner) shouldContinueAsNew(ctx workflow.Context) bool {
	if r.upgrade {
		return true
	}
	info := workflow.GetInfo(ctx)
	if info.GetContinueAsNewSuggested() {
		return true
	}
	max := r.in.Config.MaxHistoryEvents
	return max > 0 && info.GetCurrentHistoryLength() >= max
}

// idle drains the signal channels into the queue and waits for running
// update handlers; it reports true only when nothing is left to process, so
// the run can end without losing a message. The error is the wait's: a
// cancelled run ends instead of spinning.
func (r *runner) idle(ctx workflow.Context) (bool, error) {
	r.drainSignals()
	if len(r.queue) > 0 {
		return false, nil
	}
	err := workflow.Await(ctx, func() bool {
		return len(r.queue) > 0 || r.signalsPending() || r.nudges.Len() > 0 || workflow.AllHandlersFinished(ctx)
	})
	if err != nil {
		return false, err
	}
	r.drainSignals()
	return len(r.queue) == 0 && workflow.AllHandlersFinished(ctx), nil
}
