package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/integration"
)

// commit makes a transition the current state, projects it and carries out
// its effects.
func (r *runner) commit(ctx workflow.Context, t integration.Transition) error {
	if t.Changed {
		before := r.in.State
		r.in.State = t.State
		r.in.LastChange = t.Change
		// Set up or resumed: schedule validation; activated or resumed:
		// deliver what waited, at once.
		r.in.Timers = r.in.Timers.Changed(before, t.State, r.policy, now(ctx))
		if err := r.projectIfBehind(ctx); err != nil {
			return err
		}
		if err := r.upsertSearchAttributes(ctx); err != nil {
			return err
		}
	}
	for _, e := range t.Effects {
		actx := workflow.WithActivityOptions(ctx, durableActivity)
		if err := workflow.ExecuteActivity(actx, acts.Notify, activities.NotifyInput{State: r.in.State, Effect: e}).Get(ctx, nil); err != nil {
			if isCanceled(err) {
				return err
			}
			// Notify retries until it succeeds; what comes back is a bug
			// (an effect it does not know). The state change stands.
			workflow.GetLogger(ctx).Error("effect not carried out", "integration", r.in.State.ID, "effect", e.Type, "error", err.Error())
		}
	}
	return nil
}

// apply runs an internal event (a timer, a validation, a sync outcome)
// through the rules and commits it.
func (r *runner) apply(ctx workflow.Context, ev integration.Event) error {
	t, err := r.in.State.ApplyRules(ev, r.rules)
	if err != nil {
		workflow.GetLogger(ctx).Warn("event not applied", "integration", r.in.State.ID, "event", ev.Type, "reason", err.Error())
		return nil
	}
	return r.commit(ctx, t)
}

// projectIfBehind writes the current state to the database unless it is
// there already. The activity retries until the database takes it, so a
// change is never lost.
func (r *runner) projectIfBehind(ctx workflow.Context) error {
	if r.in.ProjectedVersion >= r.in.State.Version {
		return nil
	}
	actx := workflow.WithActivityOptions(ctx, durableActivity)
	in := activities.ProjectInput{State: r.in.State, Change: r.in.LastChange}
	if err := workflow.ExecuteActivity(actx, acts.Project, in).Get(ctx, nil); err != nil {
		return fmt.Errorf("project %s version %d: %w", r.in.State.ID, r.in.State.Version, err)
	}
	r.in.ProjectedVersion = r.in.State.Version
	return nil
}

// validate runs the CRM's validation checks with the current credentials,
// or with candidate (a credentials version an authorize brought), which
// the activity promotes to current if every check passes.
func (r *runner) validate(ctx workflow.Context, candidate int) ([]integration.Check, error) {
	actx := workflow.WithActivityOptions(ctx, validationActivity)
	var checks []integration.Check
	in := activities.ValidateInput{IntegrationID: r.in.State.ID, Provider: r.in.State.Provider, CredentialVersion: candidate}
	err := workflow.ExecuteActivity(actx, acts.Validate, in).Get(ctx, &checks)
	return checks, err
}

// upsertSearchAttributes brings the run's search attributes in line with
// the state, only when they differ, so unchanged values add no events.
func (r *runner) upsertSearchAttributes(ctx workflow.Context) error {
	want := SearchAttributes(r.in.State)
	have := workflow.GetTypedSearchAttributes(ctx)
	var updates []temporal.SearchAttributeUpdate
	for _, key := range []temporal.SearchAttributeKeyKeyword{AttrKind, AttrStatus, AttrReason, AttrOrg, AttrProvider} {
		w, _ := want.GetKeyword(key)
		if h, ok := have.GetKeyword(key); !ok || h != w {
			updates = append(updates, key.ValueSet(w))
		}
	}
	w, _ := want.GetBool(AttrNeedsAttention)
	if h, ok := have.GetBool(AttrNeedsAttention); !ok || h != w {
		updates = append(updates, AttrNeedsAttention.ValueSet(w))
	}
	if len(updates) == 0 {
		return nil
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		return fmt.Errorf("upsert search attributes of %s: %w", r.in.State.ID, err)
	}
	return nil
}

func isCanceled(err error) bool {
	var canceled *temporal.CanceledError
	return errors.As(err, &canceled)
}

// now is the workflow clock at the microsecond precision the databases
// keep, so a snapshot reads back exactly as the workflow returned it.
func now(ctx workflow.Context) time.Time {
	return workflow.Now(ctx).UTC().Truncate(time.Microsecond)
}

// errorMessage is an activity error's own message, without the SDK's
// wrapping (activity type, IDs), for the status a customer sees.
func errorMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	return err.Error()
}
