package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
)

// Lead PII used in test records; no error or reason may contain it.
const (
	piiName    = "Zelda Quillfeather"
	piiEmail   = "zelda.quill@example.org"
	piiPhone   = "+1-555-0199"
	piiMessage = "call me about the blue house"
)

// piiRecord is a record full of PII, keyed key.
func piiRecord(key string) crm.Record {
	return crm.Record{Key: key, Source: "partner-x", Name: piiName, Email: piiEmail, Phone: piiPhone, Message: piiMessage,
		Attributes: map[string]any{"budget": 450000, "notes": "secret attribute"}}
}

// requireNoSecrets fails if text holds the API key or any test PII.
func requireNoSecrets(t *testing.T, text, apiKey string) {
	t.Helper()
	for _, secret := range []string{apiKey, piiName, piiEmail, piiPhone, piiMessage, "secret attribute"} {
		require.NotContains(t, text, secret)
	}
}

func TestContacts(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		server    *Server
		url       string
		client    *Client
		connector *Connector
		account   Account
		// creds is the credentials document of account.
		creds []byte
	}

	setup := func(t *testing.T) *testBundle {
		t.Helper()
		server, err := NewServer("")
		require.NoError(t, err)
		httpServer := httptest.NewServer(server.Handler())
		t.Cleanup(httpServer.Close)
		client := NewClient(httpServer.URL, httpServer.Client())
		account, err := client.CreateAccount(context.Background(), nil)
		require.NoError(t, err)
		return &testBundle{
			server:    server,
			url:       httpServer.URL,
			client:    client,
			connector: NewConnector(httpServer.URL, nil),
			account:   account,
			creds:     []byte(`{"api_key":"` + account.APIKey + `"}`),
		}
	}

	ctx := context.Background()

	// push pushes records that must all be delivered.
	push := func(t *testing.T, bundle *testBundle, records ...crm.Record) []crm.RecordResult {
		t.Helper()
		results, err := bundle.connector.Push(ctx, bundle.creds, records)
		require.NoError(t, err)
		require.Len(t, results, len(records))
		for i, r := range results {
			require.Equal(t, records[i].Key, r.Key)
			require.Equal(t, crm.RecordDelivered, r.Status, "record %d: %s", i, r.Reason)
			require.NotEmpty(t, r.CRMID)
		}
		return results
	}

	// pushErr pushes records, expecting the whole call to fail with a
	// *crm.Error free of the key and PII.
	pushErr := func(t *testing.T, bundle *testBundle, records ...crm.Record) *crm.Error {
		t.Helper()
		results, err := bundle.connector.Push(ctx, bundle.creds, records)
		require.Error(t, err)
		require.Nil(t, results)
		requireNoSecrets(t, err.Error(), bundle.account.APIKey)
		var crmErr *crm.Error
		require.ErrorAs(t, err, &crmErr)
		return crmErr
	}

	records := func(t *testing.T, bundle *testBundle) RecordStats {
		t.Helper()
		st, err := bundle.client.Records(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		return st
	}

	calls := func(t *testing.T, bundle *testBundle) []Call {
		t.Helper()
		c, err := bundle.client.Calls(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		return c
	}

	batch := func(t *testing.T, bundle *testBundle, body string) response {
		t.Helper()
		return do(t, bundle.url, http.MethodPost, "/api/v1/contacts/batch", body,
			map[string]string{"Authorization": "Bearer " + bundle.account.APIKey, "Content-Type": "application/json"})
	}

	t.Run("UpsertIsIdempotentOnKey", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		first := push(t, bundle, piiRecord("lead_1"), piiRecord("lead_2"))
		require.NotEqual(t, first[0].CRMID, first[1].CRMID)

		// A retried batch updates the same records.
		again := push(t, bundle, piiRecord("lead_1"))
		require.Equal(t, first[0].CRMID, again[0].CRMID)

		st := records(t, bundle)
		require.Equal(t, 2, st.Records)
		require.Equal(t, 3, st.Upserts)
		require.Equal(t, map[string]int{"lead_1": 2, "lead_2": 1}, st.ByKey)

		// The wire statuses: created, then updated (a repeat within one batch too).
		resp := batch(t, bundle, `{"contacts":[{"key":"lead_1","source":"s"},{"key":"lead_3","source":"s"},{"key":"lead_3","source":"s"}]}`)
		require.Equal(t, http.StatusOK, resp.status, resp.body)
		var body contactsResponse
		require.NoError(t, json.Unmarshal([]byte(resp.body), &body))
		require.Len(t, body.Results, 3)
		require.Equal(t, contactResult{Key: "lead_1", Status: "updated", ID: first[0].CRMID}, body.Results[0])
		require.Equal(t, "created", body.Results[1].Status)
		require.Equal(t, contactResult{Key: "lead_3", Status: "updated", ID: body.Results[1].ID}, body.Results[2])

		st = records(t, bundle)
		require.Equal(t, 3, st.Records)
		require.Equal(t, 6, st.Upserts)
		require.Equal(t, 2, st.ByKey["lead_3"])
	})

	t.Run("AccountsAreSeparate", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		other, err := bundle.client.CreateAccount(ctx, nil)
		require.NoError(t, err)

		push(t, bundle, piiRecord("lead_1"))
		_, err = bundle.connector.Push(ctx, []byte(`{"api_key":"`+other.APIKey+`"}`), []crm.Record{piiRecord("lead_1")})
		require.NoError(t, err)

		require.Equal(t, 1, records(t, bundle).Records)
		st, err := bundle.client.Records(ctx, other.APIKey)
		require.NoError(t, err)
		require.Equal(t, map[string]int{"lead_1": 1}, st.ByKey)
	})

	t.Run("BatchLimits", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		require.Equal(t, 100, bundle.connector.BatchLimit())

		// Nothing to push makes no call.
		results, err := bundle.connector.Push(ctx, bundle.creds, nil)
		require.NoError(t, err)
		require.Empty(t, results)

		// Over the limit is refused before any call.
		tooMany := make([]crm.Record, 101)
		for i := range tooMany {
			tooMany[i] = crm.Record{Key: fmt.Sprintf("lead_%d", i), Source: "s"}
		}
		_, err = bundle.connector.Push(ctx, bundle.creds, tooMany)
		require.ErrorIs(t, err, crm.ErrBatchTooLarge)
		require.ErrorContains(t, err, "101 records")
		require.Empty(t, calls(t, bundle))

		// Exactly the limit goes through.
		require.Len(t, push(t, bundle, tooMany[:100]...), 100)
		require.Equal(t, 100, records(t, bundle).Records)

		// The server enforces 1..100 itself.
		for _, n := range []int{0, 101} {
			contacts := make([]string, n)
			for i := range contacts {
				contacts[i] = fmt.Sprintf(`{"key":"k%d","source":"s"}`, i)
			}
			resp := batch(t, bundle, `{"contacts":[`+strings.Join(contacts, ",")+`]}`)
			require.Equal(t, http.StatusBadRequest, resp.status, "%d contacts", n)
			require.Contains(t, resp.errorMessage(t).Error, fmt.Sprintf("1 to 100 contacts, not %d", n))
		}
		require.Equal(t, 100, records(t, bundle).Records, "refused batches store nothing")
	})

	t.Run("MalformedBatches", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		for name, tc := range map[string]struct {
			body, want string
		}{
			"empty":               {"", "unexpected end"},
			"not JSON":            {`{"contacts": [` + piiEmail, "syntax error"},
			"missing key":         {`{"contacts":[{"key":"a","source":"s"},{"source":"s","email":"` + piiEmail + `"}]}`, "contacts[1].key is empty"},
			"wrong type":          {`{"contacts":[{"key":"a","phone":5551234}]}`, "must be a string, not a number"},
			"unknown field":       {`{"contacts":[{"key":"a","shoe_size":"` + piiName + `"}]}`, `unknown field "shoe_size"`},
			"attributes scalar":   {`{"contacts":[{"key":"a","attributes":"` + piiMessage + `"}]}`, "contacts[0].attributes must be a JSON object"},
			"trailing data":       {`{"contacts":[{"key":"a"}]} {}`, "data after the JSON object"},
			"contacts not a list": {`{"contacts":{"key":"a"}}`, "must be a"},
		} {
			resp := batch(t, bundle, tc.body)
			require.Equal(t, http.StatusBadRequest, resp.status, name)
			msg := resp.errorMessage(t)
			require.Equal(t, "bad_request", msg.Code, name)
			require.Contains(t, msg.Error, tc.want, name)
			requireNoSecrets(t, resp.body, bundle.account.APIKey)
			require.NotContains(t, resp.body, "5551234", name)
		}
		require.Zero(t, records(t, bundle).Records)

		resp := batch(t, bundle, `{"contacts":[{"key":"a","message":"`+strings.Repeat("x", maxContactsBodyBytes)+`"}]}`)
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.status)
		require.Zero(t, records(t, bundle).Records)
	})

	t.Run("AccessErrors", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		// Missing or unknown keys are 401 and have no account to log in.
		resp := do(t, bundle.url, http.MethodPost, "/api/v1/contacts/batch", `{"contacts":[{"key":"a"}]}`, nil)
		require.Equal(t, http.StatusUnauthorized, resp.status)
		require.Equal(t, "missing_api_key", resp.errorMessage(t).Code)
		unknown := *bundle
		unknown.creds = []byte(`{"api_key":"sbx_never_issued"}`)
		err := pushErr(t, &unknown, piiRecord("lead_1"))
		require.Equal(t, crm.ClassAuth, err.Class)
		require.Equal(t, http.StatusUnauthorized, err.StatusCode)
		require.NotContains(t, err.Error(), "sbx_never_issued")

		// Credentials that no longer parse ask for re-authorization.
		corrupt := *bundle
		corrupt.creds = []byte(`{"api_key":""}`)
		require.Equal(t, crm.ClassAuth, pushErr(t, &corrupt, piiRecord("lead_1")).Class)

		for _, tc := range []struct {
			name          string
			break_, mend  func() error
			class         crm.ErrorClass
			status        int
			code          string
			validationsOK bool
		}{
			{
				name:   "revoked",
				break_: func() error { _, err := bundle.client.Revoke(ctx, bundle.account.APIKey); return err },
				mend:   func() error { _, err := bundle.client.Restore(ctx, bundle.account.APIKey); return err },
				class:  crm.ClassAuth, status: http.StatusUnauthorized, code: "invalid_api_key",
			},
			{
				name:   "api disabled",
				break_: func() error { _, err := bundle.client.DisableAPI(ctx, bundle.account.APIKey); return err },
				mend:   func() error { _, err := bundle.client.EnableAPI(ctx, bundle.account.APIKey); return err },
				class:  crm.ClassPermission, status: http.StatusForbidden, code: "api_disabled",
			},
			{
				name: "missing scope",
				break_: func() error {
					_, err := bundle.client.DropScope(ctx, bundle.account.APIKey, ScopeContactsWrite)
					return err
				},
				mend: func() error {
					_, err := bundle.client.AddScope(ctx, bundle.account.APIKey, ScopeContactsWrite)
					return err
				},
				class: crm.ClassPermission, status: http.StatusForbidden, code: "insufficient_scope",
			},
		} {
			require.NoError(t, tc.break_(), tc.name)
			err := pushErr(t, bundle, piiRecord("lead_1"))
			require.Equal(t, tc.class, err.Class, tc.name)
			require.Equal(t, tc.status, err.StatusCode, tc.name)
			require.Contains(t, err.Error(), tc.code, tc.name)
			require.Equal(t, tc.status, calls(t, bundle)[len(calls(t, bundle))-1].Status, tc.name)
			require.NoError(t, tc.mend(), tc.name)
		}
		require.Zero(t, records(t, bundle).Records, "refused calls store nothing")
		push(t, bundle, piiRecord("lead_1"))
	})

	t.Run("RecordRejections", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		bad := piiRecord("lead_bad_email")
		bad.Email = "zelda.quill-at-example.org"
		results, err := bundle.connector.Push(ctx, bundle.creds, []crm.Record{piiRecord("lead_ok"), bad, {Key: "lead_no_email", Source: "s"}})
		require.NoError(t, err)
		require.Equal(t, crm.RecordDelivered, results[0].Status)
		require.Equal(t, crm.RecordResult{Key: "lead_bad_email", Status: crm.RecordRejected, Reason: "invalid email"}, results[1])
		require.Equal(t, crm.RecordDelivered, results[2].Status, "email is optional")

		// The reject rule, on each field it can test.
		for field, record := range map[string]crm.Record{
			"name":    {Key: "r_name", Name: "Spam Bot"},
			"email":   {Key: "r_email", Email: "Spam@example.org"},
			"phone":   {Key: "r_phone", Phone: "Spam-555"},
			"source":  {Key: "r_source", Source: "Spam-source"},
			"message": {Key: "r_message", Message: "buy Spam now"},
		} {
			f, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{RejectField: field, RejectContains: "Spam"})
			require.NoError(t, err)
			require.Equal(t, field, f.RejectField)

			clean := crm.Record{Key: "clean_" + field, Name: piiName, Email: piiEmail, Source: "s", Phone: piiPhone, Message: piiMessage}
			results, err := bundle.connector.Push(ctx, bundle.creds, []crm.Record{record, clean})
			require.NoError(t, err)
			require.Equal(t, crm.RecordRejected, results[0].Status, field)
			require.Equal(t, "rejected by the sandbox reject rule on field "+field, results[0].Reason)
			require.Empty(t, results[0].CRMID)
			require.Equal(t, crm.RecordDelivered, results[1].Status, field)
		}

		st := records(t, bundle)
		require.Equal(t, 7, st.Records, "rejected records are not stored")
		require.NotContains(t, st.ByKey, "lead_bad_email")
		require.NotContains(t, st.ByKey, "r_name")

		// Rejection never echoes the value; the key is the only handle.
		require.NoError(t, bundle.client.ClearFaults(ctx, bundle.account.APIKey))
		results, err = bundle.connector.Push(ctx, bundle.creds, []crm.Record{{Key: "r_name", Name: "Spam Bot"}})
		require.NoError(t, err)
		require.Equal(t, crm.RecordDelivered, results[0].Status, "clearing faults removes the rule")
	})

	t.Run("FailNextCountsDownThenRecovers", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		f, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{FailNext: 2, FailStatus: http.StatusBadGateway})
		require.NoError(t, err)
		require.Equal(t, 2, f.FailNext)
		require.Equal(t, http.StatusBadGateway, f.FailStatus)

		for i := range 2 {
			err := pushErr(t, bundle, piiRecord("lead_1"))
			require.Equal(t, crm.ClassTransient, err.Class, "call %d", i)
			require.Equal(t, http.StatusBadGateway, err.StatusCode)
			require.Contains(t, err.Error(), "simulated_failure")

			// Validation is untouched by the outage and uses up nothing.
			checks, err2 := bundle.connector.Validate(ctx, bundle.creds)
			require.NoError(t, err2)
			require.True(t, checks[0].OK)
		}
		f, err = bundle.client.Faults(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		require.Zero(t, f.FailNext)
		require.Zero(t, records(t, bundle).Records, "failed calls store nothing")

		push(t, bundle, piiRecord("lead_1"))
		require.Equal(t, 1, records(t, bundle).Upserts)

		// Default status is 503.
		_, err = bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{FailNext: 1})
		require.NoError(t, err)
		require.NoError(t, bundle.client.ClearFaults(ctx, bundle.account.APIKey))
		f, err = bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{FailNext: 1})
		require.NoError(t, err)
		require.Equal(t, http.StatusServiceUnavailable, f.FailStatus)
		require.Equal(t, http.StatusServiceUnavailable, pushErr(t, bundle, piiRecord("lead_1")).StatusCode)

		// fail_next: 0 ends an outage early.
		_, err = bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{FailNext: 5})
		require.NoError(t, err)
		zero := 0
		f, err = bundle.client.UpdateFaults(ctx, bundle.account.APIKey, FaultsUpdate{FailNext: &zero})
		require.NoError(t, err)
		require.Zero(t, f.FailNext)
		push(t, bundle, piiRecord("lead_1"))
	})

	t.Run("RateLimitWithRetryAfter", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		_, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{RateLimitNext: 1, RetryAfterSeconds: 2, FailNext: 1})
		require.NoError(t, err)

		// The rate limit is used up first, then the failure.
		err1 := pushErr(t, bundle, piiRecord("lead_1"))
		require.Equal(t, crm.ClassRateLimited, err1.Class)
		require.Equal(t, http.StatusTooManyRequests, err1.StatusCode)
		require.Equal(t, 2*time.Second, err1.RetryAfter)
		require.Equal(t, crm.ClassTransient, pushErr(t, bundle, piiRecord("lead_1")).Class)
		push(t, bundle, piiRecord("lead_1"))

		// The raw answer carries the header.
		_, err = bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{RateLimitNext: 1, RetryAfterSeconds: 7})
		require.NoError(t, err)
		resp := batch(t, bundle, `{"contacts":[{"key":"a"}]}`)
		require.Equal(t, http.StatusTooManyRequests, resp.status)
		require.Equal(t, "7", resp.header.Get("Retry-After"))
		require.Equal(t, "rate_limited", resp.errorMessage(t).Code)

		// retry_after_seconds 0 sends no Retry-After.
		zero, one := 0, 1
		_, err = bundle.client.UpdateFaults(ctx, bundle.account.APIKey, FaultsUpdate{RateLimitNext: &one, RetryAfterSeconds: &zero})
		require.NoError(t, err)
		err2 := pushErr(t, bundle, piiRecord("lead_1"))
		require.Equal(t, crm.ClassRateLimited, err2.Class)
		require.Zero(t, err2.RetryAfter)

		// Validation is never rate limited.
		_, err = bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{RateLimitNext: 3})
		require.NoError(t, err)
		_, err = bundle.connector.Validate(ctx, bundle.creds)
		require.NoError(t, err)
		f, err := bundle.client.Faults(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		require.Equal(t, 3, f.RateLimitNext)
	})

	t.Run("Latency", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		_, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{LatencyMS: 200})
		require.NoError(t, err)
		start := time.Now()
		push(t, bundle, piiRecord("lead_1"))
		require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)

		// Latency delays failed calls too, and not validation.
		_, err = bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{FailNext: 1})
		require.NoError(t, err)
		start = time.Now()
		pushErr(t, bundle, piiRecord("lead_1"))
		require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
		start = time.Now()
		_, err = bundle.connector.Validate(ctx, bundle.creds)
		require.NoError(t, err)
		require.Less(t, time.Since(start), 200*time.Millisecond)

		// A client that gives up does not undo the push: the CRM applies it.
		impatient := NewConnector(bundle.url, &http.Client{Timeout: 50 * time.Millisecond})
		_, err = impatient.Push(ctx, bundle.creds, []crm.Record{piiRecord("lead_2")})
		require.Equal(t, crm.ClassTransient, crm.ClassOf(err))
		requireNoSecrets(t, err.Error(), bundle.account.APIKey)
		require.Eventually(t, func() bool { return records(t, bundle).ByKey["lead_2"] == 1 }, 5*time.Second, 20*time.Millisecond)

		require.NoError(t, bundle.client.ClearFaults(ctx, bundle.account.APIKey))
		start = time.Now()
		push(t, bundle, piiRecord("lead_1"))
		require.Less(t, time.Since(start), 200*time.Millisecond)
	})

	t.Run("FaultsBadInputChangesNothing", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		path := "/control/keys/" + bundle.account.APIKey + "/faults"

		set, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{FailNext: 4, LatencyMS: 10, RejectField: "email", RejectContains: "x"})
		require.NoError(t, err)

		for name, tc := range map[string]struct{ body, want string }{
			"empty":              {"", "request body is empty"},
			"negative count":     {`{"fail_next":-1}`, "fail_next must be between 0 and"},
			"status too low":     {`{"fail_status":302}`, "fail_status must be between 400 and 599"},
			"latency too high":   {`{"latency_ms":3600000}`, "latency_ms must be between 0 and 60000"},
			"retry after":        {`{"retry_after_seconds":-2}`, "retry_after_seconds must be between"},
			"rate limit":         {`{"rate_limit_next":-2}`, "rate_limit_next must be between"},
			"unknown field":      {`{"reject_field":"shoe_size","reject_contains":"x"}`, "reject_field must be one of source, name, email, phone, message"},
			"empty rule text":    {`{"reject_contains":""}`, "reject_contains is empty"},
			"text without field": {`{"reject_field":"","reject_contains":"y"}`, "reject_contains needs reject_field"},
			"misspelt":           {`{"fail_nxt":3}`, "unknown field"},
			"mixed good and bad": {`{"fail_next":9,"latency_ms":-1}`, "latency_ms must be between"},
		} {
			resp := do(t, bundle.url, http.MethodPost, path, tc.body, nil)
			require.Equal(t, http.StatusBadRequest, resp.status, name)
			require.Contains(t, resp.errorMessage(t).Error, tc.want, name)
			require.NotContains(t, resp.body, bundle.account.APIKey, name)
		}
		got, err := bundle.client.Faults(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		require.Equal(t, set, got)

		// Merging keeps what a change does not name; removing the rule
		// removes its text.
		got, err = bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{RateLimitNext: 2})
		require.NoError(t, err)
		require.Equal(t, Faults{FailNext: 4, FailStatus: 503, LatencyMS: 10, RateLimitNext: 2, RetryAfterSeconds: 1, RejectField: "email", RejectContains: "x"}, got)
		none := ""
		got, err = bundle.client.UpdateFaults(ctx, bundle.account.APIKey, FaultsUpdate{RejectField: &none})
		require.NoError(t, err)
		require.Empty(t, got.RejectContains)

		require.NoError(t, bundle.client.ClearFaults(ctx, bundle.account.APIKey))
		got, err = bundle.client.Faults(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		require.Equal(t, DefaultFaults(), got)
	})

	t.Run("UnknownKeyOnControlAPI", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		const unknown = "sbx_never_issued"

		_, err := bundle.client.SetFaults(ctx, unknown, Faults{FailNext: 1})
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
		require.NotContains(t, err.Error(), unknown)
		for name, call := range map[string]func() error{
			"faults":  func() error { _, err := bundle.client.Faults(ctx, unknown); return err },
			"clear":   func() error { return bundle.client.ClearFaults(ctx, unknown) },
			"records": func() error { _, err := bundle.client.Records(ctx, unknown); return err },
			"calls":   func() error { _, err := bundle.client.Calls(ctx, unknown); return err },
		} {
			err := call()
			require.ErrorAs(t, err, &apiErr, name)
			require.Equal(t, "unknown_api_key", apiErr.Code, name)
			require.NotContains(t, err.Error(), unknown, name)
		}
		_, err = bundle.client.Records(ctx, " ")
		require.ErrorContains(t, err, "API key is empty")

		// A fresh account has nothing yet.
		st := records(t, bundle)
		require.Equal(t, RecordStats{ByKey: map[string]int{}}, st)
		require.Empty(t, calls(t, bundle))
	})

	t.Run("CallLog", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		before := time.Now().UTC()
		push(t, bundle, piiRecord("a"), piiRecord("b"))
		_, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{RateLimitNext: 1, FailNext: 1})
		require.NoError(t, err)
		pushErr(t, bundle, piiRecord("c"))
		pushErr(t, bundle, piiRecord("c"), piiRecord("d"), piiRecord("e"))
		_, err = bundle.connector.Validate(ctx, bundle.creds) // not a contacts call
		require.NoError(t, err)
		_, err = bundle.client.Revoke(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		pushErr(t, bundle, piiRecord("f"))

		log := calls(t, bundle)
		require.Len(t, log, 4)
		want := []struct{ status, contacts int }{{200, 2}, {429, 1}, {503, 3}, {401, 0}}
		for i, w := range want {
			require.Equal(t, w.status, log[i].Status, "call %d", i)
			require.Equal(t, w.contacts, log[i].Contacts, "call %d", i)
			require.False(t, log[i].At.Before(before), "call %d", i)
			if i > 0 {
				require.False(t, log[i].At.Before(log[i-1].At), "oldest first")
			}
		}

		// The wire format: RFC 3339 times with nanoseconds.
		resp := do(t, bundle.url, http.MethodGet, "/control/keys/"+bundle.account.APIKey+"/calls", "", nil)
		require.Equal(t, http.StatusOK, resp.status)
		var raw []map[string]any
		require.NoError(t, json.Unmarshal([]byte(resp.body), &raw))
		at, err := time.Parse(time.RFC3339Nano, raw[0]["at"].(string))
		require.NoError(t, err)
		require.True(t, at.Equal(log[0].At))
		require.EqualValues(t, 200, raw[0]["status"])
		require.EqualValues(t, 2, raw[0]["contacts"])
	})

	t.Run("ConcurrentPushes", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		const workers, batches, size = 8, 10, 20

		var wg sync.WaitGroup
		errs := make(chan error, workers*batches)
		for w := range workers {
			wg.Go(func() {
				for b := range batches {
					recs := make([]crm.Record, size)
					for i := range recs {
						// Every worker pushes the same keys: upserts collide.
						recs[i] = crm.Record{Key: fmt.Sprintf("lead_%d_%d", b, i), Source: fmt.Sprintf("worker-%d", w)}
					}
					results, err := bundle.connector.Push(ctx, bundle.creds, recs)
					if err == nil {
						err = crm.CheckResults(recs, results)
					}
					if err != nil {
						errs <- err
					}
				}
			})
		}
		// Control calls race with pushes too.
		wg.Go(func() {
			for range batches {
				if _, err := bundle.client.Records(ctx, bundle.account.APIKey); err != nil {
					errs <- err
				}
				if _, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{LatencyMS: 1}); err != nil {
					errs <- err
				}
			}
		})
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}

		st := records(t, bundle)
		require.Equal(t, batches*size, st.Records)
		require.Equal(t, workers*batches*size, st.Upserts)
		for key, n := range st.ByKey {
			require.Equal(t, workers, n, key)
		}
		require.Len(t, calls(t, bundle), workers*batches)
	})

	t.Run("NoSecretsInErrors", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		bad := piiRecord("lead_bad")
		bad.Email = "zelda.quill-example.org"
		_, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{RejectField: "name", RejectContains: "Zelda"})
		require.NoError(t, err)
		results, err := bundle.connector.Push(ctx, bundle.creds, []crm.Record{piiRecord("lead_1"), bad})
		require.NoError(t, err)
		for _, r := range results {
			require.Equal(t, crm.RecordRejected, r.Status)
			requireNoSecrets(t, r.Reason+r.CRMID, bundle.account.APIKey)
			require.NotContains(t, r.Reason, "Zelda")
		}

		for _, f := range []Faults{{FailNext: 1}, {FailNext: 1, FailStatus: 401}, {FailNext: 1, FailStatus: 400}, {RateLimitNext: 1}} {
			_, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, f)
			require.NoError(t, err)
			pushErr(t, bundle, piiRecord("lead_1"))
		}
		_, err = bundle.client.DisableAPI(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		pushErr(t, bundle, piiRecord("lead_1"))

		// An unreachable sandbox.
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		_, err = NewConnector(dead.URL, nil).Push(ctx, bundle.creds, []crm.Record{piiRecord("lead_1")})
		require.Equal(t, crm.ClassTransient, crm.ClassOf(err))
		requireNoSecrets(t, err.Error(), bundle.account.APIKey)

		// Something that is not the sandbox, echoing the request.
		echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"%s %s","code":"echo"}`, r.Header.Get("Authorization"), strings.ReplaceAll(string(body), `"`, `'`))
		}))
		t.Cleanup(echo.Close)
		_, err = NewConnector(echo.URL, nil).Push(ctx, bundle.creds, []crm.Record{piiRecord("lead_1")})
		require.Equal(t, crm.ClassTransient, crm.ClassOf(err))
		requireNoSecrets(t, err.Error(), bundle.account.APIKey)
	})

	t.Run("MalformedResults", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		for name, body := range map[string]string{
			"not JSON":        `oops`,
			"too few":         `{"results":[]}`,
			"wrong key":       `{"results":[{"key":"other","status":"created","id":"c1"}]}`,
			"unknown status":  `{"results":[{"key":"lead_1","status":"queued"}]}`,
			"results missing": `{}`,
		} {
			fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, body)
			}))
			_, err := NewConnector(fake.URL, nil).Push(ctx, bundle.creds, []crm.Record{piiRecord("lead_1")})
			fake.Close()
			require.Equal(t, crm.ClassTransient, crm.ClassOf(err), name)
			requireNoSecrets(t, err.Error(), bundle.account.APIKey)
		}
	})
}

