package integration

import "time"

// Timers is the timer state of a running integration, which the durable
// shell keeps (and carries across continue-as-new) and this package
// computes: when the next periodic validation is due, whether a delivery
// round is wanted and from when, and when the safety sync looks for
// pending leads without a nudge. The zero value schedules nothing.
type Timers struct {
	// NextValidationAt is when the periodic validation is due.
	NextValidationAt time.Time `json:"next_validation_at"`
	// SyncRequested says pending leads may be waiting: set by a nudge, by
	// activation, by a full batch, and after a failure or rate limit
	// (then gated by RetryAt).
	SyncRequested bool `json:"sync_requested,omitempty"`
	// RetryAt is the earliest next delivery attempt after a failure or a
	// rate limit.
	RetryAt time.Time `json:"retry_at"`
	// NextSyncAt is when the safety timer looks for pending leads.
	NextSyncAt time.Time `json:"next_sync_at"`
}

// MinRateLimitWait is the shortest wait after a rate limit, so a CRM that
// asks for no delay (or an unparseable one) is not called in a tight loop.
const MinRateLimitWait = time.Second

// Backoff is the delay before the next attempt after failures consecutive
// failed syncs (failures >= 1): p.SyncBackoffInitial doubling with each
// failure, capped at p.SyncBackoffMax. With the defaults: 1s, 2s, 4s, ...,
// 256s, then 5 minutes for good.
func Backoff(p Policy, failures int) time.Duration {
	d := p.SyncBackoffInitial
	for i := 1; i < failures && d < p.SyncBackoffMax; i++ {
		d *= 2
	}
	return min(d, p.SyncBackoffMax)
}

// ReminderAt is when an integration whose setup is still incomplete gets
// its setup reminder.
func (s State) ReminderAt(p Policy) time.Time { return s.CreatedAt.Add(p.ReminderAfter) }

// AbandonAt is when an integration whose setup is still incomplete is
// flagged abandoned.
func (s State) AbandonAt(p Policy) time.Time { return s.CreatedAt.Add(p.AbandonAfter) }

// Deadline returns the earliest time something is due for s under policy
// p, and false when nothing is scheduled (the run then waits for a
// message). syncing says whether the run delivers leads now (a CRM
// integration that syncs, in a run that has lead delivery).
func (s State) Deadline(t Timers, p Policy, syncing bool) (time.Time, bool) {
	var earliest time.Time
	consider := func(d time.Time) {
		if earliest.IsZero() || d.Before(earliest) {
			earliest = d
		}
	}
	if s.Status == StatusSetupIncomplete {
		if !s.ReminderSent {
			consider(s.ReminderAt(p))
		}
		if !s.Abandoned {
			consider(s.AbandonAt(p))
		}
	}
	if s.ValidatesPeriodically() && !t.NextValidationAt.IsZero() {
		consider(t.NextValidationAt)
	}
	if syncing {
		if t.SyncRequested {
			// A zero RetryAt is "at once": earlier than anything else.
			if t.RetryAt.IsZero() {
				return time.Time{}, true
			}
			consider(t.RetryAt)
		} else if !t.NextSyncAt.IsZero() {
			consider(t.NextSyncAt)
		}
	}
	return earliest, !earliest.IsZero()
}

// Due says which timers of an integration are due at a time.
type Due struct {
	// Reminder and Abandon are the setup timers; their events come from
	// TimerEvents.
	Reminder, Abandon bool
	// Validation is the periodic validation: the shell validates (see
	// Timers.ValidationRan) and feeds the outcome as EventValidated.
	Validation bool
}

// DueAt returns the timers (other than delivery, see SyncDue) due at at.
func (s State) DueAt(t Timers, p Policy, at time.Time) Due {
	var d Due
	if s.Status == StatusSetupIncomplete {
		d.Reminder = !s.ReminderSent && !at.Before(s.ReminderAt(p))
		d.Abandon = !s.Abandoned && !at.Before(s.AbandonAt(p))
	}
	// An integration that validates periodically but has no validation
	// scheduled (zero) validates whenever its timers fire, which schedules
	// the next one.
	d.Validation = s.ValidatesPeriodically() && !at.Before(t.NextValidationAt)
	return d
}

// TimerEvents returns the events of the setup timers in d, at at, for the
// rules to apply (validation needs the shell's outcome first).
func (d Due) TimerEvents(at time.Time) []Event {
	var events []Event
	if d.Reminder {
		events = append(events, Event{Type: EventReminderDue, Actor: ActorSystem, At: at})
	}
	if d.Abandon {
		events = append(events, Event{Type: EventAbandonDue, Actor: ActorSystem, At: at})
	}
	return events
}

