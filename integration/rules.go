package integration

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// EventType names what happened to an integration. User commands use the
// same names as the CLI verbs and the workflow's signals and updates.
type EventType string

// The events the rules understand.
const (
	EventCreated       EventType = "created"
	EventLeadReceived  EventType = "lead-received"
	EventCompleteSetup EventType = "complete-setup"
	EventAuthorize     EventType = "authorize"
	EventPause         EventType = "pause"
	EventResume        EventType = "resume"
	EventDelete        EventType = "delete"
	EventValidated     EventType = "validated"
	EventReminderDue   EventType = "setup-reminder-due"
	EventAbandonDue    EventType = "setup-abandon-due"
	EventSyncSucceeded EventType = "sync-succeeded"
	EventSyncFailed    EventType = "sync-failed"
)

// Commands are the events a person or script sends.
var Commands = []EventType{EventCompleteSetup, EventAuthorize, EventPause, EventResume, EventDelete}

// Event is one input to the rules.
type Event struct {
	Type  EventType `json:"type"`
	Actor string    `json:"actor,omitempty"`
	// ClaimedBy is who the caller said acts (an API request's "by"), kept
	// beside Actor, which the API sets to the caller's API key's name. The
	// rules never read it: it is a record only.
	ClaimedBy string `json:"claimed_by,omitempty"`
	Note      string `json:"note,omitempty"`
	// Source is the source value of a received lead.
	Source string `json:"source,omitempty"`
	// Checks is the validation result that authorize, resume and validated
	// carry: the shell validates first, then feeds the outcome here.
	Checks []Check `json:"checks,omitempty"`
	// Error describes a failed sync (sync-failed): status code and class,
	// never lead data.
	Error string `json:"error,omitempty"`
	// NextAttempt is when a failed sync is retried (sync-failed).
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	At          time.Time  `json:"at"`
}

// AttentionThreshold says when failing syncs need a human: at least
// Failures consecutive failures over at least After.
type AttentionThreshold struct {
	Failures int           `json:"failures,omitempty"`
	After    time.Duration `json:"after,omitempty"`
}

// Default attention threshold (design §2).
const (
	DefaultAttentionFailures = 5
	DefaultAttentionAfter    = 6 * time.Hour
)

// Reached reports whether failures consecutive failed syncs over failingFor
// need a human: at least Failures of them over at least After (both
// boundaries included).
func (a AttentionThreshold) Reached(failures int, failingFor time.Duration) bool {
	return failures >= a.Failures && failingFor >= a.After
}

// Revision numbers the changes made to the rules after release. A workflow
// run applies the revision it started with (the shell gates it with
// workflow.GetVersion), so histories recorded under older rules replay
// with those rules.
type Revision int

// The revisions of the rules.
const (
	// RevisionOriginal is the rules as first released.
	RevisionOriginal Revision = 0
	// RevisionTruthfulStatus: a CRM integration that becomes active again
	// (resumed, or its validation passing after a pause) while its last
	// sync failed shows failed_sync with its counters, retried at once,
	// until a sync succeeds, instead of a healthy active; and delete
	// resolves every open notification and alert of the integration (the
	// support alert included), not only pause notices.
	RevisionTruthfulStatus Revision = 1
	// RevisionSafeReauthorization: new credentials for a set-up CRM
	// integration that fail validation are refused (the authorize is a
	// rejection naming the failed checks): the integration keeps its
	// current credentials and its status, instead of being paused by a
	// mistyped key. (The shell only promotes credentials that passed.)
	RevisionSafeReauthorization Revision = 2
	// LatestRevision is the revision new runs use.
	LatestRevision = RevisionSafeReauthorization
)

// Rules are the transition rules at one revision, with the policy
// threshold they apply.
type Rules struct {
	// Attention is when a persisting failed sync needs a human.
	Attention AttentionThreshold
	// Revision selects the rule changes in force.
	Revision Revision
}

// CurrentRules are the latest rules under policy p (its zero fields
// taking the defaults).
func CurrentRules(p Policy) Rules {
	return Rules{Attention: p.Or(DefaultPolicy()).Attention, Revision: LatestRevision}
}

// EffectType names a side effect the shell carries out after a transition.
type EffectType string

