package sandbox

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/sandbox/sandboxfake"
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

// requireNoSecrets fails if text, an error's, holds the API key, any test
// PII, or the sandbox's URL or address (errors reach customers).
func requireNoSecrets(t *testing.T, text, apiKey string) {
	t.Helper()
	for _, secret := range []string{apiKey, piiName, piiEmail, piiPhone, piiMessage, "secret attribute"} {
		require.NotContains(t, text, secret)
	}
	for _, internal := range []string{"http://", "https://", "127.0.0.1", "/api/v1/"} {
		require.NotContains(t, text, internal, "errors never name our endpoints")
	}
}

// TestPush covers what is particular to the sandbox connector's Push: its
// batch limit, how it reads the sandbox's answers and faults, and servers
// that misbehave. What every connector must do is the contract suite's
// (contract_test.go).
func TestPush(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		client    *sandboxfake.Client
		connector *Connector
		account   sandboxfake.Account
		// creds is the credentials document of account.
		creds []byte
	}

	setup := func(t *testing.T) *testBundle {
		t.Helper()
		server, err := sandboxfake.NewServer("")
		require.NoError(t, err)
		httpServer := httptest.NewServer(server.Handler())
		t.Cleanup(httpServer.Close)
		client := sandboxfake.NewClient(httpServer.URL, httpServer.Client())
		account, err := client.CreateAccount(context.Background(), nil)
		require.NoError(t, err)
		return &testBundle{
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

	records := func(t *testing.T, bundle *testBundle) sandboxfake.RecordStats {
		t.Helper()
		st, err := bundle.client.Records(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		return st
	}

	calls := func(t *testing.T, bundle *testBundle) []sandboxfake.Call {
		t.Helper()
		c, err := bundle.client.Calls(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		return c
	}

	t.Run("Upserts", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		first := push(t, bundle, piiRecord("lead_1"), piiRecord("lead_2"))
		require.NotEqual(t, first[0].CRMID, first[1].CRMID)
		// Created and updated are both delivered, with the sandbox's contact ID.
		again := push(t, bundle, piiRecord("lead_1"))
		require.Equal(t, first[0].CRMID, again[0].CRMID)
		require.Equal(t, map[string]int{"lead_1": 2, "lead_2": 1}, records(t, bundle).ByKey)
	})

	t.Run("BatchLimits", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		require.Equal(t, 100, bundle.connector.BatchLimit())
		require.Equal(t, sandboxfake.MaxBatchSize, bundle.connector.BatchLimit(), "the fake's limit is the sandbox's")

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
	})

	t.Run("AccessErrors", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

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
			name         string
			break_, mend func() error
			class        crm.ErrorClass
			status       int
			code         string
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
			require.Contains(t, err.Error(), tc.code, "%s: the sandbox's error code is quoted", tc.name)
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

		_, err = bundle.client.SetFaults(ctx, bundle.account.APIKey, sandboxfake.Faults{RejectField: "name", RejectContains: "Zelda"})
		require.NoError(t, err)
		results, err = bundle.connector.Push(ctx, bundle.creds, []crm.Record{piiRecord("lead_1"), {Key: "lead_2", Name: "Ada"}})
		require.NoError(t, err)
		require.Equal(t, crm.RecordResult{Key: "lead_1", Status: crm.RecordRejected, Reason: "rejected by the sandbox reject rule on field name"}, results[0])
		require.Equal(t, crm.RecordDelivered, results[1].Status)

		// A rejection without a reason still says where it comes from.
		fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, `{"results":[{"key":"lead_1","status":"rejected","id":"ct_9"}]}`)
		}))
		t.Cleanup(fake.Close)
		results, err = NewConnector(fake.URL, nil).Push(ctx, bundle.creds, []crm.Record{piiRecord("lead_1")})
		require.NoError(t, err)
		require.Equal(t, crm.RecordResult{Key: "lead_1", Status: crm.RecordRejected, Reason: "rejected by the sandbox CRM without a reason"}, results[0],
			"a rejected record has no CRM ID")
	})

	t.Run("Faults", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		for _, tc := range []struct {
			name       string
			faults     sandboxfake.Faults
			class      crm.ErrorClass
			status     int
			retryAfter time.Duration
			code       string
		}{
			{"502", sandboxfake.Faults{FailNext: 1, FailStatus: http.StatusBadGateway}, crm.ClassTransient, 502, 0, "simulated_failure"},
			{"503", sandboxfake.Faults{FailNext: 1, FailStatus: http.StatusServiceUnavailable}, crm.ClassTransient, 503, 0, "simulated_failure"},
			// A simulated 401 answers as a rejected key does.
			{"401", sandboxfake.Faults{FailNext: 1, FailStatus: http.StatusUnauthorized}, crm.ClassAuth, 401, 0, "invalid_api_key"},
			// A 400 the sandbox explains refuses the batch for what it carries: the caller splits it.
			{"400 for the batch", sandboxfake.Faults{FailNext: 1, FailStatus: http.StatusBadRequest}, crm.ClassBatchRejected, 400, 0, "simulated_failure"},
			// Any other 4xx for the whole batch is a request the sandbox cannot take, not one bad record.
			{"409 for the batch", sandboxfake.Faults{FailNext: 1, FailStatus: http.StatusConflict}, crm.ClassTransient, 409, 0, "simulated_failure"},
			{"429", sandboxfake.Faults{RateLimitNext: 1, RetryAfterSeconds: 2}, crm.ClassRateLimited, 429, 2 * time.Second, "rate_limited"},
		} {
			_, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, tc.faults)
			require.NoError(t, err, tc.name)
			crmErr := pushErr(t, bundle, piiRecord("lead_1"))
			require.Equal(t, tc.class, crmErr.Class, tc.name)
			require.Equal(t, tc.status, crmErr.StatusCode, tc.name)
			require.Equal(t, tc.retryAfter, crmErr.RetryAfter, tc.name)
			require.Equal(t, tc.code, crmErr.Code, tc.name)
			require.Contains(t, crmErr.Error(), fmt.Sprintf("(HTTP %d, %s)", tc.status, tc.code), "%s: the status and the sandbox's error code are shown", tc.name)
			require.NotContains(t, crmErr.Error(), "http://", "%s: never our URL", tc.name)

			// Validation is untouched by a contacts outage.
			checks, err := bundle.connector.Validate(ctx, bundle.creds)
			require.NoError(t, err, tc.name)
			require.True(t, checks[0].OK, tc.name)
		}
		require.Zero(t, records(t, bundle).Records, "failed calls store nothing")

		// A 429 without Retry-After leaves the wait to the caller.
		zero, one := 0, 1
		_, err := bundle.client.UpdateFaults(ctx, bundle.account.APIKey, sandboxfake.FaultsUpdate{RateLimitNext: &one, RetryAfterSeconds: &zero})
		require.NoError(t, err)
		crmErr := pushErr(t, bundle, piiRecord("lead_1"))
		require.Equal(t, crm.ClassRateLimited, crmErr.Class)
		require.Zero(t, crmErr.RetryAfter)

		push(t, bundle, piiRecord("lead_1"))
	})

	t.Run("BatchRefusals", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		// Review H1: attributes of 60,000 '<' re-encode to 360 KB a lead
		// (JSON escapes '<' as \u003c), so 25 such leads take a batch over
		// the sandbox's 8 MiB: a 413 for the batch as a whole.
		huge := make([]crm.Record, 25)
		for i := range huge {
			huge[i] = piiRecord(fmt.Sprintf("lead_huge_%d", i))
			huge[i].Attributes = map[string]any{"notes": strings.Repeat("<", 60_000)}
		}
		crmErr := pushErr(t, bundle, huge...)
		require.Equal(t, crm.ClassBatchRejected, crmErr.Class, "refused for what it carries: split it")
		require.Equal(t, http.StatusRequestEntityTooLarge, crmErr.StatusCode)
		require.Equal(t, "body_too_large", crmErr.Code)
		require.Equal(t, "batch_rejected (HTTP 413, body_too_large)", crmErr.Summary())
		// Half of them fit.
		require.Len(t, push(t, bundle, huge[:12]...), 12)

		// The refuse rule: a batch carrying the record is refused, and so
		// is the record alone, which is where a split ends.
		_, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, sandboxfake.Faults{RefuseField: "phone", RefuseContains: "0199"})
		require.NoError(t, err)
		clean := crm.Record{Key: "lead_clean", Source: "s", Phone: "+1-555-0100"}
		for _, batch := range [][]crm.Record{{clean, piiRecord("lead_refused")}, {piiRecord("lead_refused")}} {
			crmErr := pushErr(t, bundle, batch...)
			require.Equal(t, crm.ClassBatchRejected, crmErr.Class)
			require.Equal(t, "batch_rejected (HTTP 400, batch_refused)", crmErr.Summary())
		}
		push(t, bundle, clean)
		require.Equal(t, 13, records(t, bundle).Records, "refused batches store nothing")
	})

	t.Run("GivenUp", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		// A CRM that does not answer before the caller gives up. Closing
		// the server waits for its handler, so the cleanup, which runs
		// first, lets the handler go.
		arrived, released := make(chan struct{}, 1), make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			arrived <- struct{}{}
			select {
			case <-r.Context().Done():
			case <-released:
			}
		}))
		t.Cleanup(slow.Close)
		t.Cleanup(func() { close(released) })
		pushCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := NewConnector(slow.URL, nil).Push(pushCtx, bundle.creds, []crm.Record{piiRecord("lead_1")})
			done <- err
		}()
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			require.FailNow(t, "the push never reached the server")
		}
		cancel()
		err := <-done
		require.Equal(t, crm.ClassTransient, crm.ClassOf(err))
		require.ErrorIs(t, err, context.Canceled)
		requireNoSecrets(t, err.Error(), bundle.account.APIKey)
	})

	t.Run("NoSecretsInErrors", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		// An unreachable sandbox.
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		_, err := NewConnector(dead.URL, nil).Push(ctx, bundle.creds, []crm.Record{piiRecord("lead_1")})
		require.Equal(t, crm.ClassTransient, crm.ClassOf(err))
		requireNoSecrets(t, err.Error(), bundle.account.APIKey)

		// Something echoing the request in the sandbox's error shape: a
		// refused batch, whose message is never quoted.
		echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"%s %s","code":"echo"}`, r.Header.Get("Authorization"), strings.ReplaceAll(string(body), `"`, `'`))
		}))
		t.Cleanup(echo.Close)
		_, err = NewConnector(echo.URL, nil).Push(ctx, bundle.creds, []crm.Record{piiRecord("lead_1")})
		require.Equal(t, crm.ClassBatchRejected, crm.ClassOf(err))
		requireNoSecrets(t, err.Error(), bundle.account.APIKey)

		// Something that is not the sandbox at all, echoing the request as
		// text: a 400 that says nothing about the records is transient.
		plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "bad request from %s: %s %s", r.RemoteAddr, r.Header.Get("Authorization"), body)
		}))
		t.Cleanup(plain.Close)
		_, err = NewConnector(plain.URL, nil).Push(ctx, bundle.creds, []crm.Record{piiRecord("lead_1")})
		require.Equal(t, crm.ClassTransient, crm.ClassOf(err))
		requireNoSecrets(t, err.Error(), bundle.account.APIKey)

		// The sandbox's own errors, for every fault.
		for _, f := range []sandboxfake.Faults{{FailNext: 1}, {FailNext: 1, FailStatus: 401}, {FailNext: 1, FailStatus: 400}, {RateLimitNext: 1}} {
			_, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, f)
			require.NoError(t, err)
			pushErr(t, bundle, piiRecord("lead_1"))
		}
		_, err = bundle.client.DisableAPI(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		pushErr(t, bundle, piiRecord("lead_1"))
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

// BenchmarkPush measures the connector and the sandbox fake together:
// batches of MaxBatchSize new records pushed to one account over loopback
// HTTP.
func BenchmarkPush(b *testing.B) {
	server, err := sandboxfake.NewServer("")
	require.NoError(b, err)
	httpServer := httptest.NewServer(server.Handler())
	b.Cleanup(httpServer.Close)
	ctx := context.Background()
	account, err := sandboxfake.NewClient(httpServer.URL, nil).CreateAccount(ctx, nil)
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