// ActorSystem is the actor of the events the service itself causes:
// timers, validation, sync outcomes.
const ActorSystem = "system"

// ValidationRan returns t after a periodic validation started at at: the
// next one is one interval later.
func (t Timers) ValidationRan(p Policy, at time.Time) Timers {
	t.NextValidationAt = at.Add(p.ValidationInterval)
	return t
}

// SyncDue reports whether a delivery round should run at at, for a run
// that syncs.
func (t Timers) SyncDue(at time.Time) bool {
	if t.SyncRequested {
		return !at.Before(t.RetryAt)
	}
	return !t.NextSyncAt.IsZero() && !at.Before(t.NextSyncAt)
}

// Changed returns t after a state change from before to after at at: an
// integration that starts validating periodically (set up, or resumed)
// schedules its first validation one interval on, and one that starts
// syncing delivers whatever waited at once and starts the safety timer.
func (t Timers) Changed(before, after State, p Policy, at time.Time) Timers {
	if !before.ValidatesPeriodically() && after.ValidatesPeriodically() {
		t.NextValidationAt = at.Add(p.ValidationInterval)
	}
	if !before.Syncs() && after.Syncs() {
		t = t.SyncStarted(p, at)
	}
	return t
}

// SyncStarted returns t for a run that starts delivering at at: a round at
// once, the safety timer from now.
func (t Timers) SyncStarted(p Policy, at time.Time) Timers {
	t.SyncRequested, t.RetryAt = true, time.Time{}
	t.NextSyncAt = at.Add(p.SyncInterval)
	return t
}

// PolicyChanged returns t after the policy changed from old to p at at:
// a shorter validation interval or safety sync brings the next one forward
// to at most one new interval from now (a longer one applies from the next
// time the timer is set). The setup timers follow the policy by
// themselves: they are computed from the creation time.
func (t Timers) PolicyChanged(old, p Policy, at time.Time) Timers {
	if p.ValidationInterval < old.ValidationInterval && !t.NextValidationAt.IsZero() {
		if next := at.Add(p.ValidationInterval); next.Before(t.NextValidationAt) {
			t.NextValidationAt = next
		}
	}
	if p.SyncInterval < old.SyncInterval && !t.NextSyncAt.IsZero() {
		if next := at.Add(p.SyncInterval); next.Before(t.NextSyncAt) {
			t.NextSyncAt = next
		}
	}
	return t
}

// SyncOutcome is how a delivery round ended, as far as timing goes.
type SyncOutcome int

// The outcomes of a delivery round.
const (
	// SyncDelivered: the CRM answered (leads delivered or rejected).
	SyncDelivered SyncOutcome = iota
	// SyncRateLimited: the CRM asked to wait; not a failure.
	SyncRateLimited
	// SyncFailed: a transient failure (5xx, timeout, network, or an
	// auth/permission error that validation did not confirm).
	SyncFailed
)

// SyncResult is a delivery round's outcome as the shell reports it.
type SyncResult struct {
	Outcome SyncOutcome
	// More says the round stopped with leads possibly still pending
	// (SyncDelivered).
	More bool
	// RetryAfter is the CRM's requested delay (SyncRateLimited).
	RetryAfter time.Duration
	// Error describes the failure (SyncFailed): class, status and the CRM's
	// code, never lead data or internal detail.
	Error string
}

// AfterSync returns the timers after a delivery round of s that ended at
// at, and the event to feed the rules (none for a rate limit, which is not
// a failure). t is the timers as the round left them: a nudge that arrived
// during the round has set SyncRequested again, and it survives a success.
//
// A success asks for another round at once when more may be pending; a
// rate limit waits max(RetryAfter, MinRateLimitWait); the nth consecutive
// failure retries after Backoff(p, n) and is recorded with that next
// attempt. The safety timer restarts from at in every case.
func (s State) AfterSync(t Timers, res SyncResult, p Policy, at time.Time) (Timers, *Event) {
	t.NextSyncAt = at.Add(p.SyncInterval)
	switch res.Outcome {
	case SyncDelivered:
		t.SyncRequested, t.RetryAt = t.SyncRequested || res.More, time.Time{}
		return t, &Event{Type: EventSyncSucceeded, Actor: ActorSystem, At: at}
	case SyncRateLimited:
		t.SyncRequested, t.RetryAt = true, at.Add(max(res.RetryAfter, MinRateLimitWait))
		return t, nil
	}
	next := at.Add(Backoff(p, s.ConsecutiveFailures+1))
	t.SyncRequested, t.RetryAt = true, next
	return t, &Event{Type: EventSyncFailed, Actor: ActorSystem, Error: res.Error, NextAttempt: &next, At: at}
}