func TestContactsAreNotPersisted(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		statePath string
		server    *Server
		url       string
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		statePath := filepath.Join(t.TempDir(), "state.json")
		server, err := NewServer(statePath)
		require.NoError(t, err)
		httpServer := httptest.NewServer(server.Handler())
		t.Cleanup(httpServer.Close)
		return &testBundle{statePath: statePath, server: server, url: httpServer.URL}
	}
	bundle := setup(t)
	ctx := context.Background()
	client := NewClient(bundle.url, nil)
	acct, err := client.CreateAccount(ctx, nil)
	require.NoError(t, err)
	creds := []byte(`{"api_key":"` + acct.APIKey + `"}`)

	before, err := os.ReadFile(bundle.statePath)
	require.NoError(t, err)
	info, err := os.Stat(bundle.statePath)
	require.NoError(t, err)
	_, err = client.SetFaults(ctx, acct.APIKey, Faults{LatencyMS: 1})
	require.NoError(t, err)
	_, err = NewConnector(bundle.url, nil).Push(ctx, creds, []crm.Record{piiRecord("lead_1")})
	require.NoError(t, err)

	after, err := os.ReadFile(bundle.statePath)
	require.NoError(t, err)
	require.Equal(t, string(before), string(after))
	infoAfter, err := os.Stat(bundle.statePath)
	require.NoError(t, err)
	require.Equal(t, info.ModTime(), infoAfter.ModTime(), "pushes and faults never write the state file")
	requireNoSecrets(t, strings.ReplaceAll(string(after), acct.APIKey, ""), "unused")

	// A restarted sandbox keeps the account and forgets its contacts.
	restarted, err := NewServer(bundle.statePath)
	require.NoError(t, err)
	httpServer := httptest.NewServer(restarted.Handler())
	t.Cleanup(httpServer.Close)
	st, err := NewClient(httpServer.URL, nil).Records(ctx, acct.APIKey)
	require.NoError(t, err)
	require.Zero(t, st.Records)
}

