package salesforce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/acme/integrations/crm"
)

// Salesforce error codes the connector acts on.
const (
	codeInvalidSession       = "INVALID_SESSION_ID"
	codeRequestLimitExceeded = "REQUEST_LIMIT_EXCEEDED"
	codeAPIDisabledForOrg    = "API_DISABLED_FOR_ORG"
	codeAPICurrentlyDisabled = "API_CURRENTLY_DISABLED"
	codeUnableToLockRow      = "UNABLE_TO_LOCK_ROW"
	codeNotFound             = "NOT_FOUND"
	codeInvalidField         = "INVALID_FIELD"
	codeInvalidType          = "INVALID_TYPE"
	codeCannotInsertUpdate   = "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"
	codeInsufficientAccess   = "INSUFFICIENT_ACCESS_OR_READONLY"
	codeAllOrNoneRolledBack  = "ALL_OR_NONE_OPERATION_ROLLED_BACK"
	// badOAuthToken is the identity service's one-word answer to a token
	// it does not accept.
	badOAuthToken = "Bad_OAuth_Token"
)

// codePattern is what a Salesforce error code looks like; anything else
// in its place is not quoted.
var codePattern = regexp.MustCompile(`^[A-Z][A-Z_]{1,63}$`)

// fieldNamePattern is what a field name looks like; anything else in its
// place is not quoted.
var fieldNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,80}$`)

// apiError is one whole-call error of the REST API. Message is read to
// classify, never quoted: it can hold the request's values.
type apiError struct {
	Message   string   `json:"message"`
	ErrorCode string   `json:"errorCode"`
	Fields    []string `json:"fields"`
}

// firstError reads a REST error body, an array of errors (or, seen in the
// wild, a single object), and returns the first error code that looks like
// one, with its message; "" when there is none.
func firstError(data []byte) (code, message string) {
	data = bytes.TrimSpace(data)
	var list []apiError
	if json.Unmarshal(data, &list) != nil {
		var one apiError
		if json.Unmarshal(data, &one) != nil {
			return "", ""
		}
		list = []apiError{one}
	}
	for _, e := range list {
		if codePattern.MatchString(e.ErrorCode) {
			return e.ErrorCode, e.Message
		}
	}
	return "", ""
}

// setupProblem reports whether a whole-call 400 means the org is not set
// up for the connector (a field or object the user cannot reach), which
// validation names, rather than a batch it cannot take.
func setupProblem(code, message string) bool {
	switch code {
	case codeInvalidField:
		return strings.HasPrefix(message, "No such column") || strings.Contains(message, "External ID")
	case codeInvalidType:
		return strings.Contains(message, "is not supported")
	case codeCannotInsertUpdate, codeInsufficientAccess:
		return isAccessMessage(message)
	case "INVALID_FIELD_FOR_INSERT_UPDATE":
		return true
	}
	return false
}

// isAccessMessage reports whether an error message is Salesforce's refusal
// of an object-level operation to the user.
func isAccessMessage(message string) bool {
	return strings.HasPrefix(message, "entity type cannot be") || strings.HasPrefix(message, "insufficient access")
}

// httpError is a classified non-2xx answer of the REST API. op names the
// call ("upsert of 3 leads", "Lead describe").
func (c *Connector) httpError(op string, status int, data []byte) *crm.Error {
	code, message := firstError(data)
	e := &crm.Error{StatusCode: status, Code: code}
	say := func(format string, args ...any) {
		e.Err = fmt.Errorf("salesforce %s: "+format, append([]any{op}, args...)...)
	}
	switch {
	case status == http.StatusUnauthorized:
		e.Class = crm.ClassAuth
		say("Salesforce refused the access token: the session expired or the connection was revoked")
	case status == http.StatusForbidden && code == codeRequestLimitExceeded:
		e.Class, e.RetryAfter = crm.ClassRateLimited, c.cfg.Pacing.Hold
		say("the org's API allocation is spent: deliveries wait %s and try again", c.cfg.Pacing.Hold)
	case status == http.StatusForbidden && (code == codeAPIDisabledForOrg || code == codeAPICurrentlyDisabled):
		e.Class = crm.ClassPermission
		say("API access is disabled for the org or the integration user")
	case status == http.StatusForbidden:
		e.Class = crm.ClassPermission
		say("Salesforce refused the integration user's access")
	case status == http.StatusNotFound:
		e.Class = crm.ClassPermission
		say("Salesforce could not find Lead or its %s field for the integration user", LeadKeyField)
	case status == http.StatusBadRequest && code == codeUnableToLockRow:
		e.Class = crm.ClassTransient
		say("Salesforce could not lock the records; the batch is tried again")
	case status == http.StatusBadRequest && setupProblem(code, message):
		e.Class = crm.ClassPermission
		say("the integration user cannot reach a Lead field or operation the delivery needs")
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		e.Class = crm.ClassBatchRejected
		say("Salesforce refused the call as a whole for what it carried")
	default:
		// 408, 5xx, and answers Salesforce does not document for these
		// calls: worth retrying, and shown as a sync error if they last.
		e.Class = crm.ClassTransient
		say("Salesforce answered HTTP %d", status)
	}
	return e
}

// transportError classifies a call that got no answer. The error is
// described, not quoted: a url.Error holds the URL.
func transportError(op string, err error) *crm.Error {
	return &crm.Error{Class: crm.ClassTransient, Err: fmt.Errorf("salesforce %s: %s", op, describeTransport(err))}
}

// describeTransport says why a call got no answer, without its URL.
func describeTransport(err error) string {
	var netErr net.Error
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.Is(err, context.Canceled):
		return "the call was cancelled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "Salesforce did not answer in time"
	case errors.As(err, &dnsErr):
		return "the Salesforce host name did not resolve"
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return "could not connect to Salesforce"
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	if strings.Contains(err.Error(), "tls") || strings.Contains(err.Error(), "x509") {
		return "the TLS connection to Salesforce failed"
	}
	return "the connection to Salesforce failed"
}
