package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/acme/integrations/integration"
)

// policyMarker is the MutableSideEffect ID under which runs record the
// worker's policy.
const policyMarker = "worker-policy"

// refreshPolicy reads the policy in force: the integration's overrides
// over the worker's policy over the defaults. The worker's policy comes
// through a MutableSideEffect, which records a marker only when it
// changed, so replay sees the values the run saw. When the policy changes,
// timers that got shorter are brought forward (Timers.PolicyChanged).
// Runs from before changeWorkerPolicy use the defaults under the
// overrides, as they always did.
func (r *runner) refreshPolicy(ctx workflow.Context) {
	worker := integration.DefaultPolicy()
	if r.v.workerPolicy {
		encoded := workflow.MutableSideEffect(ctx, policyMarker,
			func(workflow.Context) any { return r.rt.policy() },
			func(a, b any) bool { return a.(integration.Policy) == b.(integration.Policy) })
		if err := encoded.Get(&worker); err != nil {
			// Only a payload this code cannot decode gets here: keep the
			// policy the run has rather than guess.
			workflow.GetLogger(ctx).Error("worker policy not readable; keeping the current one", "integration", r.in.State.ID, "error", err.Error())
			return
		}
	}
	p := r.in.Config.Overrides().Or(worker.Or(integration.DefaultPolicy()))
	if r.policySet && p != r.policy {
		r.in.Timers = r.in.Timers.PolicyChanged(r.policy, p, now(ctx))
	}
	r.policy, r.policySet = p, true
	r.rules = integration.Rules{Attention: p.Attention, Revision: r.v.rules}
}
