package integration

import "time"

// View is the public JSON shape of an integration, shared by the CLI's
// `--output json` and the HTTP API.
type View struct {
	ID             string      `json:"id"`
	OrgID          string      `json:"org_id"`
	Kind           Kind        `json:"kind"`
	Provider       string      `json:"provider"`
	Name           string      `json:"name,omitempty"`
	Status         Status      `json:"status"`
	Reason         Reason      `json:"reason"`
	Version        int64       `json:"version"`
	NeedsAttention bool        `json:"needs_attention"`
	Abandoned      bool        `json:"abandoned"`
	Setup          SetupView   `json:"setup"`
	CreatedAt      time.Time   `json:"created_at"`
	UpdatedAt      time.Time   `json:"updated_at"`
	ExpectedSource *string     `json:"expected_source,omitempty"`
	LastSource     *string     `json:"last_received_source,omitempty"`
	Validation     *Validation `json:"validation,omitempty"`
	Sync           *SyncView   `json:"sync,omitempty"`
}

// SyncView is the delivery health of a CRM integration. The counts come
// from the deliveries table (SetDeliveries); they are absent in lists.
type SyncView struct {
	ConsecutiveFailures int        `json:"consecutive_failures"`
	FailingSince        *time.Time `json:"failing_since"`
	LastError           string     `json:"last_error"`
	NextAttemptAt       *time.Time `json:"next_attempt_at"`
	LastSuccessAt       *time.Time `json:"last_success_at,omitempty"`
	Pending             *int64     `json:"pending,omitempty"`
	Delivered           *int64     `json:"delivered,omitempty"`
	Rejected            *int64     `json:"rejected,omitempty"`
	// GaveUp counts the leads set aside after failing on their own too
	// often; Cancelled the deliveries a delete ended.
	GaveUp    *int64 `json:"gave_up,omitempty"`
	Cancelled *int64 `json:"cancelled,omitempty"`
	// Quota is the API allowance the CRM last reported, where it reports
	// one.
	Quota *QuotaView `json:"quota,omitempty"`
}

// Deliveries are a CRM integration's delivery counts per status and its
// last successful delivery, for its view.
type Deliveries struct {
	Pending, Delivered, Rejected, GaveUp, Cancelled int64
	// LastSuccessAt is when the CRM last answered for a lead (delivered
	// or rejected); nil before the first.
	LastSuccessAt *time.Time
}

// QuotaView is a CRM's last reported API allowance for the integration's
// account: Remaining calls of Limit in Window ("10s", "24h").
type QuotaView struct {
	Remaining  int64     `json:"remaining"`
	Limit      int64     `json:"limit"`
	Window     string    `json:"window"`
	ObservedAt time.Time `json:"observed_at"`
}

// SetQuota adds the CRM's last reported quota to a CRM integration's view.
func (v *View) SetQuota(q QuotaView) {
	if v.Sync == nil {
		return
	}
	q.ObservedAt = q.ObservedAt.UTC()
	v.Sync.Quota = &q
}

// SetDeliveries adds the delivery counts and the last successful delivery
// to a CRM integration's view.
func (v *View) SetDeliveries(d Deliveries) {
	if v.Sync == nil {
		return
	}
	v.Sync.Pending, v.Sync.Delivered, v.Sync.Rejected = &d.Pending, &d.Delivered, &d.Rejected
	v.Sync.GaveUp, v.Sync.Cancelled = &d.GaveUp, &d.Cancelled
	v.Sync.LastSuccessAt = d.LastSuccessAt
}

// SetupView is the setup tracker.
type SetupView struct {
	Steps []SetupStep `json:"steps"`
}

// NewView renders s. Lead integrations carry expected_source and
// last_received_source (null until a lead arrives); CRM integrations carry
// validation (with no checks until the first validation).
func NewView(s State) View {
	v := View{
		ID: s.ID, OrgID: s.OrgID, Kind: s.Kind, Provider: s.Provider, Name: s.Name,
		Status: s.Status, Reason: s.Reason, Version: s.Version,
		NeedsAttention: s.NeedsAttention, Abandoned: s.Abandoned,
		Setup:     SetupView{Steps: s.Setup},
		CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC(),
	}
	if v.Setup.Steps == nil {
		v.Setup.Steps = []SetupStep{}
	}
	switch s.Kind {
	case KindLead:
		expected := s.ExpectedSource
		v.ExpectedSource = &expected
		if s.LastReceivedSource != "" {
			last := s.LastReceivedSource
			v.LastSource = &last
		}
	case KindCRM:
		v.Validation = &Validation{Checks: []Check{}}
		if s.Validation != nil {
			v.Validation = s.Validation
		}
		v.Sync = &SyncView{
			ConsecutiveFailures: s.ConsecutiveFailures, FailingSince: s.FailingSince,
			LastError: s.LastSyncError, NextAttemptAt: s.NextAttemptAt,
		}
	}
	return v
}
