package workflows

import (
	"fmt"
	"slices"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/integrations/integration"
)

// Runtime is the worker interceptor every worker, test environment and
// replayer running the integration workflows must install (worker.New
// does). It hands each run two things the workflow cannot get otherwise:
//
//   - the order in which command signals of different names arrived.
//     Signals land on one channel per name, and the SDK gives a workflow no
//     way to tell in which order signals of a batch arrived across
//     channels: pause then resume could be read as resume then pause. The
//     interceptor sees every signal synchronously, in history order, and
//     records the names; the workflow takes signals in that order.
//   - the worker's lifecycle policy (integration.Policy), which runs read
//     through a MutableSideEffect at every wait, so a worker restarted with
//     another policy changes every running integration that has no
//     override of its own.
//
// A run without it cannot keep design §3's promise of arrival order, so it
// refuses to run: it panics, which fails the workflow task (the SDK
// retries it, and the run continues once a correctly built worker picks it
// up) and shows the reason in the worker log and the Temporal UI.
type Runtime struct {
	interceptor.WorkerInterceptorBase
	// Policy returns the worker's policy; nil means the defaults. It is
	// called from workflow code (outside replay), so it must be cheap and
	// safe for concurrent use.
	Policy func() integration.Policy
}

// NewRuntime returns the interceptor for a worker whose policy is fixed.
func NewRuntime(policy integration.Policy) *Runtime {
	return &Runtime{Policy: func() integration.Policy { return policy }}
}

// runtimeKey is the context key of a run's *runtime.
type runtimeKey struct{}

// runtime is what the interceptor hands one run.
type runtime struct {
	arrivals arrivals
	policy   func() integration.Policy
}

// arrivals is the order in which command signals arrived and are not yet
// taken.
type arrivals struct{ names []string }

func (a *arrivals) take() []string {
	names := a.names
	a.names = nil
	return names
}

// InterceptWorkflow wraps each workflow run's inbound calls.
func (rt *Runtime) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	policy := rt.Policy
	if policy == nil {
		policy = integration.DefaultPolicy
	}
	return &runtimeInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, rt: &runtime{policy: policy}}
}

type runtimeInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	rt *runtime
}

func (i *runtimeInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	return i.Next.ExecuteWorkflow(workflow.WithValue(ctx, runtimeKey{}, i.rt), in)
}

func (i *runtimeInbound) HandleSignal(ctx workflow.Context, in *interceptor.HandleSignalInput) error {
	if slices.Contains(Messages, in.SignalName) {
		i.rt.arrivals.names = append(i.rt.arrivals.names, in.SignalName)
	}
	return i.Next.HandleSignal(ctx, in)
}

// ErrNoRuntime is the panic of a run on a worker without the Runtime
// interceptor.
var ErrNoRuntime = fmt.Errorf("integration workflows need the workflows.Runtime worker interceptor " +
	"(worker.New installs it; test environments and replayers must add it to their worker options): " +
	"without it signals of different names could be applied out of order, so this run refuses to continue")

// runtimeFrom returns the run's runtime, and panics with ErrNoRuntime
// without one (see Runtime).
func runtimeFrom(ctx workflow.Context) *runtime {
	rt, _ := ctx.Value(runtimeKey{}).(*runtime)
	if rt == nil {
		workflow.GetLogger(ctx).Error(ErrNoRuntime.Error())
		panic(ErrNoRuntime)
	}
	return rt
}
