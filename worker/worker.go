// Package worker builds a Temporal worker with the integration workflows and
// their activities registered.
package worker

import (
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/workflows"
)

// New returns a worker for c polling taskQueue (workflows.TaskQueue when
// empty) with both workflows and the wired activities registered. Start it
// with Run or Start.
func New(c client.Client, taskQueue string, a *activities.Activities, opts sdkworker.Options) sdkworker.Worker {
	if taskQueue == "" {
		taskQueue = workflows.TaskQueue
	}
	// Signal order across command names depends on this interceptor.
	opts.Interceptors = append(opts.Interceptors, &workflows.SignalOrder{})
	w := sdkworker.New(c, taskQueue, opts)
	Register(w, a)
	return w
}

// Register adds the workflows and activities to any registry, such as a
// worker or a test environment.
func Register(r sdkworker.Registry, a *activities.Activities) {
	r.RegisterWorkflow(workflows.LeadIntegration)
	r.RegisterWorkflow(workflows.CRMIntegration)
	r.RegisterActivity(a)
}
