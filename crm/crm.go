// Package crm defines how the service talks to customers' CRMs: the
// Connector each CRM (HubSpot, Salesforce, Follow Up Boss, the sandbox)
// implements, a Registry that finds a connector by provider name, and the
// error classes a connector reports so the workflow knows whether to retry,
// wait, re-validate or give up on a record.
//
// Credentials travel as the provider's own JSON document (for example
// {"api_key": "..."}), sealed at rest by package credential. A connector
// never logs them and never puts them into an error message.
//
// # Validation checks
//
// Validate returns one integration.Check per thing the CRM needs, named with
// the Check* constants so every provider reads the same in the UI:
// CheckCredentials (code expired_credentials), CheckScopes (code
// insufficient_permissions) and CheckAPIAccess (code api_disabled). When an
// earlier check makes a later one impossible to run (rejected credentials
// hide the account's scopes), the later one is reported by NotChecked: not
// OK, with no code and a message beginning "not checked:", because claiming
// it passed would be untrue and the failing check already carries the
// reason and remediation.
//
// # Delivering leads
//
// Push delivers a batch of at most BatchLimit records and returns one
// RecordResult per record, in the order given: delivered (with the CRM's ID
// for it) or rejected (with the CRM's reason; retrying the same record will
// not help). Deliveries are idempotent on Record.Key, our lead ID: pushing a
// record again updates the CRM's record for that key and never creates a
// second one, so a batch whose outcome is unknown (timeout, crash) is simply
// pushed again.
//
// A failure of the call as a whole is an *Error whose class tells the
// workflow what to do: ClassAuth and ClassPermission trigger an immediate
// validation, ClassRateLimited waits Error.RetryAfter without counting as a
// failure, ClassTransient retries with backoff. ClassRecordRejected is never
// a whole-call class: a refused record is a RecordResult.
//
// A call the CRM refuses as a whole for what it carries (a 400 or 413 for
// the batch) is ClassBatchRejected: the caller splits the batch until it
// finds the records at fault, and a refused batch of one record is that
// record's rejection, with the Error's Summary as its reason.
//
// Neither errors nor RecordResult.Reason ever contain credentials or lead
// PII (name, email, phone, message, attributes): they end up in workflow
// history, logs and the status shown to customers. They name records by Key,
// and say counts and status codes.
//
// # What customers see of an error
//
// An Error renders as customers and support see it (last_sync_error,
// notifications, rejection reasons): "crm", the class, the HTTP status and
// the CRM's own error code, then Err's text, which names what failed in
// the CRM's terms. Never our URLs or network addresses, never a database
// error, never the offending value. Connectors keep them out of Err (a
// failed connection is NetworkError, not the transport's message, which
// quotes the URL); Error also takes out whatever looks like a URL or an
// address, as a safety net. Describe renders any error a connector returns
// that way.
//
// # Refreshable credentials
//
// A connector for a CRM whose access tokens expire (OAuth) also implements
// Refresher; the caller re-seals and stores the document it returns.
package crm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acme/integrations/integration"
)

// Connector is one CRM provider's implementation.
type Connector interface {
	// Provider is the provider name stored with an integration, e.g.
	// "hubspot" or "sandbox".
	Provider() string

	// ParseCredentials checks the shape of a credentials document (e.g.
	// {"api_key": "..."}) before anything is stored. Its error says which
	// field is wrong and never echoes secret values.
	ParseCredentials(raw []byte) error

	// Validate runs the provider's checks with the given credentials: token
	// valid (code expired_credentials), required scopes
	// (insufficient_permissions), API access enabled (api_disabled). A
	// non-nil error means validation could not run (network, 5xx, rate
	// limit), not that checks failed; it is an *Error where the connector can
	// classify it.
	Validate(ctx context.Context, raw []byte) ([]integration.Check, error)

	// BatchLimit is the most records one Push accepts; callers split
	// larger backlogs into batches of at most this size.
	BatchLimit() int

	// Push delivers records to the CRM with the given credentials and
	// returns one result per record, in the same order. Zero records make
	// no call and return no results. More than BatchLimit records is a
	// caller bug, answered with an error wrapping ErrBatchTooLarge before
	// any call. Any other error means the call as a whole failed, and is an
	// *Error of class ClassAuth, ClassPermission, ClassRateLimited (with
	// RetryAfter) or ClassTransient; then no result is returned and the
	// whole batch may be pushed again, since deliveries are idempotent on
	// Record.Key.
	Push(ctx context.Context, raw []byte, records []Record) ([]RecordResult, error)
}

