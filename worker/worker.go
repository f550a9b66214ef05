// Package worker builds a Temporal worker with the integration workflows and
// their activities registered.
package worker

import (
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/workflows"
)

// New returns a worker for c polling taskQueue (workflows.TaskQueue when
// empty) with both workflows and the wired activities registered; policy is
// the service-wide lifecycle policy the workflows follow where an
// integration has no override. Start it with Run or Start.
func New(c client.Client, taskQueue string, a *activities.Activities, policy integration.Policy, opts sdkworker.Options) sdkworker.Worker {
	if taskQueue == "" {
		taskQueue = workflows.TaskQueue
	}
	// Signal order and the worker's policy reach the workflows through
	// this interceptor; a run without it refuses to proceed.
	opts.Interceptors = append(opts.Interceptors, workflows.NewRuntime(policy))
	w := sdkworker.New(c, taskQueue, opts)
	Register(w, a)
	return w
}

// Register adds the workflows and activities to any registry, such as a
// worker or a test environment (which must also install the
// workflows.Runtime interceptor).
func Register(r sdkworker.Registry, a *activities.Activities) {
	r.RegisterWorkflow(workflows.LeadIntegration)
	r.RegisterWorkflow(workflows.CRMIntegration)
	r.RegisterActivity(a)
}
