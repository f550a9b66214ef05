// Package workflows holds the durable shell around the integration rules:
// one long-lived Temporal workflow per integration (LeadIntegration,
// CRMIntegration) that receives commands as signals or updates, feeds them
// and its timers to the pure rules of package integration, and carries out
// the resulting effects through activities. This file is the workflows'
// contract: names, inputs and outputs that clients depend on.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/acme/integrations/integration"
)

// TaskQueue is the one task queue every integration workflow and activity
// runs on.
const TaskQueue = "integrations"

// Message names. Every command is accepted both as a signal (fire and
// forget, what an operator sends from the Temporal UI) and as an update
// with a validator (what the CLI and API use, so a rejected command fails at
// once with its reason). Both routes run the same handler.
const (
	CompleteSetup = string(integration.EventCompleteSetup)
	Authorize     = string(integration.EventAuthorize)
	Pause         = string(integration.EventPause)
	Resume        = string(integration.EventResume)
	Delete        = string(integration.EventDelete)
	LeadReceived  = string(integration.EventLeadReceived)

	// SignalSync nudges a CRM integration to deliver its pending leads now
	// (sent after intake; coalesced). Signal only: it has no outcome.
	SignalSync = "sync"

	// QueryStatus returns the workflow's Snapshot. It is read-only.
	QueryStatus = "status"
	// UpdateDescribe waits until every change so far is projected into the
	// database, then returns the Snapshot: the read-your-writes barrier.
	UpdateDescribe = "describe"
)

// Messages lists the names accepted as both signals and updates.
var Messages = []string{CompleteSetup, Authorize, Pause, Resume, Delete, LeadReceived}

// Search attributes upserted on every change, for the Temporal UI.
var (
	AttrKind           = temporal.NewSearchAttributeKeyKeyword("IntegrationKind")
	AttrStatus         = temporal.NewSearchAttributeKeyKeyword("IntegrationStatus")
	AttrReason         = temporal.NewSearchAttributeKeyKeyword("IntegrationReason")
	AttrOrg            = temporal.NewSearchAttributeKeyKeyword("IntegrationOrg")
	AttrProvider       = temporal.NewSearchAttributeKeyKeyword("IntegrationProvider")
	AttrNeedsAttention = temporal.NewSearchAttributeKeyBool("IntegrationNeedsAttention")
)

// SearchAttributes returns the search attributes that describe s; the dev
// server registers their keys from SearchAttributes(integration.State{}).
func SearchAttributes(s integration.State) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		AttrKind.ValueSet(string(s.Kind)),
		AttrStatus.ValueSet(string(s.Status)),
		AttrReason.ValueSet(string(s.Reason)),
		AttrOrg.ValueSet(s.OrgID),
		AttrProvider.ValueSet(s.Provider),
		AttrNeedsAttention.ValueSet(s.NeedsAttention),
	)
}

// Command is the payload of every command signal and update.
type Command struct {
	By string `json:"by,omitempty"`
	// ClaimedBy is who the caller said acts when By is set by the service
	// (the HTTP API records its API key's name as By): data only, recorded
	// beside the actor in the change, never read by the rules.
	ClaimedBy string `json:"claimed_by,omitempty"`
	Note      string `json:"note,omitempty"`
	// Source is the source value of a received lead (lead-received only).
	// Only the source travels through history; the lead's contact details
	// never do.
	Source string `json:"source,omitempty"`
	// CredentialVersion is the stored (sealed) credentials version an
	// authorize is about: the candidate to validate, promoted to current
	// only if it passes. Zero validates the current credentials again.
	// The version number, never the credentials, travels in history.
	CredentialVersion int `json:"credential_version,omitempty"`
}

// Config is what one integration overrides of the worker's policy, given
// at creation (`integrations create --validation-interval ...`): zero
// fields follow the worker's integration.Policy, which running workflows
// read at each timer. It travels in the workflow input, so it is carried
// across continue-as-new.
type Config struct {
	// ValidationInterval is how often a set-up CRM integration validates
	// its credentials and permissions.
	ValidationInterval time.Duration `json:"validation_interval,omitempty"`
	// ReminderAfter is how long setup may stay incomplete before the org is
	// reminded.
	ReminderAfter time.Duration `json:"reminder_after,omitempty"`
	// AbandonAfter is how long setup may stay incomplete before the
	// integration is flagged abandoned.
	AbandonAfter time.Duration `json:"abandon_after,omitempty"`
	// MaxHistoryEvents continues as new once history reaches this many
	// events, besides whenever the server suggests it (0: server only).
	MaxHistoryEvents int `json:"max_history_events,omitempty"`
	// SyncInterval is the safety timer: pending leads are looked for at
	// least this often even without a nudge.
	SyncInterval time.Duration `json:"sync_interval,omitempty"`
	// SyncBackoffInitial and SyncBackoffMax bound the capped exponential
	// backoff between attempts of a failing sync.
	SyncBackoffInitial time.Duration `json:"sync_backoff_initial,omitempty"`
	SyncBackoffMax     time.Duration `json:"sync_backoff_max,omitempty"`
	// Attention is when a persisting failed sync needs a human.
	Attention integration.AttentionThreshold `json:"attention,omitempty"`
}

// Overrides returns the policy settings c overrides; its zero fields are
// the ones c leaves to the worker.
func (c Config) Overrides() integration.Policy {
	return integration.Policy{
		ValidationInterval: c.ValidationInterval,
		ReminderAfter:      c.ReminderAfter,
		AbandonAfter:       c.AbandonAfter,
		SyncInterval:       c.SyncInterval,
		SyncBackoffInitial: c.SyncBackoffInitial,
		SyncBackoffMax:     c.SyncBackoffMax,
		Attention:          c.Attention,
	}
}

// Input starts a run of an integration workflow: the first run with the
// state integration.New made (version 1, not yet projected), later runs
// with what the previous run carried across continue-as-new.
type Input struct {
	State  integration.State `json:"state"`
	Config Config            `json:"config"`
	// LastChange is the change that produced State; it is projected along
	// with State when ProjectedVersion is behind.
	LastChange integration.Change `json:"last_change"`
	// ProjectedVersion is the highest version known to be in the database.
	ProjectedVersion int64 `json:"projected_version"`
	// Timers is the run's timer state (next validation, requested and
	// retried syncs, the safety sync), computed by package integration.
	integration.Timers
	// Run counts continue-as-new generations, for operators.
	Run int `json:"run"`
}

// Snapshot is what the status query and the describe update return: the
// state plus the workflow's own bookkeeping.
type Snapshot struct {
	State            integration.State `json:"state"`
	ProjectedVersion int64             `json:"projected_version"`
	PendingMessages  int               `json:"pending_messages"`
	NextValidationAt *time.Time        `json:"next_validation_at,omitempty"`
	Run              int               `json:"run"`
	SyncRequested    bool              `json:"sync_requested"`
	RetryAt          *time.Time        `json:"retry_at,omitempty"`
	NextSyncAt       *time.Time        `json:"next_sync_at,omitempty"`
}

// RejectionErrorType is the application error type of a command the state
// does not allow; its message is the rejection's one-line reason.
const RejectionErrorType = "Rejection"

// WorkflowFor returns the workflow function of a kind, for starting it.
func WorkflowFor(kind integration.Kind) any {
	if kind == integration.KindCRM {
		return CRMIntegration
	}
	return LeadIntegration
}
