package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/acme/integrations/integration"
)

// wait blocks until a message arrives or the next timer is due, then runs
// the timers that are due. What is due when is package integration's
// (State.Deadline, State.DueAt); the policy is read afresh first, so a
// changed worker policy reaches the run at its next wait.
func (r *runner) wait(ctx workflow.Context) error {
	r.refreshPolicy(ctx)
	due, ok := r.in.State.Deadline(r.in.Timers, r.policy, r.syncing())
	hasMessage := func() bool {
		// A nudge wakes a syncing run, and an old run that must upgrade.
		return len(r.queue) > 0 || r.signalsPending() || (r.nudges.Len() > 0 && (r.syncing() || r.canUpgrade()))
	}
	if !ok {
		return workflow.Await(ctx, hasMessage)
	}
	if d := due.Sub(now(ctx)); d > 0 {
		arrived, err := workflow.AwaitWithTimeout(ctx, d, hasMessage)
		if err != nil || arrived {
			return err
		}
	}
	return r.fireTimers(ctx)
}

// fireTimers carries out the timers due now: the setup reminder and the
// abandoned flag, and the periodic validation (whose outcome the rules
// judge). An unreachable CRM says nothing about the credentials: the
// status stays and the next validation comes one interval later.
func (r *runner) fireTimers(ctx workflow.Context) error {
	at := now(ctx)
	due := r.in.State.DueAt(r.in.Timers, r.policy, at)
	events := due.TimerEvents(at)
	if due.Validation {
		r.in.Timers = r.in.Timers.ValidationRan(r.policy, at)
		checks, err := r.validate(ctx, 0)
		if err != nil {
			if isCanceled(err) {
				return err
			}
			workflow.GetLogger(ctx).Warn("periodic validation could not run", "integration", r.in.State.ID, "error", err.Error())
		} else {
			events = append(events, integration.Event{Type: integration.EventValidated, Actor: integration.ActorSystem, Checks: checks, At: now(ctx)})
		}
	}
	for _, ev := range events {
		if err := r.apply(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}