// Refresher is implemented by connectors whose credentials can be refreshed,
// such as OAuth access tokens that expire while the refresh token stays
// valid. The caller refreshes when Push or Validate fails with ClassAuth (or
// ahead of a known expiry), seals and stores the returned document as the
// new current version of the same grant (unless the credentials were
// re-authorized meanwhile), and retries with it. Refresh must not return the same
// document unchanged as success. A Refresh error of class ClassAuth means the
// grant itself is gone (revoked, expired refresh token): the caller then
// validates, which reports expired_credentials and asks the customer to
// re-authorize; any other class (the token endpoint down or rate limited,
// our OAuth client misconfigured) says nothing about the grant, and the
// caller fails the call as that class (retried), never as expired
// credentials. Like every connector error it never contains the tokens.
type Refresher interface {
	Refresh(ctx context.Context, raw []byte) (newRaw []byte, err error)
}

// DisplayNamer is implemented by connectors whose CRM has a name to show
// customers ("HubSpot") other than the provider ID ("hubspot").
type DisplayNamer interface {
	DisplayName() string
}

// DisplayName is connector's DisplayName, or its provider ID.
func DisplayName(connector Connector) string {
	if n, ok := connector.(DisplayNamer); ok {
		return n.DisplayName()
	}
	return connector.Provider()
}

