package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
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
