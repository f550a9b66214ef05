package integration

import "time"

// Policy is the service-wide timing and threshold policy of the lifecycle:
// how often CRM integrations validate, when setup reminders and the
// abandoned flag come, how failing syncs back off and when they need a
// human. It is the worker's configuration: running workflows read it at
// each timer, so changing it and restarting the workers changes every
// integration that has no override of its own. Zero fields mean "not set";
// Or fills them from another Policy, and DefaultPolicy states the defaults
// (design §2) in one place.
type Policy struct {
	// ValidationInterval is how often a set-up CRM integration validates
	// its credentials and permissions.
	ValidationInterval time.Duration `json:"validation_interval,omitempty"`
	// ReminderAfter is how long setup may stay incomplete before the org is
	// reminded.
	ReminderAfter time.Duration `json:"reminder_after,omitempty"`
	// AbandonAfter is how long setup may stay incomplete before the
	// integration is flagged abandoned (never deleted).
	AbandonAfter time.Duration `json:"abandon_after,omitempty"`
	// SyncInterval is the safety timer: pending leads are looked for at
	// least this often even without a nudge.
	SyncInterval time.Duration `json:"sync_interval,omitempty"`
	// SyncBackoffInitial and SyncBackoffMax bound the capped exponential
	// backoff between attempts of a failing sync.
	SyncBackoffInitial time.Duration `json:"sync_backoff_initial,omitempty"`
	SyncBackoffMax     time.Duration `json:"sync_backoff_max,omitempty"`
	// Attention is when a persisting failed sync needs a human.
	Attention AttentionThreshold `json:"attention,omitempty"`
}

// Default policy values (design §2).
const (
	DefaultValidationInterval = time.Hour
	DefaultReminderAfter      = 72 * time.Hour
	DefaultAbandonAfter       = 30 * 24 * time.Hour
	DefaultSyncInterval       = 5 * time.Minute
	DefaultSyncBackoffInitial = time.Second
	DefaultSyncBackoffMax     = 5 * time.Minute
)

// DefaultPolicy is the policy of design §2: hourly validation, a reminder
// after 3 days, abandoned after 30, a 5-minute safety sync, backoff from 1s
// doubling to 5 minutes, and attention at 5 consecutive failures over 6h.
func DefaultPolicy() Policy {
	return Policy{
		ValidationInterval: DefaultValidationInterval,
		ReminderAfter:      DefaultReminderAfter,
		AbandonAfter:       DefaultAbandonAfter,
		SyncInterval:       DefaultSyncInterval,
		SyncBackoffInitial: DefaultSyncBackoffInitial,
		SyncBackoffMax:     DefaultSyncBackoffMax,
		Attention:          AttentionThreshold{Failures: DefaultAttentionFailures, After: DefaultAttentionAfter},
	}
}

// Or returns p with every zero (or negative) field taken from fallback: a
// per-integration override over the worker's policy, or the worker's
// policy over the defaults. The backoff cap is never below its start.
func (p Policy) Or(fallback Policy) Policy {
	orDuration := func(v, f time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return f
	}
	out := Policy{
		ValidationInterval: orDuration(p.ValidationInterval, fallback.ValidationInterval),
		ReminderAfter:      orDuration(p.ReminderAfter, fallback.ReminderAfter),
		AbandonAfter:       orDuration(p.AbandonAfter, fallback.AbandonAfter),
		SyncInterval:       orDuration(p.SyncInterval, fallback.SyncInterval),
		SyncBackoffInitial: orDuration(p.SyncBackoffInitial, fallback.SyncBackoffInitial),
		SyncBackoffMax:     orDuration(p.SyncBackoffMax, fallback.SyncBackoffMax),
		Attention: AttentionThreshold{
			Failures: p.Attention.Failures,
			After:    orDuration(p.Attention.After, fallback.Attention.After),
		},
	}
	if out.Attention.Failures <= 0 {
		out.Attention.Failures = fallback.Attention.Failures
	}
	if out.SyncBackoffMax > 0 && out.SyncBackoffMax < out.SyncBackoffInitial {
		out.SyncBackoffMax = out.SyncBackoffInitial
	}
	return out
}
