package integration_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
)

// scheduleBundle holds what the schedule tests share: a creation time and
// the default policy.
type scheduleBundle struct {
	t0     time.Time
	policy integration.Policy
}

func setupSchedule(t *testing.T) *scheduleBundle {
	t.Helper()
	return &scheduleBundle{t0: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), policy: integration.DefaultPolicy()}
}

func (b *scheduleBundle) state(t *testing.T, kind integration.Kind, status integration.Status) integration.State {
	t.Helper()
	spec := integration.Spec{ID: "int-1", OrgID: "org", Kind: kind, Provider: "sandbox"}
	if kind == integration.KindLead {
		spec.ExpectedSource = "Zillow"
	}
	s, err := integration.New(spec, b.t0)
	require.NoError(t, err)
	s.Status = status
	return s
}

// TestDefaultPolicy pins design §2's numbers: a change of any default must
// be a decision, not an accident.
func TestDefaultPolicy(t *testing.T) {
	t.Parallel()
	require.Equal(t, integration.Policy{
		ValidationInterval: time.Hour,
		ReminderAfter:      72 * time.Hour,
		AbandonAfter:       30 * 24 * time.Hour,
		SyncInterval:       5 * time.Minute,
		SyncBackoffInitial: time.Second,
		SyncBackoffMax:     5 * time.Minute,
		Attention:          integration.AttentionThreshold{Failures: 5, After: 6 * time.Hour},
	}, integration.DefaultPolicy())
	require.Equal(t, integration.DefaultPolicy(), integration.Policy{}.Or(integration.DefaultPolicy()), "an empty policy is the defaults")
	require.Equal(t, integration.DefaultPolicy().Attention, integration.CurrentRules(integration.Policy{}).Attention)
	require.Equal(t, integration.LatestRevision, integration.CurrentRules(integration.Policy{}).Revision)
}

func TestPolicyOr(t *testing.T) {
	t.Parallel()
	override := integration.Policy{ValidationInterval: 3 * time.Second, Attention: integration.AttentionThreshold{Failures: 2}}
	got := override.Or(integration.DefaultPolicy())
	want := integration.DefaultPolicy()
	want.ValidationInterval = 3 * time.Second
	want.Attention.Failures = 2
	require.Equal(t, want, got, "set fields win, zero ones fall back field by field")

	capped := integration.Policy{SyncBackoffInitial: time.Minute, SyncBackoffMax: time.Second}.Or(integration.DefaultPolicy())
	require.Equal(t, time.Minute, capped.SyncBackoffMax, "the cap is never below the start")
	negative := integration.Policy{ValidationInterval: -time.Second}.Or(integration.DefaultPolicy())
	require.Equal(t, time.Hour, negative.ValidationInterval, "a negative value is not set")
}

func TestBackoffScheduleAtTheDefaults(t *testing.T) {
	t.Parallel()
	p := integration.DefaultPolicy()
	want := []time.Duration{
		1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
		32 * time.Second, 64 * time.Second, 128 * time.Second, 256 * time.Second,
		5 * time.Minute, 5 * time.Minute, 5 * time.Minute,
	}
	for i, w := range want {
		require.Equal(t, w, integration.Backoff(p, i+1), "after failure %d", i+1)
	}
	require.Equal(t, 5*time.Minute, integration.Backoff(p, 10_000), "capped for good, no overflow")

	custom := integration.Policy{SyncBackoffInitial: 200 * time.Millisecond, SyncBackoffMax: time.Second}
	require.Equal(t, []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second},
		[]time.Duration{integration.Backoff(custom, 1), integration.Backoff(custom, 2), integration.Backoff(custom, 3), integration.Backoff(custom, 4), integration.Backoff(custom, 5)})
}

