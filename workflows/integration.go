package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/integration"
)

// acts is only a typed handle on the activity methods; the worker registers
// a wired instance.
var acts *activities.Activities

// LeadIntegration owns the lifecycle of one lead integration
// (workflow ID lead:<id>).
func LeadIntegration(ctx workflow.Context, in Input) (integration.State, error) {
	return newRunner(in).run(ctx)
}

// CRMIntegration owns the lifecycle of one CRM integration
// (workflow ID crm:<id>).
func CRMIntegration(ctx workflow.Context, in Input) (integration.State, error) {
	return newRunner(in).run(ctx)
}

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

// runner is the one state struct of a run.
type runner struct {
	in       Input
	cfg      Config
	queue    []message
	nextSeq  int
	outcomes map[int]outcome
	// signals are the command signal channels, in Messages order.
	signals []workflow.ReceiveChannel
	// arrivals is the order signals arrived in, from the SignalOrder
	// interceptor (nil without it: then channels drain in Messages order).
	arrivals *arrivals
	// nudges is the sync signal channel.
	nudges workflow.ReceiveChannel
	// syncs says this run delivers leads: CRM runs started after the lead
	// flow was released (GetVersion "lead-sync"); older histories replay
	// without it and gain it at their next continue-as-new.
	syncs bool
	// upgrade asks for a continue-as-new so a run without syncs gains it.
	upgrade bool
}

func newRunner(in Input) *runner {
	// Defaults are applied per run, not written into the input, so a new
	// default reaches running workflows at their next continue-as-new.
	return &runner{in: in, cfg: in.Config.WithDefaults(), outcomes: map[int]outcome{}}
}

func (r *runner) snapshot() Snapshot {
	s := Snapshot{State: r.in.State, ProjectedVersion: r.in.ProjectedVersion, PendingMessages: len(r.queue), Run: r.in.Run}
	if r.in.State.ValidatesPeriodically() && !r.in.NextValidationAt.IsZero() {
		t := r.in.NextValidationAt
		s.NextValidationAt = &t
	}
	if r.syncing() {
		s.SyncRequested = r.in.SyncRequested
		if !r.in.RetryAt.IsZero() {
			t := r.in.RetryAt
			s.RetryAt = &t
		}
		if !r.in.NextSyncAt.IsZero() {
			t := r.in.NextSyncAt
			s.NextSyncAt = &t
		}
	}
	return s
}

func (r *runner) run(ctx workflow.Context) (integration.State, error) {
	logger := workflow.GetLogger(ctx)
	if err := r.register(ctx); err != nil {
		return r.in.State, err
	}
	if r.in.State.Kind == integration.KindCRM {
		r.syncs = workflow.GetVersion(ctx, "lead-sync", workflow.DefaultVersion, 1) >= 1
	}
	if r.syncing() && r.in.NextSyncAt.IsZero() {
		// A run that gained syncing at this continue-as-new: deliver
		// whatever waited, which also starts the safety timer.
		r.in.SyncRequested = true
	}
	if err := r.upsertSearchAttributes(ctx); err != nil {
		return r.in.State, err
	}
	for {
		if err := r.projectIfBehind(ctx); err != nil {
			return r.in.State, err
		}
		r.drainSignals()
		if len(r.queue) > 0 {
			msg := r.queue[0]
			r.queue = r.queue[1:]
			if err := r.process(ctx, msg); err != nil {
				return r.in.State, err
			}
			continue
		}
		if r.in.State.Status == integration.StatusDeleted {
			if r.idle(ctx) {
				logger.Info("integration deleted; workflow ends", "integration", r.in.State.ID, "version", r.in.State.Version)
				return r.in.State, nil
			}
			continue
		}
		if r.shouldContinueAsNew(ctx) {
			if r.idle(ctx) {
				next := r.in
				next.Run++
				logger.Info("continuing as new", "integration", r.in.State.ID, "version", r.in.State.Version, "run", next.Run)
				return r.in.State, workflow.NewContinueAsNewError(ctx, WorkflowFor(r.in.State.Kind), next)
			}
			continue
		}
		// Commands go first; then one batch of deliveries at a time, so a
		// pause waits for one batch at most. Continue-as-new is checked
		// before, so a steady flow of leads cannot keep history growing:
		// a requested sync is carried into the next run.
		if r.syncDue(ctx) {
			if err := r.sync(ctx); err != nil {
				return r.in.State, err
			}
			continue
		}
		if err := r.wait(ctx); err != nil {
			return r.in.State, err
		}
	}
}