// The effects.
const (
	// EffectRequestRevision asks the lead partner to fix the source value.
	EffectRequestRevision EffectType = "request-revision"
	// EffectNotifyPaused tells the org (email and in-app) that validation paused the integration.
	EffectNotifyPaused EffectType = "notify-paused"
	// EffectResolvePaused resolves the open pause notifications.
	EffectResolvePaused EffectType = "resolve-paused"
	// EffectResolveAll resolves every open notification and alert of the
	// integration (on delete).
	EffectResolveAll EffectType = "resolve-all"
	// EffectSetupReminder reminds the org that setup is still incomplete.
	EffectSetupReminder EffectType = "setup-reminder"
	// EffectAbandoned tells support that setup was abandoned.
	EffectAbandoned EffectType = "setup-abandoned"
	// EffectNeedsAttention raises one support alert for a persisting failed sync.
	EffectNeedsAttention EffectType = "needs-attention"
	// EffectAttentionResolved resolves that alert after the next success.
	EffectAttentionResolved EffectType = "attention-resolved"
)

// Effect is a side effect of a transition.
type Effect struct {
	Type   EffectType `json:"type"`
	Source string     `json:"source,omitempty"`
	Reason Reason     `json:"reason,omitempty"`
	Checks []Check    `json:"checks,omitempty"`
}

// Change is the record of one state change: a row of integration_events.
type Change struct {
	IntegrationID string    `json:"integration_id"`
	Version       int64     `json:"version"`
	Event         EventType `json:"event"`
	FromStatus    Status    `json:"from_status"`
	FromReason    Reason    `json:"from_reason"`
	ToStatus      Status    `json:"to_status"`
	ToReason      Reason    `json:"to_reason"`
	Actor         string    `json:"actor,omitempty"`
	// ClaimedBy is the actor the caller claimed (see Event.ClaimedBy).
	ClaimedBy string    `json:"claimed_by,omitempty"`
	Note      string    `json:"note,omitempty"`
	At        time.Time `json:"at"`
}

// Transition is the outcome of applying an event.
type Transition struct {
	State   State
	Changed bool
	Change  Change
	Effects []Effect
}

// Rejection is returned when the state does not allow a command. Its
// message is one line that says why and what to do instead.
type Rejection struct {
	Command EventType
	Message string
}

func (r *Rejection) Error() string { return r.Message }

// IsRejection reports whether err is (or wraps) a Rejection.
func IsRejection(err error) bool {
	var r *Rejection
	return errors.As(err, &r)
}

func reject(cmd EventType, format string, args ...any) error {
	return &Rejection{Command: cmd, Message: fmt.Sprintf(format, args...)}
}

// Created returns the Change that records the creation of s.
func Created(s State, actor string) Change {
	return Change{
		IntegrationID: s.ID, Version: s.Version, Event: EventCreated,
		ToStatus: s.Status, ToReason: s.Reason, Actor: actor, At: s.CreatedAt,
	}
}

// Apply runs the current rules with the default policy: ApplyRules(ev,
// CurrentRules(DefaultPolicy())).
func (s State) Apply(ev Event) (Transition, error) {
	return s.ApplyRules(ev, CurrentRules(DefaultPolicy()))
}

// ApplyRules runs the rules of design §2: it returns the state after ev,
// whether anything visible changed (then the version is bumped and Change
// describes it), and the effects to carry out. A *Rejection means the
// state does not allow ev; nothing changes then. ApplyRules never mutates
// s.
func (s State) ApplyRules(ev Event, r Rules) (Transition, error) {
	if s.Status == StatusDeleted {
		return Transition{State: s}, reject(ev.Type, "integration %s is deleted: create a new one", s.ID)
	}
	next := s.clone()
	var effects []Effect
	var err error
	switch s.Kind {
	case KindLead:
		effects, err = next.applyLead(ev, r)
	case KindCRM:
		effects, err = next.applyCRM(ev, r)
	default:
		err = fmt.Errorf("integration %s has unknown kind %q", s.ID, s.Kind)
	}
	if err != nil {
		return Transition{State: s}, err
	}
	if next.sameAs(s) {
		return Transition{State: s, Effects: effects}, nil
	}
	next.Version = s.Version + 1
	next.UpdatedAt = ev.At
	return Transition{
		State:   next,
		Changed: true,
		Effects: effects,
		Change: Change{
			IntegrationID: s.ID, Version: next.Version, Event: ev.Type,
			FromStatus: s.Status, FromReason: s.Reason, ToStatus: next.Status, ToReason: next.Reason,
			Actor: ev.Actor, ClaimedBy: ev.ClaimedBy, Note: ev.Note, At: ev.At,
		},
	}, nil
}

