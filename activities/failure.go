package activities

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/store"
)

// FailureClass is how a delivery attempt failed on the CRM's side.
type FailureClass string

// The failure classes the workflow tells apart.
const (
	FailureTransient   FailureClass = "transient"
	FailureRateLimited FailureClass = "rate_limited"
	FailureAuth        FailureClass = "auth"
	FailurePermission  FailureClass = "permission"
)

// failureRefused is a batch the CRM refused for what it carries
// (crm.ClassBatchRejected). Deliver splits such a batch itself, so this
// class never reaches the workflow.
const failureRefused FailureClass = "batch_rejected"

// DeliverFailure is a CRM-side failure of a whole batch. Its message is
// what customers see (last_sync_error): the error class, the HTTP status
// and the CRM's error code (crm.Describe), never lead data, credentials,
// our URLs or database errors.
type DeliverFailure struct {
	Class      FailureClass  `json:"class"`
	Message    string        `json:"message"`
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	// summary is the CRM's error in its own terms (crm.Error.Summary),
	// the reason of a lead the CRM refuses on its own.
	summary string
}

// cleanReason is a CRM's reason for rejecting a lead as customers may see
// it: without any of the lead's own values (connectors keep them out, but
// CRMs like to quote the email they refuse), URLs or addresses.
func cleanReason(reason string, l store.Lead) string {
	values := []string{l.Name, l.FirstName, l.LastName, l.Company, l.Email, l.Phone, l.Message, l.ExternalID}
	for _, v := range l.Attributes {
		if s, ok := v.(string); ok {
			values = append(values, s)
		}
	}
	// Longest first, so a whole name goes before the parts inside it.
	slices.SortFunc(values, func(a, b string) int { return len(b) - len(a) })
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" || !strings.Contains(strings.ToLower(reason), strings.ToLower(v)) {
			continue
		}
		pattern := `(?i)` + regexp.QuoteMeta(v)
		if len(v) < 3 {
			// A short value ("Li", "Ng") goes only as a word of its
			// own: inside other words it would blank out ordinary text.
			pattern = `(?i)\b` + regexp.QuoteMeta(v) + `\b`
		}
		reason = regexp.MustCompile(pattern).ReplaceAllLiteralString(reason, "[redacted]")
	}
	return crm.Redact(reason)
}

// classify maps a connector error to a failure class and the message
// customers see (crm.Describe: class, HTTP status and CRM code, no URLs).
func classify(err error) DeliverFailure {
	var ce *crm.Error
	retryAfter, summary := time.Duration(0), string(crm.ClassTransient)
	if errors.As(err, &ce) {
		retryAfter, summary = ce.RetryAfter, ce.Summary()
	}
	msg := crm.Describe(err)
	switch crm.ClassOf(err) {
	case crm.ClassRateLimited:
		return DeliverFailure{Class: FailureRateLimited, Message: msg, RetryAfter: retryAfter, summary: summary}
	case crm.ClassAuth:
		return DeliverFailure{Class: FailureAuth, Message: msg, summary: summary}
	case crm.ClassPermission:
		return DeliverFailure{Class: FailurePermission, Message: msg, summary: summary}
	case crm.ClassBatchRejected:
		return DeliverFailure{Class: failureRefused, Message: msg, summary: summary}
	}
	return DeliverFailure{Class: FailureTransient, Message: msg, summary: summary}
}