// register installs the signal channels, update handlers and the query.
func (r *runner) register(ctx workflow.Context) error {
	r.arrivals = arrivalsFrom(ctx)
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
		if t, err := state.Apply(r.eventFor(m, time.Time{}, nil)); err == nil {
			state = t.State
		}
	}
	_, err := state.Apply(r.eventFor(message{event: event, cmd: cmd}, time.Time{}, nil))
	return rejection(err)
}

func (r *runner) eventFor(m message, at time.Time, checks []integration.Check) integration.Event {
	return integration.Event{Type: m.event, Actor: m.cmd.By, Note: m.cmd.Note, Source: m.cmd.Source, Checks: checks, At: at}
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
		if _, err = r.in.State.Apply(r.eventFor(m, now(ctx), nil)); err == nil {
			checks, err = r.validate(ctx)
			if err != nil {
				err = fmt.Errorf("cannot %s %s: the CRM could not be reached to validate the credentials; try again later: %w", m.event, r.in.State.ID, err)
			}
		}
	}
	var t integration.Transition
	if err == nil {
		t, err = r.in.State.Apply(r.eventFor(m, now(ctx), checks))
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

// commit makes a transition the current state, projects it and carries out
// its effects.
func (r *runner) commit(ctx workflow.Context, t integration.Transition) error {
	if t.Changed {
		wasPeriodic, wasSyncing := r.in.State.ValidatesPeriodically(), r.in.State.Syncs()
		r.in.State = t.State
		r.in.LastChange = t.Change
		if !wasPeriodic && t.State.ValidatesPeriodically() {
			r.in.NextValidationAt = now(ctx).Add(r.cfg.ValidationInterval)
		}
		if !wasSyncing && t.State.Syncs() {
			// Activated or resumed: deliver what waited, at once.
			r.in.SyncRequested, r.in.RetryAt = true, time.Time{}
			r.in.NextSyncAt = now(ctx).Add(r.cfg.SyncInterval)
		}
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

func (r *runner) validate(ctx workflow.Context) ([]integration.Check, error) {
	actx := workflow.WithActivityOptions(ctx, validationActivity)
	var checks []integration.Check
	in := activities.ValidateInput{IntegrationID: r.in.State.ID, Provider: r.in.State.Provider}
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

// wait blocks until a message arrives or the next timer is due, then runs
// the timers that are due.
func (r *runner) wait(ctx workflow.Context) error {
	due, ok := r.nextDeadline()
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

// nextDeadline is the earliest timer of the current state.
func (r *runner) nextDeadline() (time.Time, bool) {
	var deadlines []time.Time
	s, cfg := r.in.State, r.cfg
	if s.Status == integration.StatusSetupIncomplete {
		if !s.ReminderSent {
			deadlines = append(deadlines, s.CreatedAt.Add(cfg.ReminderAfter))
		}
		if !s.Abandoned {
			deadlines = append(deadlines, s.CreatedAt.Add(cfg.AbandonAfter))
		}
	}
	if s.ValidatesPeriodically() && !r.in.NextValidationAt.IsZero() {
		deadlines = append(deadlines, r.in.NextValidationAt)
	}
	if r.syncing() {
		if r.in.SyncRequested {
			deadlines = append(deadlines, r.in.RetryAt)
		} else if !r.in.NextSyncAt.IsZero() {
			deadlines = append(deadlines, r.in.NextSyncAt)
		}
	}
	if len(deadlines) == 0 {
		return time.Time{}, false
	}
	earliest := deadlines[0]
	for _, d := range deadlines[1:] {
		if d.Before(earliest) {
			earliest = d
		}
	}
	return earliest, true
}

func (r *runner) fireTimers(ctx workflow.Context) error {
	at := now(ctx)
	s, cfg := r.in.State, r.cfg
	var events []integration.Event
	if s.Status == integration.StatusSetupIncomplete {
		if !s.ReminderSent && !at.Before(s.CreatedAt.Add(cfg.ReminderAfter)) {
			events = append(events, integration.Event{Type: integration.EventReminderDue, Actor: "system", At: at})
		}
		if !s.Abandoned && !at.Before(s.CreatedAt.Add(cfg.AbandonAfter)) {
			events = append(events, integration.Event{Type: integration.EventAbandonDue, Actor: "system", At: at})
		}
	}
	if s.ValidatesPeriodically() && !at.Before(r.in.NextValidationAt) {
		r.in.NextValidationAt = at.Add(cfg.ValidationInterval)
		checks, err := r.validate(ctx)
		if err != nil {
			if isCanceled(err) {
				return err
			}
			// The CRM being unreachable says nothing about the credentials:
			// keep the status and try at the next interval.
			workflow.GetLogger(ctx).Warn("periodic validation could not run", "integration", s.ID, "error", err.Error())
		} else {
			events = append(events, integration.Event{Type: integration.EventValidated, Actor: "system", Checks: checks, At: now(ctx)})
		}
	}
	for _, ev := range events {
		if err := r.apply(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

// shouldContinueAsNew reports whether history is long enough to start a
// fresh run.
func (r *runner) shouldContinueAsNew(ctx workflow.Context) bool {
	if r.upgrade {
		return true
	}
	info := workflow.GetInfo(ctx)
	if info.GetContinueAsNewSuggested() {
		return true
	}
	max := r.cfg.MaxHistoryEvents
	return max > 0 && info.GetCurrentHistoryLength() >= max
}

// idle drains the signal channels into the queue and waits for running
// update handlers; it reports true only when nothing is left to process, so
// the run can end without losing a message.
func (r *runner) idle(ctx workflow.Context) bool {
	r.drainSignals()
	if len(r.queue) > 0 {
		return false
	}
	_ = workflow.Await(ctx, func() bool {
		return len(r.queue) > 0 || r.signalsPending() || r.nudges.Len() > 0 || workflow.AllHandlersFinished(ctx)
	})
	r.drainSignals()
	return len(r.queue) == 0 && workflow.AllHandlersFinished(ctx)
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
// order.
func (r *runner) drainSignals() {
	if r.arrivals != nil {
		for _, name := range r.arrivals.take() {
			i := slices.Index(Messages, name)
			var cmd Command
			if r.signals[i].ReceiveAsync(&cmd) {
				r.enqueue(integration.EventType(name), cmd, false)
			}
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

var durableActivity = workflow.ActivityOptions{
	// Short: these are single database writes, and a worker that dies
	// while running one holds the workflow up to this long.
	StartToCloseTimeout: 10 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Minute,
		// Zero: retry until it succeeds; projections and notifications
		// must not be lost.
		MaximumAttempts: 0,
	},
}

var validationActivity = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    10 * time.Second,
		MaximumAttempts:    3,
	},
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

func isCanceled(err error) bool {
	var canceled *temporal.CanceledError
	return errors.As(err, &canceled)
}

// now is the workflow clock at the microsecond precision the databases
// keep, so a snapshot reads back exactly as the workflow returned it.
func now(ctx workflow.Context) time.Time {
	return workflow.Now(ctx).UTC().Truncate(time.Microsecond)
}

// canUpgrade reports whether this is a CRM run started before the lead
// flow, which a nudge hands over to a run that delivers.
func (r *runner) canUpgrade() bool {
	return !r.syncs && r.in.State.Kind == integration.KindCRM && r.in.State.Status != integration.StatusDeleted
}

// syncing reports whether this run delivers leads now.
func (r *runner) syncing() bool { return r.syncs && r.in.State.Syncs() }

// syncDue reports whether a delivery batch should run now.
func (r *runner) syncDue(ctx workflow.Context) bool {
	if !r.syncing() {
		return false
	}
	t := now(ctx)
	if r.in.SyncRequested {
		return !t.Before(r.in.RetryAt)
	}
	return !r.in.NextSyncAt.IsZero() && !t.Before(r.in.NextSyncAt)
}

// sync delivers one batch of pending leads and feeds the outcome to the
// rules: success keeps (or makes) the integration active; a transient
// failure is failed_sync with a capped exponential backoff, retried
// forever; a rate limit waits the CRM's delay and is no failure; an auth or
// permission error validates at once.
func (r *runner) sync(ctx workflow.Context) error {
	actx := workflow.WithActivityOptions(ctx, deliveryActivity)
	in := activities.DeliverInput{IntegrationID: r.in.State.ID, Provider: r.in.State.Provider}
	var res activities.DeliverResult
	// A nudge drained while the batch runs (by an update handler) asks
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
	r.in.NextSyncAt = at.Add(r.cfg.SyncInterval)
	if res.Failure == nil {
		r.in.SyncRequested, r.in.RetryAt = r.in.SyncRequested || res.More, time.Time{}
		return r.apply(ctx, integration.Event{Type: integration.EventSyncSucceeded, Actor: "system", At: at})
	}
	switch res.Failure.Class {
	case activities.FailureRateLimited:
		// Not a failure: wait as long as the CRM asked, then go on.
		r.in.SyncRequested, r.in.RetryAt = true, at.Add(max(res.Failure.RetryAfter, time.Second))
		return nil
	case activities.FailureAuth, activities.FailurePermission:
		checks, err := r.validate(ctx)
		if err == nil {
			if err := r.apply(ctx, integration.Event{Type: integration.EventValidated, Actor: "system", Checks: checks, At: now(ctx)}); err != nil {
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
		// the delivery: treat it as transient and retry with backoff.
	}
	next := at.Add(r.backoff(r.in.State.ConsecutiveFailures + 1))
	r.in.SyncRequested, r.in.RetryAt = true, next
	return r.apply(ctx, integration.Event{
		Type: integration.EventSyncFailed, Actor: "system", Error: res.Failure.Message,
		NextAttempt: &next, Attention: r.cfg.Attention, At: at,
	})
}

// backoff is the delay before attempt n+1 after n consecutive failures:
// initial * 2^(n-1), capped.
func (r *runner) backoff(failures int) time.Duration {
	d := r.cfg.SyncBackoffInitial
	for i := 1; i < failures && d < r.cfg.SyncBackoffMax; i++ {
		d *= 2
	}
	return min(d, r.cfg.SyncBackoffMax)
}

// apply runs an internal event through the rules and commits it.
func (r *runner) apply(ctx workflow.Context, ev integration.Event) error {
	t, err := r.in.State.Apply(ev)
	if err != nil {
		workflow.GetLogger(ctx).Warn("event not applied", "integration", r.in.State.ID, "event", ev.Type, "reason", err.Error())
		return nil
	}
	return r.commit(ctx, t)
}

var deliveryActivity = workflow.ActivityOptions{
	StartToCloseTimeout: 2 * time.Minute,
	// The activity heartbeats every second: a worker that dies mid-batch
	// is noticed in seconds and the batch retried elsewhere.
	HeartbeatTimeout: 5 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		// Errors of our own (the database) are retried here; the CRM's
		// errors come back as a result, for the rules to judge.
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Minute,
		MaximumAttempts:    0,
	},
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