// applyShared handles the events both kinds treat alike; handled is false
// for the rest.
func (s *State) applyShared(ev Event, r Rules) (effects []Effect, handled bool) {
	switch ev.Type {
	case EventDelete:
		s.Status, s.Reason = StatusDeleted, ReasonNone
		// Whatever was open about this integration is moot now.
		switch {
		case r.Revision >= RevisionTruthfulStatus:
			effects = append(effects, Effect{Type: EffectResolveAll})
		case s.Kind == KindCRM:
			effects = append(effects, Effect{Type: EffectResolvePaused})
		}
		return effects, true
	case EventReminderDue:
		if s.Status == StatusSetupIncomplete && !s.ReminderSent {
			s.ReminderSent = true
			effects = append(effects, Effect{Type: EffectSetupReminder, Reason: s.Reason})
		}
		return effects, true
	case EventAbandonDue:
		if s.Status == StatusSetupIncomplete && !s.Abandoned {
			s.Abandoned = true
			effects = append(effects, Effect{Type: EffectAbandoned, Reason: s.Reason})
		}
		return effects, true
	}
	return nil, false
}

func (s *State) activate() {
	s.Status, s.Reason = StatusActive, ReasonNone
	s.Abandoned = false
}

// reactivate brings a set-up CRM integration back from a pause. Under
// RevisionTruthfulStatus one whose last sync failed shows failed_sync with
// its counters, due for a retry at once (the shell delivers on becoming
// syncing), until a sync succeeds: a healthy active would not be true.
func (s *State) reactivate(at time.Time, r Rules) {
	s.activate()
	if r.Revision >= RevisionTruthfulStatus && s.ConsecutiveFailures > 0 {
		s.Status, s.Reason = StatusFailedSync, ReasonSyncError
		next := at
		s.NextAttemptAt = &next
	}
}

func (s *State) applyLead(ev Event, r Rules) ([]Effect, error) {
	if effects, ok := s.applyShared(ev, r); ok {
		return effects, nil
	}
	switch ev.Type {
	case EventLeadReceived:
		if ev.Source == "" || len(ev.Source) > MaxSourceLength {
			return nil, reject(ev.Type, "lead source must be 1-%d bytes; ask the partner to send a source value within that", MaxSourceLength)
		}
		return s.leadReceived(ev), nil
	case EventCompleteSetup:
		switch {
		case s.Status == StatusActive:
			return nil, reject(ev.Type, "setup of %s is already complete: the integration is active", s.ID)
		case s.Reason == ReasonAwaitingSetupCompletion:
			s.markStep(StepSetupCompleted, true, ev.At)
			s.activate()
			return nil, nil
		case s.Reason == ReasonAwaitingTestLead:
			return nil, reject(ev.Type, "cannot complete setup of %s: no test lead received yet; ask the partner to send one with source exactly %q", s.ID, s.ExpectedSource)
		default:
			return nil, reject(ev.Type, "cannot complete setup of %s: expected source %q but the last test lead had %q; ask the partner to revise the source to exactly %q", s.ID, s.ExpectedSource, s.LastReceivedSource, s.ExpectedSource)
		}
	case EventAuthorize, EventPause, EventResume:
		return nil, reject(ev.Type, "lead integration %s cannot %s: only CRM integrations have credentials and pauses; delete it to stop receiving leads", s.ID, ev.Type)
	case EventValidated:
		return nil, nil
	}
	return nil, reject(ev.Type, "unknown command %q for lead integration %s", ev.Type, s.ID)
}

func (s *State) leadReceived(ev Event) []Effect {
	// Active is sticky: later leads, whatever their source, change nothing.
	if s.Status != StatusSetupIncomplete {
		return nil
	}
	s.LastReceivedSource = ev.Source
	// Exact match: byte for byte, case-sensitive, no trimming.
	if ev.Source == s.ExpectedSource {
		s.markStep(StepTestLeadReceived, true, ev.At)
		s.Reason = ReasonAwaitingSetupCompletion
		return nil
	}
	if s.Reason == ReasonAwaitingSetupCompletion {
		// A matching test lead already arrived; a stray lead does not undo it.
		return nil
	}
	s.Reason = ReasonSourceMismatch
	if slices.Contains(s.RevisionRequested, ev.Source) || len(s.RevisionRequested) >= maxRevisionRequests {
		return nil
	}
	s.RevisionRequested = append(s.RevisionRequested, ev.Source)
	return []Effect{{Type: EffectRequestRevision, Source: ev.Source}}
}

