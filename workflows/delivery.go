package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/integration"
)

// syncing reports whether this run delivers leads now.
func (r *runner) syncing() bool { return r.v.leadSync && r.in.State.Syncs() }

// canUpgrade reports whether this is a CRM run started before the lead
// flow, which a nudge hands over to a run that delivers. Before the
// versions are read it cannot tell, and says no: a new run would
// otherwise take its zero versions for an old run's and continue-as-new
// for nothing. (The nudge is not lost: SyncRequested stays set.)
func (r *runner) canUpgrade() bool {
	return r.versionsRead && !r.v.leadSync && r.in.State.Kind == integration.KindCRM && r.in.State.Status != integration.StatusDeleted
}

// syncDue reports whether a delivery round should run now.
func (r *runner) syncDue(ctx workflow.Context) bool {
	return r.syncing() && r.in.Timers.SyncDue(now(ctx))
}

// sync runs one delivery round (the Deliver activity) and feeds the
// outcome to the rules: success keeps (or makes) the integration active; a
// transient failure is failed_sync with a capped exponential backoff,
// retried forever; a rate limit waits the CRM's delay and is no failure;
// an auth or permission error validates at once, which pauses the
// integration if the credentials really are the problem. The timing is
// package integration's (State.AfterSync).
func (r *runner) sync(ctx workflow.Context) error {
	actx := workflow.WithActivityOptions(ctx, deliveryActivity)
	in := activities.DeliverInput{IntegrationID: r.in.State.ID, Provider: r.in.State.Provider}
	var res activities.DeliverResult
	// A nudge drained while the round runs (by an update handler) asks
	// for another round; it must survive the outcome.
	r.in.SyncRequested = false
	if err := workflow.ExecuteActivity(actx, acts.Deliver, in).Get(ctx, &res); err != nil {
		if isCanceled(err) {
			return err
		}
		// Our own side failed for good (e.g. credentials that do not
		// decrypt): a failed sync to retry with backoff and, if it
		// persists, to alert on, never the end of the workflow.
		res = activities.DeliverResult{Failure: &activities.DeliverFailure{
			Class: activities.FailureTransient, Message: "delivery could not run: " + errorMessage(err),
		}}
	}
	at := now(ctx)
	r.in.NextSyncAt = at.Add(r.policy.SyncInterval)
	result := integration.SyncResult{Outcome: integration.SyncDelivered, More: res.More}
	if f := res.Failure; f != nil {
		result = integration.SyncResult{Outcome: integration.SyncFailed, Error: f.Message}
		switch f.Class {
		case activities.FailureRateLimited:
			result = integration.SyncResult{Outcome: integration.SyncRateLimited, RetryAfter: f.RetryAfter}
		case activities.FailureAuth, activities.FailurePermission:
			checks, err := r.validate(ctx, 0)
			if err == nil {
				if err := r.apply(ctx, integration.Event{Type: integration.EventValidated, Actor: integration.ActorSystem, Checks: checks, At: now(ctx)}); err != nil {
					return err
				}
				if !r.in.State.Syncs() {
					// Paused by the validation; resuming requests a sync.
					return nil
				}
			} else if isCanceled(err) {
				return err
			}
			// Validation passed (or could not run) although the CRM refused
			// the delivery: a transient failure, retried with backoff.
		}
	}
	var ev *integration.Event
	r.in.Timers, ev = r.in.State.AfterSync(r.in.Timers, result, r.policy, at)
	if ev == nil {
		return nil
	}
	return r.apply(ctx, *ev)
}
