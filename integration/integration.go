// Package integration is the functional core of the service: the kinds,
// statuses and reasons of lead and CRM integrations, and the pure transition
// rules of design §2 that turn (state, event) into a new state plus the
// effects the durable shell must carry out. It imports no Temporal and does
// no I/O, so every rule is table-tested in isolation.
package integration

import (
	"fmt"
	"regexp"
	"time"
)

// Kind tells lead integrations (a partner sends us leads) from CRM
// integrations (we push leads into a CRM).
type Kind string

// The integration kinds.
const (
	KindLead Kind = "lead"
	KindCRM  Kind = "crm"
)

// ParseKind accepts "lead" or "crm".
func ParseKind(s string) (Kind, error) {
	switch Kind(s) {
	case KindLead, KindCRM:
		return Kind(s), nil
	}
	return "", fmt.Errorf("unknown kind %q: use lead or crm", s)
}

// Status is the lifecycle status a customer sees. The snake_case values are
// the same in workflow queries, SQL, JSON and search attributes.
type Status string

// The statuses of design §2.
const (
	StatusSetupIncomplete Status = "setup_incomplete"
	StatusActive          Status = "active"
	StatusFailedSync      Status = "failed_sync"
	StatusPaused          Status = "paused"
	StatusDeleted         Status = "deleted"
)

// Statuses lists every status, in lifecycle order.
var Statuses = []Status{StatusSetupIncomplete, StatusActive, StatusFailedSync, StatusPaused, StatusDeleted}

// ParseStatus accepts one of Statuses.
func ParseStatus(s string) (Status, error) {
	for _, st := range Statuses {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown status %q: use one of setup_incomplete, active, failed_sync, paused, deleted", s)
}

// Reason qualifies a status; empty where there is none.
type Reason string

// The reasons of design §2.
const (
	ReasonNone Reason = ""

	// Lead setup.
	ReasonAwaitingTestLead        Reason = "awaiting_test_lead"
	ReasonSourceMismatch          Reason = "source_mismatch"
	ReasonAwaitingSetupCompletion Reason = "awaiting_setup_completion"

	// CRM setup.
	ReasonAwaitingAuthorization Reason = "awaiting_authorization"
	ReasonNeedsInformation      Reason = "needs_information"
	ReasonAwaitingFinish        Reason = "awaiting_finish"

	// Failed syncs.
	ReasonSyncError Reason = "sync_error"

	// Pauses.
	ReasonManual                  Reason = "manual"
	ReasonExpiredCredentials      Reason = "expired_credentials"
	ReasonInsufficientPermissions Reason = "insufficient_permissions"
	ReasonAPIDisabled             Reason = "api_disabled"
)

// PausedByValidation reports whether r is one of the reasons validation
// pauses an integration with (as opposed to a manual pause).
func (r Reason) PausedByValidation() bool {
	switch r {
	case ReasonExpiredCredentials, ReasonInsufficientPermissions, ReasonAPIDisabled:
		return true
	}
	return false
}

// Setup tracker step names.
const (
	StepTestLeadReceived = "test_lead_received"
	StepSetupCompleted   = "setup_completed"
	StepAuthorized       = "authorized"
	StepFinished         = "finished"
)

// SetupStep is one line of the setup tracker.
type SetupStep struct {
	Name string     `json:"name"`
	Done bool       `json:"done"`
	At   *time.Time `json:"at"`
}

// Check is the outcome of one validation check a CRM connector runs: token
// valid, scopes present, API access enabled. Code names the pause reason a
// failed check leads to.
type Check struct {
	Name        string `json:"name"`
	OK          bool   `json:"ok"`
	Code        Reason `json:"code,omitempty"`
	Message     string `json:"message,omitempty"`
	Remediation string `json:"remediation,omitempty"`
}

// Validation is the last validation run of a CRM integration.
type Validation struct {
	Checks []Check    `json:"checks"`
	At     *time.Time `json:"at"`
}

// Failed returns the checks that did not pass.
func (v Validation) Failed() []Check {
	var failed []Check
	for _, c := range v.Checks {
		if !c.OK {
			failed = append(failed, c)
		}
	}
	return failed
}

// idPattern keeps IDs safe in workflow IDs, URLs and file names.
var idPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// ValidateID checks an integration or org ID: 1-64 characters, letters,
// digits, '.', '_' and '-', starting with a letter or digit.
func ValidateID(what, id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("invalid %s %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", what, id)
	}
	return nil
}

// WorkflowID is the Temporal workflow ID of an integration: lead:<id> or crm:<id>.
func WorkflowID(kind Kind, id string) string { return string(kind) + ":" + id }