func TestSetupTimersAtTheDefaults(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	s := b.state(t, integration.KindLead, integration.StatusSetupIncomplete)
	reminder, abandon := b.t0.Add(72*time.Hour), b.t0.Add(30*24*time.Hour)

	at, ok := s.Deadline(integration.Timers{}, b.policy, false)
	require.True(t, ok)
	require.Equal(t, reminder, at, "the reminder comes first")

	require.Equal(t, integration.Due{}, s.DueAt(integration.Timers{}, b.policy, reminder.Add(-time.Microsecond)), "not one before")
	due := s.DueAt(integration.Timers{}, b.policy, reminder)
	require.Equal(t, integration.Due{Reminder: true}, due, "exactly at 72h")
	require.Equal(t, []integration.Event{{Type: integration.EventReminderDue, Actor: integration.ActorSystem, At: reminder}}, due.TimerEvents(reminder))

	s.ReminderSent = true
	at, ok = s.Deadline(integration.Timers{}, b.policy, false)
	require.True(t, ok)
	require.Equal(t, abandon, at)
	require.Equal(t, integration.Due{}, s.DueAt(integration.Timers{}, b.policy, abandon.Add(-time.Microsecond)))
	require.Equal(t, integration.Due{Abandon: true}, s.DueAt(integration.Timers{}, b.policy, abandon))

	s.Abandoned = true
	_, ok = s.Deadline(integration.Timers{}, b.policy, false)
	require.False(t, ok, "nothing left: wait for a message")

	active := b.state(t, integration.KindLead, integration.StatusActive)
	_, ok = active.Deadline(integration.Timers{}, b.policy, false)
	require.False(t, ok, "a set-up lead integration has no timers")
	require.Equal(t, integration.Due{}, active.DueAt(integration.Timers{}, b.policy, abandon.Add(time.Hour)))
}

func TestValidationTimerAtTheDefaults(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	setupState := b.state(t, integration.KindCRM, integration.StatusSetupIncomplete)
	active := b.state(t, integration.KindCRM, integration.StatusActive)
	activatedAt := b.t0.Add(time.Minute)

	timers := integration.Timers{}.Changed(setupState, active, b.policy, activatedAt)
	require.Equal(t, activatedAt.Add(time.Hour), timers.NextValidationAt, "the first validation one interval after set-up")

	require.False(t, active.DueAt(timers, b.policy, timers.NextValidationAt.Add(-time.Microsecond)).Validation)
	require.True(t, active.DueAt(timers, b.policy, timers.NextValidationAt).Validation)
	ran := timers.ValidationRan(b.policy, timers.NextValidationAt)
	require.Equal(t, activatedAt.Add(2*time.Hour), ran.NextValidationAt, "hourly")

	paused := b.state(t, integration.KindCRM, integration.StatusPaused)
	require.True(t, paused.DueAt(ran, b.policy, ran.NextValidationAt).Validation, "a paused integration keeps validating")
	deleted := b.state(t, integration.KindCRM, integration.StatusDeleted)
	require.False(t, deleted.DueAt(ran, b.policy, ran.NextValidationAt).Validation)
	require.Equal(t, ran, ran.Changed(active, paused, b.policy, ran.NextValidationAt), "pausing keeps the schedule")
}