// Record is one lead as a CRM receives it. Key is our lead ID: deliveries
// are idempotent on it. Every other field is lead PII and must never appear
// in an error or a log line.
type Record struct {
	Key    string `json:"key"`
	Source string `json:"source"`
	// Name is the whole name as the partner sent it; FirstName and
	// LastName are its parts (the partner's, or split from Name at intake
	// by the documented rule), for CRMs that keep them apart.
	Name       string         `json:"name,omitempty"`
	FirstName  string         `json:"first_name,omitempty"`
	LastName   string         `json:"last_name,omitempty"`
	Company    string         `json:"company,omitempty"`
	Email      string         `json:"email,omitempty"`
	Phone      string         `json:"phone,omitempty"`
	Message    string         `json:"message,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// RecordStatus is the outcome of delivering one record.
type RecordStatus string

// The record outcomes.
const (
	// RecordDelivered: the CRM holds the record (created or updated).
	RecordDelivered RecordStatus = "delivered"
	// RecordRejected: the CRM refused the record on its own merits (e.g.
	// an invalid email); pushing it again will not help.
	RecordRejected RecordStatus = "rejected"
)

// RecordResult is the outcome of one record of a Push.
type RecordResult struct {
	// Key is the Record.Key this result is for.
	Key    string       `json:"key"`
	Status RecordStatus `json:"status"`
	// CRMID is the CRM's own ID of the record (RecordDelivered), when it
	// gives one.
	CRMID string `json:"crm_id,omitempty"`
	// Reason is the CRM's reason for a RecordRejected, e.g. "invalid
	// email"; it names the problem, never the offending value.
	Reason string `json:"reason,omitempty"`
}

// ErrBatchTooLarge is wrapped by Push when it is given more records than
// the connector's BatchLimit.
var ErrBatchTooLarge = errors.New("batch exceeds the connector's limit")

// CheckResults checks that results answer records one to one, in order, with
// a known status, so a connector can refuse a malformed CRM response instead
// of misattributing outcomes. Its error names counts, positions and keys
// only.
func CheckResults(records []Record, results []RecordResult) error {
	if len(results) != len(records) {
		return fmt.Errorf("%d results for %d records", len(results), len(records))
	}
	for i, res := range results {
		if res.Key != records[i].Key {
			return fmt.Errorf("result %d is for key %q, not the record's key %q", i, res.Key, records[i].Key)
		}
		switch res.Status {
		case RecordDelivered, RecordRejected:
		default:
			return fmt.Errorf("result %d (key %q) has unknown status %q", i, res.Key, res.Status)
		}
	}
	return nil
}

// Names of the validation checks every connector reports.
const (
	CheckCredentials = "credentials"
	CheckScopes      = "scopes"
	CheckAPIAccess   = "api_access"
)

// NotChecked reports a check that could not run because of the failure
// named in because, e.g. NotChecked(CheckScopes, "the credentials were
// rejected").
func NotChecked(name, because string) integration.Check {
	return integration.Check{Name: name, OK: false, Message: notCheckedPrefix + because}
}

// notCheckedPrefix begins the message of a NotChecked check.
const notCheckedPrefix = "not checked: "

// IsNotChecked reports whether c is a NotChecked check: one an earlier
// check's failure kept from running, not a failure of its own.
func IsNotChecked(c integration.Check) bool {
	return !c.OK && c.Code == "" && strings.HasPrefix(c.Message, notCheckedPrefix)
}

// CredentialsFailed is the validation of credentials the CRM refused (or
// that no longer parse): CheckCredentials fails with code
// expired_credentials, message and remediation, and each check named in
// hidden is NotChecked, since refused credentials hide what they could
// see.
func CredentialsFailed(message, remediation string, hidden ...string) []integration.Check {
	checks := []integration.Check{{
		Name:        CheckCredentials,
		Code:        integration.ReasonExpiredCredentials,
		Message:     message,
		Remediation: remediation,
	}}
	for _, name := range hidden {
		checks = append(checks, NotChecked(name, "the credentials were rejected"))
	}
	return checks
}

// ErrUnknownProvider is wrapped by Registry.Get for a provider it does not
// know.
var ErrUnknownProvider = errors.New("unknown CRM provider")

// Registry maps provider names to connectors. It is read-only after
// NewRegistry, hence safe for concurrent use.
type Registry struct {
	connectors map[string]Connector
}

// NewRegistry returns a registry of connectors. A nil connector, an empty
// provider name or two connectors for one provider is a wiring mistake and
// panics.
func NewRegistry(connectors ...Connector) *Registry {
	r := &Registry{connectors: make(map[string]Connector, len(connectors))}
	for _, c := range connectors {
		if c == nil {
			panic("crm.NewRegistry: nil connector")
		}
		name := c.Provider()
		if name == "" {
			panic(fmt.Sprintf("crm.NewRegistry: connector %T has an empty provider name", c))
		}
		if _, dup := r.connectors[name]; dup {
			panic(fmt.Sprintf("crm.NewRegistry: two connectors for provider %q", name))
		}
		r.connectors[name] = c
	}
	return r
}

// Get returns the connector for provider; an unknown provider's error lists
// the known ones.
func (r *Registry) Get(provider string) (Connector, error) {
	if c, ok := r.connectors[provider]; ok {
		return c, nil
	}
	if len(r.connectors) == 0 {
		return nil, fmt.Errorf("%w %q: no CRM providers are configured", ErrUnknownProvider, provider)
	}
	return nil, fmt.Errorf("%w %q: use one of %s", ErrUnknownProvider, provider, strings.Join(r.Providers(), ", "))
}

// Providers returns the known provider names, sorted.
func (r *Registry) Providers() []string {
	names := make([]string, 0, len(r.connectors))
	for name := range r.connectors {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// ErrorClass says how the service reacts to a failed CRM call.
type ErrorClass string

// The error classes.
const (
	// ClassAuth: the CRM rejected the credentials; validate now.
	ClassAuth ErrorClass = "auth"
	// ClassPermission: the credentials lack a permission; validate now.
	ClassPermission ErrorClass = "permission"
	// ClassRateLimited: try again after Error.RetryAfter; not a failure.
	ClassRateLimited ErrorClass = "rate_limited"
	// ClassTransient: 5xx, timeout, network; retry with backoff.
	ClassTransient ErrorClass = "transient"
	// ClassBatchRejected: the CRM refused the call as a whole for what it
	// carried (a 400 or 413 for the batch, not auth, permission, rate limit
	// or a server error). The caller splits the batch until it finds the
	// records at fault; a refused batch of one record is that record's
	// rejection, with the CRM's reason (Error.Code).
	ClassBatchRejected ErrorClass = "batch_rejected"
	// ClassRecordRejected: the CRM refused one record (bad data); retrying
	// the same record will not help. Push reports such records as
	// RecordRejected results, never as this class of whole-call error.
	ClassRecordRejected ErrorClass = "record_rejected"
)

// Error is a classified CRM failure. Err must not contain credentials or
// lead PII: it ends up in workflow history and logs.
type Error struct {
	Class ErrorClass
	// RetryAfter is the delay the CRM asked for (ClassRateLimited); zero
	// when it gave none.
	RetryAfter time.Duration
	// StatusCode is the HTTP status, zero when there was no response.
	StatusCode int
	// Code is the CRM's own error code (e.g. INVALID_SESSION_ID,
	// EXPIRED_AUTHENTICATION), when it gave one that looks like a code.
	Code string
	// Err is the detail; like the rest it is shown to customers, so it
	// names what failed in the CRM's terms, never our URLs or addresses
	// (see NetworkError), credentials or lead data.
	Err error
}

// Error renders the failure as customers see it: "crm", the Summary, the
// delay the CRM asked for, and Err's text with anything that looks like a
// URL or a network address taken out.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("crm ")
	b.WriteString(e.Summary())
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(Redact(e.Err.Error()))
	}
	return b.String()
}

// Summary is the failure in the CRM's terms alone: the class, the HTTP
// status and the CRM's error code, such as "batch_rejected (HTTP 413,
// body_too_large)". It holds nothing the CRM or the connector wrote in
// prose, so it is what a rejection reason quotes.
func (e *Error) Summary() string {
	switch {
	case e.StatusCode != 0 && e.Code != "":
		return fmt.Sprintf("%s (HTTP %d, %s)", e.Class, e.StatusCode, e.Code)
	case e.StatusCode != 0:
		return fmt.Sprintf("%s (HTTP %d)", e.Class, e.StatusCode)
	case e.Code != "":
		return fmt.Sprintf("%s (%s)", e.Class, e.Code)
	}
	return string(e.Class)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the class of err: the class of the *Error in its chain,
// ClassTransient for any other error (an unexplained failure is worth
// retrying), and "" for nil.
func ClassOf(err error) ErrorClass {
	if err == nil {
		return ""
	}
	var crmErr *Error
	if errors.As(err, &crmErr) {
		return crmErr.Class
	}
	return ClassTransient
}

// Describe renders an error a connector returned as customers may see
// it: the *Error in its chain (without the connector's wrapping, which may
// name our endpoints), or, for an error no connector classified, "crm
// transient: " and its text with URLs and addresses taken out. It returns
// "" for nil.
func Describe(err error) string {
	if err == nil {
		return ""
	}
	var crmErr *Error
	if errors.As(err, &crmErr) {
		return crmErr.Error()
	}
	return (&Error{Class: ClassTransient, Err: err}).Error()
}

// NetworkError is the ClassTransient error of a call that got no answer
// (a failed connection, a timeout, a cancelled context). Its text says
// which of these it was in words of its own, not the transport's, whose
// messages quote the URL and the address; errors.Is still finds the cause
// (context.Canceled, context.DeadlineExceeded, ...) through it.
func NetworkError(err error) *Error {
	msg := "the CRM could not be reached"
	var timeout interface{ Timeout() bool }
	switch {
	case errors.Is(err, context.Canceled):
		msg = "the call to the CRM was cancelled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &timeout) && timeout.Timeout():
		msg = "the CRM did not answer in time"
	}
	return &Error{Class: ClassTransient, Err: &quietError{msg: msg, cause: err}}
}

// quietError says msg and wraps cause without repeating its text.
type quietError struct {
	msg   string
	cause error
}

func (e *quietError) Error() string { return e.msg }
func (e *quietError) Unwrap() error { return e.cause }

// Patterns Redact takes out: URLs of any scheme, and network addresses
// (IPv4 and bracketed IPv6 addresses with or without a port, host names
// with a port).
var (
	urlPattern     = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)
	addressPattern = regexp.MustCompile(`\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?|\b[0-9]{1,3}(\.[0-9]{1,3}){3}(:[0-9]{1,5})?\b|\b(localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+):[0-9]{1,5}\b`)
)

// Redact returns text with every URL replaced by "[url]" and every
// network address by "[address]": for text that reaches customers but
// may have come from a transport or a server we do not control.
func Redact(text string) string {
	text = urlPattern.ReplaceAllString(text, "[url]")
	return addressPattern.ReplaceAllString(text, "[address]")
}

// ClassForStatus maps an HTTP error status to its usual class: 401 auth,
// 403 permission, 429 rate limited, 408 and 5xx transient, any other 4xx
// record rejected. Connectors whose CRM deviates classify for themselves.
func ClassForStatus(status int) ErrorClass {
	switch {
	case status == http.StatusUnauthorized:
		return ClassAuth
	case status == http.StatusForbidden:
		return ClassPermission
	case status == http.StatusTooManyRequests:
		return ClassRateLimited
	case status == http.StatusRequestTimeout, status >= 500:
		return ClassTransient
	default:
		return ClassRecordRejected
	}
}

// ParseRetryAfter reads a Retry-After header value, delay-seconds or an
// HTTP date relative to now. It returns 0 when the value is absent,
// unparseable or in the past.
func ParseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if secs, err := strconv.Atoi(value); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(value); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}
