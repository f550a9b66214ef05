package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
)

// fakeConnector is a Connector that only has a name.
type fakeConnector struct{ name string }

func (f fakeConnector) Provider() string                  { return f.name }
func (f fakeConnector) ParseCredentials(raw []byte) error { return nil }
func (f fakeConnector) Validate(context.Context, []byte) ([]integration.Check, error) {
	return nil, nil
}
func (f fakeConnector) BatchLimit() int { return 1 }
func (f fakeConnector) Push(context.Context, []byte, []Record) ([]RecordResult, error) {
	return nil, nil
}

type testBundle struct {
	registry *Registry
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{registry: NewRegistry(fakeConnector{"sandbox"}, fakeConnector{"hubspot"})}
}

func TestRegistryGet(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	c, err := bundle.registry.Get("hubspot")
	require.NoError(t, err)
	require.Equal(t, "hubspot", c.Provider())

	_, err = bundle.registry.Get("salesforce")
	require.ErrorIs(t, err, ErrUnknownProvider)
	require.ErrorContains(t, err, `"salesforce"`)
	require.ErrorContains(t, err, "use one of hubspot, sandbox")

	_, err = NewRegistry().Get("sandbox")
	require.ErrorIs(t, err, ErrUnknownProvider)
	require.ErrorContains(t, err, "no CRM providers are configured")
}

func TestRegistryProviders(t *testing.T) {
	t.Parallel()
	bundle := setup(t)

	require.Equal(t, []string{"hubspot", "sandbox"}, bundle.registry.Providers())
	require.Empty(t, NewRegistry().Providers())
}

func TestNewRegistryWiringMistakes(t *testing.T) {
	t.Parallel()

	require.PanicsWithValue(t, `crm.NewRegistry: two connectors for provider "sandbox"`, func() {
		NewRegistry(fakeConnector{"sandbox"}, fakeConnector{"sandbox"})
	})
	require.Panics(t, func() { NewRegistry(fakeConnector{""}) })
	require.Panics(t, func() { NewRegistry(nil) })
}

func TestNotChecked(t *testing.T) {
	t.Parallel()

	c := NotChecked(CheckScopes, "the credentials were rejected")
	require.Equal(t, integration.Check{Name: "scopes", Message: "not checked: the credentials were rejected"}, c)
	require.False(t, c.OK)
}

func TestErrorClass(t *testing.T) {
	t.Parallel()

	cause := errors.New("too many requests")
	err := fmt.Errorf("push lead: %w", &Error{Class: ClassRateLimited, RetryAfter: 30 * time.Second, StatusCode: 429, Err: cause})

	require.Equal(t, ClassRateLimited, ClassOf(err))
	require.ErrorIs(t, err, cause)
	require.EqualError(t, err, "push lead: crm rate_limited (HTTP 429), retry after 30s: too many requests")

	var crmErr *Error
	require.ErrorAs(t, err, &crmErr)
	require.Equal(t, 30*time.Second, crmErr.RetryAfter)

	require.Equal(t, ClassTransient, ClassOf(errors.New("connection reset")))
	require.Equal(t, ErrorClass(""), ClassOf(nil))
	require.EqualError(t, &Error{Class: ClassTransient}, "crm transient")
}

func TestClassForStatus(t *testing.T) {
	t.Parallel()

	for status, want := range map[int]ErrorClass{
		http.StatusUnauthorized:        ClassAuth,
		http.StatusForbidden:           ClassPermission,
		http.StatusTooManyRequests:     ClassRateLimited,
		http.StatusRequestTimeout:      ClassTransient,
		http.StatusInternalServerError: ClassTransient,
		http.StatusBadGateway:          ClassTransient,
		http.StatusServiceUnavailable:  ClassTransient,
		http.StatusBadRequest:          ClassRecordRejected,
		http.StatusConflict:            ClassRecordRejected,
		http.StatusUnprocessableEntity: ClassRecordRejected,
	} {
		require.Equal(t, want, ClassForStatus(status), "status %d", status)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

	require.Equal(t, 120*time.Second, ParseRetryAfter("120", now))
	require.Equal(t, 90*time.Second, ParseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now))
	require.Zero(t, ParseRetryAfter("", now))
	require.Zero(t, ParseRetryAfter("soon", now))
	require.Zero(t, ParseRetryAfter("-5", now))
	require.Zero(t, ParseRetryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now))
}

func TestCheckResults(t *testing.T) {
	t.Parallel()
	records := []Record{{Key: "lead_1", Email: "ann@example.com"}, {Key: "lead_2", Name: "Bob Secret"}}
	delivered := RecordResult{Key: "lead_1", Status: RecordDelivered, CRMID: "c1"}
	rejected := RecordResult{Key: "lead_2", Status: RecordRejected, Reason: "invalid email"}

	require.NoError(t, CheckResults(records, []RecordResult{delivered, rejected}))
	require.NoError(t, CheckResults(nil, nil))

	for name, tc := range map[string]struct {
		results []RecordResult
		want    string
	}{
		"too few":        {[]RecordResult{delivered}, "1 results for 2 records"},
		"too many":       {[]RecordResult{delivered, rejected, rejected}, "3 results for 2 records"},
		"out of order":   {[]RecordResult{rejected, delivered}, `result 0 is for key "lead_2", not the record's key "lead_1"`},
		"unknown status": {[]RecordResult{delivered, {Key: "lead_2", Status: "queued"}}, `result 1 (key "lead_2") has unknown status "queued"`},
	} {
		err := CheckResults(records, tc.results)
		require.EqualError(t, err, tc.want, name)
		// Keys and counts only: never the records' contents.
		require.NotContains(t, err.Error(), "example.com", name)
		require.NotContains(t, err.Error(), "Secret", name)
	}
}

