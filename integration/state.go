package integration

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// MaxSourceLength bounds a lead's source value (bytes).
const MaxSourceLength = 200

// maxRevisionRequests bounds how many distinct wrong source values get a
// revision request, so a misbehaving partner cannot grow the state forever.
const maxRevisionRequests = 50

// State is everything the rules need to know about one integration, and
// everything the projection shows. It holds IDs, statuses and
// configuration, never secrets or lead payloads, because it travels through
// workflow history.
type State struct {
	ID       string `json:"id"`
	OrgID    string `json:"org_id"`
	Kind     Kind   `json:"kind"`
	Provider string `json:"provider"` // CRM provider, or the lead partner's name
	Name     string `json:"name"`

	Status  Status `json:"status"`
	Reason  Reason `json:"reason"`
	Version int64  `json:"version"`

	Setup []SetupStep `json:"setup_steps"`

	// Lead integrations.
	ExpectedSource     string   `json:"expected_source,omitempty"`
	LastReceivedSource string   `json:"last_received_source,omitempty"`
	RevisionRequested  []string `json:"revision_requested,omitempty"`

	// CRM integrations.
	Validation *Validation `json:"validation,omitempty"`

	// CRM sync health (design §2, sync rows). The error text names the
	// failure (status code, class), never lead data.
	ConsecutiveFailures int        `json:"consecutive_failures"`
	FailingSince        *time.Time `json:"failing_since,omitempty"`
	LastSyncError       string     `json:"last_sync_error,omitempty"`
	NextAttemptAt       *time.Time `json:"next_attempt_at,omitempty"`

	NeedsAttention bool `json:"needs_attention"`
	ReminderSent   bool `json:"reminder_sent"`
	Abandoned      bool `json:"abandoned"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Spec is what a user gives to create an integration.
type Spec struct {
	ID             string
	OrgID          string
	Kind           Kind
	Provider       string
	Name           string
	ExpectedSource string
}

// New validates spec and returns the initial state (version 1) of a new
// integration, created at the given time.
func New(spec Spec, at time.Time) (State, error) {
	if err := ValidateID("integration id", spec.ID); err != nil {
		return State{}, err
	}
	if err := ValidateID("org id", spec.OrgID); err != nil {
		return State{}, err
	}
	if strings.TrimSpace(spec.Provider) == "" || len(spec.Provider) > 64 {
		return State{}, fmt.Errorf("invalid provider %q: give 1-64 characters", spec.Provider)
	}
	if len(spec.Name) > 200 {
		return State{}, fmt.Errorf("name is %d bytes long: keep it within 200", len(spec.Name))
	}
	s := State{
		ID: spec.ID, OrgID: spec.OrgID, Kind: spec.Kind, Provider: spec.Provider, Name: spec.Name,
		Status: StatusSetupIncomplete, Version: 1, CreatedAt: at, UpdatedAt: at,
	}
	switch spec.Kind {
	case KindLead:
		if spec.ExpectedSource == "" || len(spec.ExpectedSource) > MaxSourceLength {
			return State{}, fmt.Errorf("expected source must be 1-%d bytes: it is the exact value the partner's test lead carries", MaxSourceLength)
		}
		s.ExpectedSource = spec.ExpectedSource
		s.Reason = ReasonAwaitingTestLead
		s.Setup = []SetupStep{{Name: StepTestLeadReceived}, {Name: StepSetupCompleted}}
	case KindCRM:
		if spec.ExpectedSource != "" {
			return State{}, fmt.Errorf("expected source applies to lead integrations only")
		}
		s.Reason = ReasonAwaitingAuthorization
		s.Setup = []SetupStep{{Name: StepAuthorized}, {Name: StepFinished}}
	default:
		return State{}, fmt.Errorf("unknown kind %q: use lead or crm", spec.Kind)
	}
	return s, nil
}

// Step returns the named setup step, and whether it exists.
func (s State) Step(name string) (SetupStep, bool) {
	for _, st := range s.Setup {
		if st.Name == name {
			return st, true
		}
	}
	return SetupStep{}, false
}

// PausedByValidation reports whether s is paused because validation failed.
func (s State) PausedByValidation() bool {
	return s.Status == StatusPaused && s.Reason.PausedByValidation()
}

// Syncs reports whether leads are delivered in this state: active or
// failing, never while paused, in setup or deleted.
func (s State) Syncs() bool {
	return s.Kind == KindCRM && (s.Status == StatusActive || s.Status == StatusFailedSync)
}

// ValidatesPeriodically reports whether the periodic validation timer runs
// in this state: once set up, unless deleted.
func (s State) ValidatesPeriodically() bool {
	return s.Kind == KindCRM && (s.Status == StatusActive || s.Status == StatusFailedSync || s.Status == StatusPaused)
}

// clone deep-copies the slices and pointers of s so Apply never mutates its
// receiver.
func (s State) clone() State {
	c := s
	c.Setup = slices.Clone(s.Setup)
	c.RevisionRequested = slices.Clone(s.RevisionRequested)
	if s.Validation != nil {
		v := *s.Validation
		v.Checks = slices.Clone(v.Checks)
		c.Validation = &v
	}
	return c
}

// sameAs reports whether two states show the same thing, ignoring the
// version bookkeeping. It compares field by field (not reflect.DeepEqual,
// which workflowcheck cannot prove deterministic): a new State field must be
// added here, and TestSameAsCoversEveryField fails until it is.
func (s State) sameAs(o State) bool {
	return s.ID == o.ID && s.OrgID == o.OrgID && s.Kind == o.Kind && s.Provider == o.Provider && s.Name == o.Name &&
		s.Status == o.Status && s.Reason == o.Reason &&
		slices.EqualFunc(s.Setup, o.Setup, sameStep) &&
		s.ExpectedSource == o.ExpectedSource && s.LastReceivedSource == o.LastReceivedSource &&
		slices.Equal(s.RevisionRequested, o.RevisionRequested) &&
		sameValidation(s.Validation, o.Validation) &&
		s.ConsecutiveFailures == o.ConsecutiveFailures && sameTime(s.FailingSince, o.FailingSince) &&
		s.LastSyncError == o.LastSyncError && sameTime(s.NextAttemptAt, o.NextAttemptAt) &&
		s.NeedsAttention == o.NeedsAttention && s.ReminderSent == o.ReminderSent && s.Abandoned == o.Abandoned &&
		s.CreatedAt.Equal(o.CreatedAt)
}

func sameStep(a, b SetupStep) bool {
	return a.Name == b.Name && a.Done == b.Done && sameTime(a.At, b.At)
}

func sameValidation(a, b *Validation) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Checks, b.Checks) && sameTime(a.At, b.At)
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func (s *State) markStep(name string, done bool, at time.Time) {
	for i := range s.Setup {
		if s.Setup[i].Name != name || s.Setup[i].Done == done {
			continue
		}
		s.Setup[i].Done = done
		if done {
			t := at
			s.Setup[i].At = &t
		} else {
			s.Setup[i].At = nil
		}
	}
}
