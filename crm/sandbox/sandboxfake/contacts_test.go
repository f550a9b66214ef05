package sandboxfake

import (
	"bytes"
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
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm/crmfake"
)

// Lead PII used in test contacts; no error or reason may contain it.
const (
	piiName    = "Zelda Quillfeather"
	piiEmail   = "zelda.quill@example.org"
	piiPhone   = "+1-555-0199"
	piiMessage = "call me about the blue house"
)

// piiContact is a contact full of PII, keyed key.
func piiContact(key string) contactIn {
	return contactIn{Key: key, Source: "partner-x", Name: piiName, Email: piiEmail, Phone: piiPhone, Message: piiMessage,
		Attributes: json.RawMessage(`{"budget":450000,"notes":"secret attribute"}`)}
}

// requireNoSecrets fails if text holds the API key or any test PII.
func requireNoSecrets(t *testing.T, text, apiKey string) {
	t.Helper()
	for _, secret := range []string{apiKey, piiName, piiEmail, piiPhone, piiMessage, "secret attribute"} {
		require.NotContains(t, text, secret)
	}
}

// batchAnswer is the sandbox's answer to one contacts call.
type batchAnswer struct {
	status  int
	header  http.Header
	body    string
	results []contactResult
}

// postContacts posts contacts to the CRM API with key, as the sandbox
// connector does, and decodes a 200 answer's results. It does not use the
// connector: the fake is tested on the wire, and the connector against the
// fake by the contract suite.
func postContacts(ctx context.Context, baseURL, key string, contacts []contactIn) (batchAnswer, error) {
	body, err := json.Marshal(contactsRequest{Contacts: contacts})
	if err != nil {
		return batchAnswer{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/api/v1/contacts/batch", bytes.NewReader(body))
	if err != nil {
		return batchAnswer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return batchAnswer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return batchAnswer{}, err
	}
	answer := batchAnswer{status: resp.StatusCode, header: resp.Header, body: string(data)}
	if resp.StatusCode == http.StatusOK {
		var decoded contactsResponse
		if err := json.Unmarshal(data, &decoded); err != nil {
			return answer, fmt.Errorf("decode results: %w", err)
		}
		answer.results = decoded.Results
	}
	return answer, nil
}

// checkUpserted returns an error unless results upsert contacts one to one,
// in order, each with an ID.
func checkUpserted(contacts []contactIn, results []contactResult) error {
	if len(results) != len(contacts) {
		return fmt.Errorf("%d results for %d contacts", len(results), len(contacts))
	}
	for i, r := range results {
		switch {
		case r.Key != contacts[i].Key:
			return fmt.Errorf("result %d is for key %q, not %q", i, r.Key, contacts[i].Key)
		case r.Status != contactCreated && r.Status != contactUpdated:
			return fmt.Errorf("result %d (%s) is %s: %s", i, r.Key, r.Status, r.Error)
		case r.ID == "" || r.Error != "":
			return fmt.Errorf("result %d (%s) has ID %q and error %q", i, r.Key, r.ID, r.Error)
		}
	}
	return nil
}

// sleeper stands in for time.Sleep in a Server's latency fault: it records
// the delays asked for, and while held it blocks every sleeping call until
// released, so tests see the latency fault without measuring time.
type sleeper struct {
	mu    sync.Mutex
	slept []time.Duration
	// held, when not nil, blocks sleeping calls until it is closed; each
	// call announces itself on asleep first.
	held   chan struct{}
	asleep chan struct{}
}

func (s *sleeper) sleep(d time.Duration) {
	s.mu.Lock()
	s.slept = append(s.slept, d)
	held, asleep := s.held, s.asleep
	s.mu.Unlock()
	if held != nil {
		asleep <- struct{}{}
		<-held
	}
}

// delays returns the delays asked for so far.
func (s *sleeper) delays() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.slept...)
}

// hold makes sleeping calls block until release is called (more than once
// is fine); t's cleanup releases them too, before the server is closed,
// which waits for them.
func (s *sleeper) hold(t *testing.T) (asleep <-chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := make(chan struct{})
	s.held, s.asleep = held, make(chan struct{}, 16)
	release = sync.OnceFunc(func() { close(held) })
	t.Cleanup(release)
	return s.asleep, release
}

