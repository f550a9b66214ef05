package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/acme/integrations/integration"
)

// Every change to the workflow logic after release is gated here, with its
// own change ID, read once at the start of each run (in this order, for
// determinism): a run recorded before a change replays without it, and
// gains it at its next continue-as-new. Histories in testdata/ cover each
// generation.
const (
	// changeLeadSync (v1): CRM runs deliver leads (the Deliver activity,
	// the sync nudge and the safety timer). CRM runs only.
	changeLeadSync = "lead-sync"
	// changeWorkerPolicy (v1): the timers follow the worker's policy, read
	// through a MutableSideEffect at every wait, under the integration's
	// own overrides; before it, the defaults under the overrides, fixed per
	// run.
	changeWorkerPolicy = "worker-policy"
	// changeTruthfulStatus (v1): the rules at
	// integration.RevisionTruthfulStatus (failed_sync after a pause while
	// failing; delete resolves every notification).
	changeTruthfulStatus = "truthful-status"
	// changeSafeReauthorization (v1): the rules at
	// integration.RevisionSafeReauthorization (new credentials that fail
	// validation are refused and change nothing).
	changeSafeReauthorization = "safe-reauthorization"
)

// versions says which changes a run has.
type versions struct {
	leadSync     bool
	workerPolicy bool
	rules        integration.Revision
}

// readVersions reads the run's versions; it must be called at the same
// point of every run.
func readVersions(ctx workflow.Context, kind integration.Kind) versions {
	var v versions
	if kind == integration.KindCRM {
		v.leadSync = workflow.GetVersion(ctx, changeLeadSync, workflow.DefaultVersion, 1) >= 1
	}
	v.workerPolicy = workflow.GetVersion(ctx, changeWorkerPolicy, workflow.DefaultVersion, 1) >= 1
	v.rules = integration.RevisionOriginal
	if workflow.GetVersion(ctx, changeTruthfulStatus, workflow.DefaultVersion, 1) >= 1 {
		v.rules = integration.RevisionTruthfulStatus
	}
	if workflow.GetVersion(ctx, changeSafeReauthorization, workflow.DefaultVersion, 1) >= 1 {
		v.rules = integration.RevisionSafeReauthorization
	}
	return v
}