func TestCallLogKeepsTheLastThousand(t *testing.T) {
	t.Parallel()
	book := newContactBook()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range callLogSize + 5 {
		book.logCall(Call{At: start.Add(time.Duration(i) * time.Second), Status: 200, Contacts: i})
	}
	log := book.callLog()
	require.Len(t, log, callLogSize)
	require.Equal(t, 5, log[0].Contacts, "the oldest five were dropped")
	require.Equal(t, callLogSize+4, log[len(log)-1].Contacts)
	for i := 1; i < len(log); i++ {
		require.Equal(t, log[i-1].Contacts+1, log[i].Contacts)
	}
}

// BenchmarkPush measures the connector and server together: batches of
// MaxBatchSize new records pushed to one account over loopback HTTP.
func BenchmarkPush(b *testing.B) {
	server, err := NewServer("")
	require.NoError(b, err)
	httpServer := httptest.NewServer(server.Handler())
	b.Cleanup(httpServer.Close)
	ctx := context.Background()
	account, err := NewClient(httpServer.URL, nil).CreateAccount(ctx, nil)
	require.NoError(b, err)
	creds := []byte(`{"api_key":"` + account.APIKey + `"}`)
	connector := NewConnector(httpServer.URL, nil)

	var workers atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		worker := workers.Add(1)
		recs := make([]crm.Record, MaxBatchSize)
		for batch := 0; pb.Next(); batch++ {
			for i := range recs {
				recs[i] = piiRecord(fmt.Sprintf("lead_%d_%d_%d", worker, batch, i))
			}
			if _, err := connector.Push(ctx, creds, recs); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*MaxBatchSize)/b.Elapsed().Seconds(), "records/s")
}
