package workflows

import (
	"slices"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"
)

// Signals of different names land on different channels, and the SDK gives
// a workflow no way to tell in which order signals of a batch arrived across
// channels: pause then resume could be read as resume then pause. The
// SignalOrder interceptor sees every signal synchronously, in history order,
// and records the names; the workflow then takes signals in that order.
// Workers must install it (worker.New does); the replayer too.

// arrivalsKey is the context key of a run's *arrivals.
type arrivalsKey struct{}

// arrivals is the order in which command signals arrived and are not yet
// taken.
type arrivals struct{ names []string }

func (a *arrivals) take() []string {
	names := a.names
	a.names = nil
	return names
}

// SignalOrder is the worker interceptor that records signal arrival order.
type SignalOrder struct {
	interceptor.WorkerInterceptorBase
}

// InterceptWorkflow wraps each workflow run's inbound calls.
func (*SignalOrder) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &signalOrderInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, arrivals: &arrivals{}}
}

type signalOrderInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	arrivals *arrivals
}

func (i *signalOrderInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	return i.Next.ExecuteWorkflow(workflow.WithValue(ctx, arrivalsKey{}, i.arrivals), in)
}

func (i *signalOrderInbound) HandleSignal(ctx workflow.Context, in *interceptor.HandleSignalInput) error {
	if slices.Contains(Messages, in.SignalName) {
		i.arrivals.names = append(i.arrivals.names, in.SignalName)
	}
	return i.Next.HandleSignal(ctx, in)
}

func arrivalsFrom(ctx workflow.Context) *arrivals {
	a, _ := ctx.Value(arrivalsKey{}).(*arrivals)
	return a
}