func TestContacts(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		server  *Server
		sleeper *sleeper
		url     string
		client  *Client
		account Account
	}

	setup := func(t *testing.T) *testBundle {
		t.Helper()
		server, err := NewServer("")
		require.NoError(t, err)
		// Installed before the server serves, so no request races with it.
		sl := &sleeper{}
		server.sleep = sl.sleep
		httpServer := httptest.NewServer(server.Handler())
		t.Cleanup(httpServer.Close)
		client := NewClient(httpServer.URL, httpServer.Client())
		account, err := client.CreateAccount(context.Background(), nil)
		require.NoError(t, err)
		return &testBundle{server: server, sleeper: sl, url: httpServer.URL, client: client, account: account}
	}

	ctx := context.Background()

	// pushAs posts contacts with key and returns the answer, whatever it is.
	pushAs := func(t *testing.T, bundle *testBundle, key string, contacts ...contactIn) batchAnswer {
		t.Helper()
		answer, err := postContacts(ctx, bundle.url, key, contacts)
		require.NoError(t, err)
		return answer
	}

	// push posts contacts that must all be upserted.
	push := func(t *testing.T, bundle *testBundle, contacts ...contactIn) []contactResult {
		t.Helper()
		answer := pushAs(t, bundle, bundle.account.APIKey, contacts...)
		require.Equal(t, http.StatusOK, answer.status, answer.body)
		require.NoError(t, checkUpserted(contacts, answer.results))
		return answer.results
	}

	// pushErr posts contacts, expecting the whole call to be answered with
	// status and a JSON error of code, free of the key and PII.
	pushErr := func(t *testing.T, bundle *testBundle, status int, code string, contacts ...contactIn) batchAnswer {
		t.Helper()
		answer := pushAs(t, bundle, bundle.account.APIKey, contacts...)
		require.Equal(t, status, answer.status, answer.body)
		require.Equal(t, code, response{status: answer.status, body: answer.body}.errorMessage(t).Code)
		requireNoSecrets(t, answer.body, bundle.account.APIKey)
		return answer
	}

	// me calls GET /api/v1/me with the account's key.
	me := func(t *testing.T, bundle *testBundle) response {
		t.Helper()
		return do(t, bundle.url, http.MethodGet, "/api/v1/me", "", map[string]string{"Authorization": "Bearer " + bundle.account.APIKey})
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

		first := push(t, bundle, piiContact("lead_1"), piiContact("lead_2"))
		require.Equal(t, contactCreated, first[0].Status)
		require.NotEqual(t, first[0].ID, first[1].ID)

		// A retried batch updates the same records.
		again := push(t, bundle, piiContact("lead_1"))
		require.Equal(t, contactResult{Key: "lead_1", Status: contactUpdated, ID: first[0].ID}, again[0])

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
		require.Equal(t, contactResult{Key: "lead_1", Status: "updated", ID: first[0].ID}, body.Results[0])
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

		push(t, bundle, piiContact("lead_1"))
		answer := pushAs(t, bundle, other.APIKey, piiContact("lead_1"))
		require.Equal(t, http.StatusOK, answer.status, answer.body)
		require.Equal(t, contactCreated, answer.results[0].Status, "the other account holds no lead_1 yet")

		require.Equal(t, 1, records(t, bundle).Records)
		st, err := bundle.client.Records(ctx, other.APIKey)
		require.NoError(t, err)
		require.Equal(t, map[string]int{"lead_1": 1}, st.ByKey)
	})

	t.Run("BatchLimits", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		require.Equal(t, 100, MaxBatchSize)

		// Exactly the limit goes through.
		full := make([]contactIn, MaxBatchSize)
		for i := range full {
			full[i] = contactIn{Key: fmt.Sprintf("lead_%d", i), Source: "s"}
		}
		require.Len(t, push(t, bundle, full...), 100)
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
		unknown.account.APIKey = "sbx_never_issued"
		answer := pushErr(t, &unknown, http.StatusUnauthorized, "invalid_api_key", piiContact("lead_1"))
		require.NotContains(t, answer.body, "sbx_never_issued")

		for _, tc := range []struct {
			name         string
			break_, mend func() error
			status       int
			code         string
		}{
			{
				name:   "revoked",
				break_: func() error { _, err := bundle.client.Revoke(ctx, bundle.account.APIKey); return err },
				mend:   func() error { _, err := bundle.client.Restore(ctx, bundle.account.APIKey); return err },
				status: http.StatusUnauthorized, code: "invalid_api_key",
			},
			{
				name:   "api disabled",
				break_: func() error { _, err := bundle.client.DisableAPI(ctx, bundle.account.APIKey); return err },
				mend:   func() error { _, err := bundle.client.EnableAPI(ctx, bundle.account.APIKey); return err },
				status: http.StatusForbidden, code: "api_disabled",
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
				status: http.StatusForbidden, code: "insufficient_scope",
			},
		} {
			require.NoError(t, tc.break_(), tc.name)
			pushErr(t, bundle, tc.status, tc.code, piiContact("lead_1"))
			log := calls(t, bundle)
			require.Equal(t, tc.status, log[len(log)-1].Status, tc.name)
			require.NoError(t, tc.mend(), tc.name)
		}
		require.Zero(t, records(t, bundle).Records, "refused calls store nothing")
		push(t, bundle, piiContact("lead_1"))
	})

	t.Run("RecordRejections", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		bad := piiContact("lead_bad_email")
		bad.Email = "zelda.quill-at-example.org"
		answer := pushAs(t, bundle, bundle.account.APIKey, piiContact("lead_ok"), bad, contactIn{Key: "lead_no_email", Source: "s"})
		require.Equal(t, http.StatusOK, answer.status, answer.body)
		results := answer.results
		require.Equal(t, contactCreated, results[0].Status)
		require.Equal(t, contactResult{Key: "lead_bad_email", Status: contactRejected, Error: "invalid email"}, results[1])
		require.Equal(t, contactCreated, results[2].Status, "email is optional")

		// The reject rule, on each field it can test.
		for field, contact := range map[string]contactIn{
			"name":    {Key: "r_name", Name: "Spam Bot"},
			"email":   {Key: "r_email", Email: "Spam@example.org"},
			"phone":   {Key: "r_phone", Phone: "Spam-555"},
			"source":  {Key: "r_source", Source: "Spam-source"},
			"message": {Key: "r_message", Message: "buy Spam now"},
		} {
			f, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{RejectField: field, RejectContains: "Spam"})
			require.NoError(t, err)
			require.Equal(t, field, f.RejectField)

			clean := contactIn{Key: "clean_" + field, Name: piiName, Email: piiEmail, Source: "s", Phone: piiPhone, Message: piiMessage}
			answer := pushAs(t, bundle, bundle.account.APIKey, contact, clean)
			require.Equal(t, http.StatusOK, answer.status, answer.body)
			require.Equal(t, contactResult{Key: contact.Key, Status: contactRejected, Error: "rejected by the sandbox reject rule on field " + field}, answer.results[0])
			require.Equal(t, contactCreated, answer.results[1].Status, field)
		}

		st := records(t, bundle)
		require.Equal(t, 7, st.Records, "rejected records are not stored")
		require.NotContains(t, st.ByKey, "lead_bad_email")
		require.NotContains(t, st.ByKey, "r_name")

		// Clearing the faults removes the rule.
		require.NoError(t, bundle.client.ClearFaults(ctx, bundle.account.APIKey))
		push(t, bundle, contactIn{Key: "r_name", Name: "Spam Bot"})
	})

	t.Run("RefuseRule", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		f, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{RefuseField: "email", RefuseContains: "quill"})
		require.NoError(t, err)
		require.Equal(t, DefaultRefuseStatus, f.RefuseStatus, "a refused batch is a 400 unless told otherwise")

		// Every call carrying a matching contact is refused as a whole,
		// naming the field, never the contact or its value.
		clean := contactIn{Key: "clean", Source: "s", Email: "ada@example.org"}
		for range 2 {
			answer := pushErr(t, bundle, http.StatusBadRequest, "batch_refused", clean, piiContact("lead_1"))
			require.Contains(t, answer.body, "email")
			require.NotContains(t, answer.body, "quill")
			require.NotContains(t, answer.body, "lead_1")
		}
		pushErr(t, bundle, http.StatusBadRequest, "batch_refused", piiContact("lead_1"))
		require.Zero(t, records(t, bundle).Records, "nothing of a refused call is stored")
		// The others go through.
		push(t, bundle, clean)

		// A 5xx refusal fails the calls that carry the contact as an outage
		// that spares all others would.
		status := http.StatusBadGateway
		_, err = bundle.client.UpdateFaults(ctx, bundle.account.APIKey, FaultsUpdate{RefuseStatus: &status})
		require.NoError(t, err)
		pushErr(t, bundle, http.StatusBadGateway, "simulated_failure", piiContact("lead_1"))
		push(t, bundle, contactIn{Key: "clean_2", Source: "s"})

		// Removing the field removes the rule.
		none := ""
		f, err = bundle.client.UpdateFaults(ctx, bundle.account.APIKey, FaultsUpdate{RefuseField: &none})
		require.NoError(t, err)
		require.Empty(t, f.RefuseContains)
		push(t, bundle, piiContact("lead_1"))
		calls, err := bundle.client.Calls(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		var statuses []int
		for _, c := range calls {
			statuses = append(statuses, c.Status)
		}
		require.Equal(t, []int{400, 400, 400, 200, 502, 200, 200}, statuses, "refused calls are in the call log")
	})

	t.Run("FailNextCountsDownThenRecovers", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		f, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{FailNext: 2, FailStatus: http.StatusBadGateway})
		require.NoError(t, err)
		require.Equal(t, 2, f.FailNext)
		require.Equal(t, http.StatusBadGateway, f.FailStatus)

		for i := range 2 {
			answer := pushErr(t, bundle, http.StatusBadGateway, "simulated_failure", piiContact("lead_1"))
			require.Contains(t, answer.body, "fail_next", "call %d: the error says where the failure comes from", i)

			// Validation is untouched by the outage and uses up nothing.
			require.Equal(t, http.StatusOK, me(t, bundle).status, "call %d", i)
		}
		f, err = bundle.client.Faults(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		require.Zero(t, f.FailNext)
		require.Zero(t, records(t, bundle).Records, "failed calls store nothing")

		push(t, bundle, piiContact("lead_1"))
		require.Equal(t, 1, records(t, bundle).Upserts)

		// Default status is 503.
		_, err = bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{FailNext: 1})
		require.NoError(t, err)
		require.NoError(t, bundle.client.ClearFaults(ctx, bundle.account.APIKey))
		f, err = bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{FailNext: 1})
		require.NoError(t, err)
		require.Equal(t, http.StatusServiceUnavailable, f.FailStatus)
		pushErr(t, bundle, http.StatusServiceUnavailable, "simulated_failure", piiContact("lead_1"))

		// fail_next: 0 ends an outage early.
		_, err = bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{FailNext: 5})
		require.NoError(t, err)
		zero := 0
		f, err = bundle.client.UpdateFaults(ctx, bundle.account.APIKey, FaultsUpdate{FailNext: &zero})
		require.NoError(t, err)
		require.Zero(t, f.FailNext)
		push(t, bundle, piiContact("lead_1"))
	})

	t.Run("FailMeFailsValidationToo", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		f, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{FailNext: 2, FailMe: true})
		require.NoError(t, err)
		require.True(t, f.FailMe)

		// Both APIs use up the one count.
		resp := me(t, bundle)
		require.Equal(t, http.StatusServiceUnavailable, resp.status)
		require.Equal(t, "simulated_failure", resp.errorMessage(t).Code)
		require.NotContains(t, resp.body, bundle.account.APIKey)
		pushErr(t, bundle, http.StatusServiceUnavailable, "simulated_failure", piiContact("lead_1"))
		require.Equal(t, http.StatusOK, me(t, bundle).status)
		push(t, bundle, piiContact("lead_1"))

		// Credentials come first: a revoked key is 401 during the outage
		// and uses up nothing.
		_, err = bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{FailNext: 1})
		require.NoError(t, err)
		_, err = bundle.client.Revoke(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		require.Equal(t, http.StatusUnauthorized, me(t, bundle).status)
		f, err = bundle.client.Faults(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		require.Equal(t, 1, f.FailNext)

		// Clearing turns it off; without it /me is never failed.
		require.NoError(t, bundle.client.ClearFaults(ctx, bundle.account.APIKey))
		_, err = bundle.client.Restore(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		f, err = bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{FailNext: 1})
		require.NoError(t, err)
		require.False(t, f.FailMe)
		require.Equal(t, http.StatusOK, me(t, bundle).status)
	})

	t.Run("RateLimitWithRetryAfter", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		_, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{RateLimitNext: 1, RetryAfterSeconds: 2, FailNext: 1})
		require.NoError(t, err)

		// The rate limit is used up first, then the failure.
		limited := pushErr(t, bundle, http.StatusTooManyRequests, "rate_limited", piiContact("lead_1"))
		require.Equal(t, "2", limited.header.Get("Retry-After"))
		pushErr(t, bundle, http.StatusServiceUnavailable, "simulated_failure", piiContact("lead_1"))
		push(t, bundle, piiContact("lead_1"))

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
		limited = pushErr(t, bundle, http.StatusTooManyRequests, "rate_limited", piiContact("lead_1"))
		require.Empty(t, limited.header.Values("Retry-After"))

		// Validation is never rate limited.
		_, err = bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{RateLimitNext: 3})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, me(t, bundle).status)
		f, err := bundle.client.Faults(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		require.Equal(t, 3, f.RateLimitNext)
	})

	t.Run("Latency", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		_, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{LatencyMS: 200})
		require.NoError(t, err)
		push(t, bundle, piiContact("lead_1"))
		require.Equal(t, []time.Duration{200 * time.Millisecond}, bundle.sleeper.delays())

		// Latency delays failed and refused calls too, and not validation.
		_, err = bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{FailNext: 1})
		require.NoError(t, err)
		pushErr(t, bundle, http.StatusServiceUnavailable, "simulated_failure", piiContact("lead_1"))
		batch(t, bundle, `{"contacts":[]}`)
		require.Equal(t, http.StatusOK, me(t, bundle).status)
		require.Equal(t, []time.Duration{200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}, bundle.sleeper.delays())

		require.NoError(t, bundle.client.ClearFaults(ctx, bundle.account.APIKey))
		push(t, bundle, piiContact("lead_1"))
		require.Len(t, bundle.sleeper.delays(), 3, "no latency once the faults are cleared")
	})

	t.Run("GivenUpCallIsApplied", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		_, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{LatencyMS: 200})
		require.NoError(t, err)

		// A client that gives up while the CRM is slow does not undo the
		// push: the CRM applies it, as a real one may.
		asleep, release := bundle.sleeper.hold(t)
		callCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := postContacts(callCtx, bundle.url, bundle.account.APIKey, []contactIn{piiContact("lead_2")})
			done <- err
		}()
		select {
		case <-asleep:
		case <-time.After(10 * time.Second):
			require.FailNow(t, "the contacts call never reached the latency fault")
		}
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
		require.Zero(t, records(t, bundle).Records, "still waiting out the latency")
		release()
		require.Eventually(t, func() bool { return records(t, bundle).ByKey["lead_2"] == 1 }, 10*time.Second, 10*time.Millisecond,
			"the given-up push was never applied")
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
			"fail_me not a bool": {`{"fail_me":"yes"}`, "fail_me"},
			"refuse field":       {`{"refuse_field":"shoe_size","refuse_contains":"x"}`, "refuse_field must be one of source, name, email, phone, message"},
			"refuse text":        {`{"refuse_field":"email"}`, "refuse_contains is empty"},
			"refuse status":      {`{"refuse_field":"email","refuse_contains":"x","refuse_status":200}`, "refuse_status must be between 400 and 599"},
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
		require.Equal(t, Faults{FailNext: 4, FailStatus: 503, LatencyMS: 10, RateLimitNext: 2, RetryAfterSeconds: 1, RejectField: "email", RejectContains: "x", RefuseStatus: DefaultRefuseStatus}, got)
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
		push(t, bundle, piiContact("a"), piiContact("b"))
		_, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{RateLimitNext: 1, FailNext: 1})
		require.NoError(t, err)
		pushErr(t, bundle, http.StatusTooManyRequests, "rate_limited", piiContact("c"))
		pushErr(t, bundle, http.StatusServiceUnavailable, "simulated_failure", piiContact("c"), piiContact("d"), piiContact("e"))
		require.Equal(t, http.StatusOK, me(t, bundle).status, "not a contacts call")
		_, err = bundle.client.Revoke(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		pushErr(t, bundle, http.StatusUnauthorized, "invalid_api_key", piiContact("f"))

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
		errs := make(chan error, workers*batches+2*batches)
		for w := range workers {
			wg.Go(func() {
				for b := range batches {
					contacts := make([]contactIn, size)
					for i := range contacts {
						// Every worker pushes the same keys: upserts collide.
						contacts[i] = contactIn{Key: fmt.Sprintf("lead_%d_%d", b, i), Source: fmt.Sprintf("worker-%d", w)}
					}
					answer, err := postContacts(ctx, bundle.url, bundle.account.APIKey, contacts)
					if err == nil && answer.status != http.StatusOK {
						err = fmt.Errorf("HTTP %d: %s", answer.status, answer.body)
					}
					if err == nil {
						err = checkUpserted(contacts, answer.results)
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
		bad := piiContact("lead_bad")
		bad.Email = "zelda.quill-example.org"
		_, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, Faults{RejectField: "name", RejectContains: "Zelda"})
		require.NoError(t, err)
		answer := pushAs(t, bundle, bundle.account.APIKey, piiContact("lead_1"), bad)
		require.Equal(t, http.StatusOK, answer.status, answer.body)
		for _, r := range answer.results {
			require.Equal(t, contactRejected, r.Status)
			requireNoSecrets(t, r.Error+r.ID, bundle.account.APIKey)
			require.NotContains(t, r.Error, "Zelda")
		}
		requireNoSecrets(t, answer.body, bundle.account.APIKey)

		for _, tc := range []struct {
			faults Faults
			status int
		}{
			{Faults{FailNext: 1}, http.StatusServiceUnavailable},
			{Faults{FailNext: 1, FailStatus: 401}, http.StatusUnauthorized},
			{Faults{FailNext: 1, FailStatus: 400}, http.StatusBadRequest},
			{Faults{RateLimitNext: 1}, http.StatusTooManyRequests},
		} {
			_, err := bundle.client.SetFaults(ctx, bundle.account.APIKey, tc.faults)
			require.NoError(t, err)
			answer := pushAs(t, bundle, bundle.account.APIKey, piiContact("lead_1"))
			require.Equal(t, tc.status, answer.status, answer.body)
			requireNoSecrets(t, answer.body, bundle.account.APIKey)
		}
		_, err = bundle.client.DisableAPI(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		pushErr(t, bundle, http.StatusForbidden, "api_disabled", piiContact("lead_1"))
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

	before, err := os.ReadFile(bundle.statePath)
	require.NoError(t, err)
	info, err := os.Stat(bundle.statePath)
	require.NoError(t, err)
	_, err = client.SetFaults(ctx, acct.APIKey, Faults{LatencyMS: 1})
	require.NoError(t, err)
	answer, err := postContacts(ctx, bundle.url, acct.APIKey, []contactIn{piiContact("lead_1")})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, answer.status, answer.body)

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
	for i := range crmfake.CallLogSize + 5 {
		book.logCall(Call{At: start.Add(time.Duration(i) * time.Second), Status: 200, Contacts: i})
	}
	log := book.callLog()
	require.Len(t, log, crmfake.CallLogSize)
	require.Equal(t, 5, log[0].Contacts, "the oldest five were dropped")
	require.Equal(t, crmfake.CallLogSize+4, log[len(log)-1].Contacts)
	for i := 1; i < len(log); i++ {
		require.Equal(t, log[i-1].Contacts+1, log[i].Contacts)
	}
}