func (s *State) applyCRM(ev Event, r Rules) ([]Effect, error) {
	if effects, ok := s.applyShared(ev, r); ok {
		return effects, nil
	}
	switch ev.Type {
	case EventAuthorize:
		if _, failed := pauseReason(ev.Checks); failed && s.Status != StatusSetupIncomplete && r.Revision >= RevisionSafeReauthorization {
			return nil, reject(ev.Type, "the new credentials for %s failed validation (%s); it keeps its current credentials and status %s: fix them and authorize again",
				s.ID, describeChecks(ev.Checks), s.Status)
		}
		return s.authorize(ev, r), nil
	case EventCompleteSetup:
		switch {
		case s.Status != StatusSetupIncomplete:
			return nil, reject(ev.Type, "setup of %s is already complete (status %s)", s.ID, s.Status)
		case s.Reason == ReasonAwaitingFinish:
			s.markStep(StepFinished, true, ev.At)
			s.activate()
			return nil, nil
		case s.Reason == ReasonNeedsInformation:
			return nil, reject(ev.Type, "cannot finish setup of %s: validation failed (%s); fix it and authorize again", s.ID, describeFailures(s.Validation))
		default:
			return nil, reject(ev.Type, "cannot finish setup of %s: it is not authorized yet; run `integrations authorize %s --credentials-file FILE` first", s.ID, s.ID)
		}
	case EventPause:
		switch {
		case s.Status == StatusSetupIncomplete:
			return nil, reject(ev.Type, "cannot pause %s: setup is incomplete; finish setup first, or delete it if it is not wanted", s.ID)
		case s.Status == StatusPaused && s.Reason == ReasonManual:
			return nil, reject(ev.Type, "%s is already paused", s.ID)
		}
		s.Status, s.Reason = StatusPaused, ReasonManual
		return nil, nil
	case EventResume:
		switch {
		case s.PausedByValidation():
			// Resume is for a manual pause (design §2); the next
			// validation that passes resumes this one, and an authorize
			// validates at once, which is what a customer who just fixed
			// the cause wants to know.
			fix := strings.TrimRight(remediation(s.Validation), ". ")
			if !strings.Contains(fix, "resumes by itself") {
				fix += "; it resumes by itself at the next validation that passes"
			}
			return nil, reject(ev.Type, "%s was paused by validation (%s), not by hand, so resume does not apply: %s; authorizing it again validates at once", s.ID, s.Reason, fix)
		case s.Status != StatusPaused:
			return nil, reject(ev.Type, "%s is not paused (status %s)", s.ID, s.Status)
		}
		recovered := s.recordValidation(ev)
		if reason, failed := pauseReason(ev.Checks); failed {
			s.Reason = reason
			return []Effect{{Type: EffectNotifyPaused, Reason: reason, Checks: ev.Checks}}, nil
		}
		s.reactivate(ev.At, r)
		return resolveIf(recovered), nil
	case EventValidated:
		return s.judge(ev, s.recordValidation(ev), r), nil
	case EventSyncSucceeded:
		return s.syncSucceeded(), nil
	case EventSyncFailed:
		return s.syncFailed(ev, r), nil
	case EventLeadReceived:
		return nil, reject(ev.Type, "CRM integration %s does not receive leads from partners", s.ID)
	}
	return nil, reject(ev.Type, "unknown command %q for CRM integration %s", ev.Type, s.ID)
}

func (s *State) authorize(ev Event, r Rules) []Effect {
	recovered := s.recordValidation(ev)
	_, failed := pauseReason(ev.Checks)
	s.markStep(StepAuthorized, !failed, ev.At)
	if s.Status == StatusSetupIncomplete {
		if failed {
			s.Reason = ReasonNeedsInformation
		} else {
			s.Reason = ReasonAwaitingFinish
		}
		return nil
	}
	// Once set up, fresh credentials are judged like any validation.
	return s.judge(ev, recovered, r)
}

// syncSucceeded clears a failing sync: active again, counters reset, and
// the support alert resolved.
func (s *State) syncSucceeded() []Effect {
	if !s.Syncs() {
		return nil
	}
	var effects []Effect
	if s.NeedsAttention {
		effects = append(effects, Effect{Type: EffectAttentionResolved})
	}
	s.Status, s.Reason = StatusActive, ReasonNone
	s.ConsecutiveFailures, s.FailingSince, s.LastSyncError, s.NextAttemptAt = 0, nil, "", nil
	s.NeedsAttention = false
	return effects
}