func TestRecordJSON(t *testing.T) {
	t.Parallel()

	// Connectors may send a Record as is; the field names are the wire
	// names a CRM sees, and empty optional fields are left out.
	data, err := json.Marshal(Record{Key: "lead_1", Source: "zillow", Email: "a@example.com", Attributes: map[string]any{"budget": 300}})
	require.NoError(t, err)
	require.JSONEq(t, `{"key":"lead_1","source":"zillow","email":"a@example.com","attributes":{"budget":300}}`, string(data))

	data, err = json.Marshal(RecordResult{Key: "lead_1", Status: RecordRejected, Reason: "invalid email"})
	require.NoError(t, err)
	require.JSONEq(t, `{"key":"lead_1","status":"rejected","reason":"invalid email"}`, string(data))
}

func TestErrorRendering(t *testing.T) {
	t.Parallel()

	refused := &Error{Class: ClassBatchRejected, StatusCode: 413, Code: "body_too_large", Err: errors.New("the CRM answered 413 Request Entity Too Large")}
	require.Equal(t, "batch_rejected (HTTP 413, body_too_large)", refused.Summary(), "class, status and code only")
	require.Equal(t, "rate_limited (HTTP 429)", (&Error{Class: ClassRateLimited, StatusCode: 429}).Summary())
	require.Equal(t, "auth (INVALID_SESSION_ID)", (&Error{Class: ClassAuth, Code: "INVALID_SESSION_ID"}).Summary())
	require.Equal(t, "transient", (&Error{Class: ClassTransient}).Summary())
	require.EqualError(t, refused, "crm batch_rejected (HTTP 413, body_too_large): the CRM answered 413 Request Entity Too Large")

	// Whatever a connector let through, customers see no URL or address.
	leaky := &Error{Class: ClassTransient, StatusCode: 503,
		Err: errors.New(`POST http://10.0.0.7:8090/api/v1/contacts/batch?key=x answered 503; dial tcp 10.0.0.7:8090, [fd00::1]:443, crm.internal.example:8443`)}
	require.EqualError(t, leaky, "crm transient (HTTP 503): POST [url] answered 503; dial tcp [address], [address], [address]")
	for _, internal := range []string{"http://", "10.0.0.7", "fd00", "crm.internal", "8090"} {
		require.NotContains(t, leaky.Error(), internal)
	}
	require.Equal(t, "retry after 1.5s at 15:04:05, HTTP 503", Redact("retry after 1.5s at 15:04:05, HTTP 503"), "times and codes are no addresses")
}

func TestDescribe(t *testing.T) {
	t.Parallel()

	inner := &Error{Class: ClassPermission, StatusCode: 403, Code: "insufficient_scope", Err: errors.New("the CRM answered 403 Forbidden")}
	wrapped := fmt.Errorf("push to http://127.0.0.1:8090/api of 3 records: %w", inner)
	require.Equal(t, inner.Error(), Describe(wrapped), "the *Error, without the connector's wrapping")
	require.Equal(t, `crm transient: Post "[url]": EOF`, Describe(errors.New(`Post "https://crm.example.com/x": EOF`)), "an unclassified error is transient, its URLs taken out")
	require.Empty(t, Describe(nil))
}

func TestNetworkError(t *testing.T) {
	t.Parallel()

	transport := &url.Error{Op: "Post", URL: "http://127.0.0.1:8090/api/v1/contacts/batch", Err: errors.New("dial tcp 127.0.0.1:8090: connect: connection refused")}
	err := NetworkError(transport)
	require.Equal(t, ClassTransient, err.Class)
	require.EqualError(t, err, "crm transient: the CRM could not be reached")
	require.ErrorIs(t, err, transport, "the cause stays in the chain")

	canceled := NetworkError(&url.Error{Op: "Post", URL: "http://x", Err: context.Canceled})
	require.EqualError(t, canceled, "crm transient: the call to the CRM was cancelled")
	require.ErrorIs(t, canceled, context.Canceled)

	timeout := NetworkError(&url.Error{Op: "Post", URL: "http://x", Err: timeoutError{}})
	require.EqualError(t, timeout, "crm transient: the CRM did not answer in time")
	require.EqualError(t, NetworkError(context.DeadlineExceeded), "crm transient: the CRM did not answer in time")
}

// timeoutError is a network error that timed out.
type timeoutError struct{}

func (timeoutError) Error() string { return "i/o timeout" }
func (timeoutError) Timeout() bool { return true }

func TestCredentialsFailed(t *testing.T) {
	t.Parallel()
	checks := CredentialsFailed("the API key was rejected (HTTP 401)", "Re-authorize", CheckScopes, CheckAPIAccess)
	require.Equal(t, []integration.Check{
		{Name: CheckCredentials, Code: integration.ReasonExpiredCredentials, Message: "the API key was rejected (HTTP 401)", Remediation: "Re-authorize"},
		{Name: CheckScopes, Message: "not checked: the credentials were rejected"},
		{Name: CheckAPIAccess, Message: "not checked: the credentials were rejected"},
	}, checks)
	require.Len(t, CredentialsFailed("m", "r"), 1, "nothing else hidden")
}
