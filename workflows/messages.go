package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/integrations/integration"
)

// message is a command waiting for the main loop. Handlers only record
// messages; the loop processes them one at a time, in arrival order.
type message struct {
	seq    int
	event  integration.EventType
	cmd    Command
	update bool
}

// outcome is what a processed update returns to its caller.
type outcome struct {
	snapshot Snapshot
	err      error
}

// register installs the signal channels, update handlers and the query.
// A worker without the Runtime interceptor stops the run here, loudly (see
// runtimeFrom).
func (r *runner) register(ctx workflow.Context) error {
	r.rt = runtimeFrom(ctx)
	r.nudges = workflow.GetSignalChannel(ctx, SignalSync)
	for _, name := range Messages {
		event := integration.EventType(name)
		r.signals = append(r.signals, workflow.GetSignalChannel(ctx, name))
		err := workflow.SetUpdateHandlerWithOptions(ctx, name,
			func(ctx workflow.Context, cmd Command) (Snapshot, error) {
				// Signals delivered before this update go first.
				r.drainSignals()
				seq := r.enqueue(event, cmd, true)
				if err := workflow.Await(ctx, func() bool { _, done := r.outcomes[seq]; return done }); err != nil {
					return Snapshot{}, err
				}
				out := r.outcomes[seq]
				delete(r.outcomes, seq)
				return out.snapshot, out.err
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, cmd Command) error {
				return r.admit(event, cmd)
			}},
		)
		if err != nil {
			return fmt.Errorf("register update %s: %w", name, err)
		}
	}
	err := workflow.SetUpdateHandler(ctx, UpdateDescribe, func(ctx workflow.Context) (Snapshot, error) {
		r.drainSignals()
		err := workflow.Await(ctx, func() bool {
			return len(r.queue) == 0 && r.in.ProjectedVersion >= r.in.State.Version
		})
		return r.snapshot(), err
	})
	if err != nil {
		return fmt.Errorf("register update %s: %w", UpdateDescribe, err)
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Snapshot, error) { return r.snapshot(), nil }); err != nil {
		return fmt.Errorf("register query %s: %w", QueryStatus, err)
	}
	return nil
}

func (r *runner) enqueue(event integration.EventType, cmd Command, update bool) int {
	r.nextSeq++
	r.queue = append(r.queue, message{seq: r.nextSeq, event: event, cmd: cmd, update: update})
	return r.nextSeq
}

// admit is the update validator: it rejects a command the state will not
// allow once the messages queued before it are applied. Validation results
// are not known yet, so it assumes they pass; the main loop has the final
// word.
func (r *runner) admit(event integration.EventType, cmd Command) error {
	if r.signalsPending() {
		// Signals ahead of this update are not decoded yet (a validator
		// may not receive them); let the main loop judge in order.
		return nil
	}
	state := r.in.State
	for _, m := range r.queue {
		if t, err := state.ApplyRules(r.eventFor(m, time.Time{}, nil), r.rules); err == nil {
			state = t.State
		}
	}
	_, err := state.ApplyRules(r.eventFor(message{event: event, cmd: cmd}, time.Time{}, nil), r.rules)
	return rejection(err)
}

func (r *runner) eventFor(m message, at time.Time, checks []integration.Check) integration.Event {
	return integration.Event{Type: m.event, Actor: m.cmd.By, ClaimedBy: m.cmd.ClaimedBy, Note: m.cmd.Note, Source: m.cmd.Source, Checks: checks, At: at}
}

// needsValidation reports whether applying m needs a fresh validation first.
func (r *runner) needsValidation(m message) bool {
	return r.in.State.Kind == integration.KindCRM && (m.event == integration.EventAuthorize || m.event == integration.EventResume)
}

// process applies one message: validate first where the rules need the
// outcome, apply, then project and carry out the effects.
func (r *runner) process(ctx workflow.Context, m message) error {
	logger := workflow.GetLogger(ctx)
	var checks []integration.Check
	var err error
	if r.needsValidation(m) {
		// Ask the rules first, so a command the state rejects is not
		// validated against the CRM for nothing.
		if _, err = r.in.State.ApplyRules(r.eventFor(m, now(ctx), nil), r.rules); err == nil {
			candidate := 0
			if m.event == integration.EventAuthorize {
				candidate = m.cmd.CredentialVersion
			}
			checks, err = r.validate(ctx, candidate)
			if err != nil {
				err = fmt.Errorf("cannot %s %s: the CRM could not be reached to validate the credentials; try again later: %w", m.event, r.in.State.ID, err)
			}
		}
	}
	var t integration.Transition
	if err == nil {
		t, err = r.in.State.ApplyRules(r.eventFor(m, now(ctx), checks), r.rules)
	}
	if err == nil {
		err = r.commit(ctx, t)
		if isCanceled(err) {
			return err
		}
	}
	if err != nil && !m.update {
		// A rejected signal has no caller to tell; the reason goes to the
		// worker log (it holds no secrets or lead data).
		logger.Warn("signal not applied", "integration", r.in.State.ID, "command", m.event, "reason", err.Error())
	}
	if m.update {
		r.outcomes[m.seq] = outcome{snapshot: r.snapshot(), err: rejection(err)}
	}
	return nil
}

// signalsPending reports whether a command signal waits in a channel. (A
// waiting nudge does not hold back an update's validation.)
func (r *runner) signalsPending() bool {
	for _, ch := range r.signals {
		if ch.Len() > 0 {
			return true
		}
	}
	return false
}

// nudged drains the sync signal channel and reports whether it held any.
func (r *runner) nudged() bool {
	got := false
	for r.nudges.ReceiveAsync(nil) {
		got = true
	}
	return got
}

// drainSignals moves every received signal into the queue, in arrival
// order (which the Runtime interceptor records: channels alone would lose
// the order across signal names).
func (r *runner) drainSignals() {
	for _, name := range r.rt.arrivals.take() {
		i := slices.Index(Messages, name)
		var cmd Command
		if r.signals[i].ReceiveAsync(&cmd) {
			r.enqueue(integration.EventType(name), cmd, false)
		}
	}
	if r.nudged() {
		r.in.SyncRequested = true
		if r.canUpgrade() {
			// A run started before the lead flow was released is asked
			// to deliver: hand over to a run that can. (Histories of such
			// runs hold no nudges, so replaying them never comes here.)
			r.upgrade = true
		}
	}
	// Defensive: the interceptor records every command signal before the
	// SDK puts it in its channel, so nothing is left here; should anything
	// be, it is applied late rather than lost.
	for i, ch := range r.signals {
		for {
			var cmd Command
			if !ch.ReceiveAsync(&cmd) {
				break
			}
			r.enqueue(integration.EventType(Messages[i]), cmd, false)
		}
	}
}

// rejection turns a rules error into the application error clients
// recognise; other errors pass through.
func rejection(err error) error {
	if err == nil {
		return nil
	}
	var rej *integration.Rejection
	if errors.As(err, &rej) {
		return temporal.NewNonRetryableApplicationError(rej.Message, RejectionErrorType, nil)
	}
	return err
}