// syncFailed records a transient sync failure: failed_sync with the error
// and the next attempt; a failure persisting past the threshold needs
// attention, alerted once.
func (s *State) syncFailed(ev Event, r Rules) []Effect {
	if !s.Syncs() {
		// Paused or set up meanwhile: the failure no longer says anything.
		return nil
	}
	s.Status, s.Reason = StatusFailedSync, ReasonSyncError
	s.ConsecutiveFailures++
	if s.FailingSince == nil {
		at := ev.At
		s.FailingSince = &at
	}
	s.LastSyncError = ev.Error
	s.NextAttemptAt = ev.NextAttempt
	threshold := Policy{Attention: r.Attention}.Or(DefaultPolicy()).Attention
	if !s.NeedsAttention && threshold.Reached(s.ConsecutiveFailures, ev.At.Sub(*s.FailingSince)) {
		s.NeedsAttention = true
		return []Effect{{Type: EffectNeedsAttention, Reason: s.Reason}}
	}
	return nil
}

// judge applies a recorded validation outcome to a CRM integration;
// recovered says the previous validation had failed and this one passed.
func (s *State) judge(ev Event, recovered bool, r Rules) []Effect {
	reason, failed := pauseReason(ev.Checks)
	switch {
	case s.Status == StatusSetupIncomplete, s.Status == StatusPaused && s.Reason == ReasonManual:
		// Setup moves on by authorize, and a manual pause never resumes by
		// itself; a problem that is fixed is no longer worth a notice.
		return resolveIf(recovered)
	case failed && !(s.Status == StatusPaused && s.Reason == reason):
		s.Status, s.Reason = StatusPaused, reason
		return []Effect{{Type: EffectNotifyPaused, Reason: reason, Checks: ev.Checks}}
	case !failed && s.PausedByValidation():
		s.reactivate(ev.At, r)
		return []Effect{{Type: EffectResolvePaused}}
	}
	return resolveIf(recovered)
}

// recordValidation stores the checks of ev and reports whether they pass
// where the previous ones failed. The time moves only when the result
// differs, so an unchanged hourly validation is not a change.
func (s *State) recordValidation(ev Event) (recovered bool) {
	if ev.Checks == nil {
		return false
	}
	_, failed := pauseReason(ev.Checks)
	recovered = !failed && s.Validation != nil && len(s.Validation.Failed()) > 0
	if s.Validation != nil && slices.Equal(s.Validation.Checks, ev.Checks) {
		return recovered
	}
	at := ev.At
	s.Validation = &Validation{Checks: slices.Clone(ev.Checks), At: &at}
	return recovered
}

func resolveIf(recovered bool) []Effect {
	if recovered {
		return []Effect{{Type: EffectResolvePaused}}
	}
	return nil
}

// reasonPriority orders pause reasons: the most fundamental failure wins.
var reasonPriority = []Reason{ReasonExpiredCredentials, ReasonAPIDisabled, ReasonInsufficientPermissions}

// pauseReason returns the reason a set of checks pauses with, and whether any
// failed. A failed check with an unknown code counts as insufficient
// permissions.
func pauseReason(checks []Check) (Reason, bool) {
	best := -1
	for _, c := range checks {
		if c.OK {
			continue
		}
		i := slices.Index(reasonPriority, c.Code)
		if i < 0 {
			i = len(reasonPriority) - 1
		}
		if best < 0 || i < best {
			best = i
		}
	}
	if best < 0 {
		return ReasonNone, false
	}
	return reasonPriority[best], true
}

func describeFailures(v *Validation) string {
	if v == nil {
		return "no validation has run"
	}
	return describeChecks(v.Checks)
}

// describeChecks lists the failed checks of a validation with what to do
// about each, on one line.
func describeChecks(checks []Check) string {
	var parts []string
	for _, c := range (Validation{Checks: checks}).Failed() {
		part := c.Name + ": " + c.Message
		if c.Remediation != "" {
			part += " (fix: " + c.Remediation + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "; ")
}

func remediation(v *Validation) string {
	if v == nil {
		return "authorize again"
	}
	var parts []string
	for _, c := range v.Failed() {
		if c.Remediation != "" {
			parts = append(parts, c.Remediation)
		}
	}
	if len(parts) == 0 {
		return "authorize again"
	}
	return strings.Join(parts, "; ")
}