func TestSyncTimersAtTheDefaults(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	setupState := b.state(t, integration.KindCRM, integration.StatusSetupIncomplete)
	s := b.state(t, integration.KindCRM, integration.StatusActive)
	at := b.t0.Add(time.Minute)

	timers := integration.Timers{}.Changed(setupState, s, b.policy, at)
	require.True(t, timers.SyncRequested, "activation delivers what waited")
	require.True(t, timers.SyncDue(at), "at once")
	require.Equal(t, at.Add(5*time.Minute), timers.NextSyncAt, "the safety timer")
	deadline, ok := s.Deadline(timers, b.policy, true)
	require.True(t, ok)
	require.True(t, deadline.IsZero(), "a round is due at once")
	_, ok = s.Deadline(timers, b.policy, false)
	require.True(t, ok, "a run without delivery still has its validation")

	// A round that delivered everything: the safety timer from its end.
	timers.SyncRequested = false
	done := at.Add(time.Second)
	next, ev := s.AfterSync(timers, integration.SyncResult{Outcome: integration.SyncDelivered}, b.policy, done)
	require.Equal(t, integration.EventSyncSucceeded, ev.Type)
	require.False(t, next.SyncRequested)
	require.Equal(t, done.Add(5*time.Minute), next.NextSyncAt)
	require.False(t, next.SyncDue(next.NextSyncAt.Add(-time.Microsecond)))
	require.True(t, next.SyncDue(next.NextSyncAt), "exactly at 5 minutes")

	more, _ := s.AfterSync(timers, integration.SyncResult{Outcome: integration.SyncDelivered, More: true}, b.policy, done)
	require.True(t, more.SyncDue(done), "a full round asks for the next at once")
	nudged := timers
	nudged.SyncRequested = true
	kept, _ := s.AfterSync(nudged, integration.SyncResult{Outcome: integration.SyncDelivered}, b.policy, done)
	require.True(t, kept.SyncRequested, "a nudge during the round survives its success")

	limited, ev := s.AfterSync(timers, integration.SyncResult{Outcome: integration.SyncRateLimited, RetryAfter: 7 * time.Second}, b.policy, done)
	require.Nil(t, ev, "a rate limit is no failure")
	require.Equal(t, done.Add(7*time.Second), limited.RetryAt)
	require.False(t, limited.SyncDue(done.Add(7*time.Second-time.Microsecond)))
	require.True(t, limited.SyncDue(done.Add(7*time.Second)))
	floor, _ := s.AfterSync(timers, integration.SyncResult{Outcome: integration.SyncRateLimited}, b.policy, done)
	require.Equal(t, done.Add(integration.MinRateLimitWait), floor.RetryAt)
}

// TestAfterSyncFailuresFollowTheBackoff walks a failing integration through
// the rules and the schedule together: the nth failure is retried after
// Backoff(n), recorded on the state, and the alert comes at the 5th failure
// once 6 hours have passed.
func TestAfterSyncFailuresFollowTheBackoff(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	s := b.state(t, integration.KindCRM, integration.StatusActive)
	timers := integration.Timers{}
	at := b.t0
	for n := 1; n <= 12; n++ {
		var ev *integration.Event
		timers, ev = s.AfterSync(timers, integration.SyncResult{Outcome: integration.SyncFailed, Error: "crm transient (HTTP 503)"}, b.policy, at)
		require.Equal(t, integration.EventSyncFailed, ev.Type)
		require.Equal(t, at.Add(integration.Backoff(b.policy, n)), timers.RetryAt, "failure %d", n)
		require.Equal(t, timers.RetryAt, *ev.NextAttempt)
		require.True(t, timers.SyncRequested)
		tr, err := s.Apply(*ev)
		require.NoError(t, err)
		s = tr.State
		require.Equal(t, n, s.ConsecutiveFailures)
		require.Equal(t, integration.StatusFailedSync, s.Status)
		require.Equal(t, timers.RetryAt, *s.NextAttemptAt)
		// The failing run sleeps until its retry, not a moment less.
		deadline, ok := s.Deadline(timers, b.policy, true)
		require.True(t, ok)
		require.Equal(t, timers.RetryAt, deadline)
		require.False(t, timers.SyncDue(timers.RetryAt.Add(-time.Microsecond)))
		at = timers.RetryAt
	}
	// 1+2+...+256 s + 3 x 5 min is under 6 hours: no alert yet.
	require.False(t, s.NeedsAttention)
}

func TestPolicyChangedBringsShorterTimersForward(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	now := b.t0.Add(10 * time.Minute)
	timers := integration.Timers{NextValidationAt: b.t0.Add(time.Hour), NextSyncAt: b.t0.Add(5 * time.Minute)}

	shorter := b.policy
	shorter.ValidationInterval = 2 * time.Second
	got := timers.PolicyChanged(b.policy, shorter, now)
	require.Equal(t, now.Add(2*time.Second), got.NextValidationAt, "at most one new interval from now")
	require.Equal(t, timers.NextSyncAt, got.NextSyncAt, "unchanged setting, unchanged timer")

	longer := b.policy
	longer.ValidationInterval = 2 * time.Hour
	require.Equal(t, timers, timers.PolicyChanged(b.policy, longer, now), "a longer interval waits for the next validation")

	require.Equal(t, integration.Timers{}, integration.Timers{}.PolicyChanged(b.policy, shorter, now), "an unscheduled timer stays unscheduled")
}
