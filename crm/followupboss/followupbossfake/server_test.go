package followupbossfake

import (
	"context"
	"encoding/base64"
	"encoding/json"
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

// response is a decoded HTTP response from the fake.
type response struct {
	status int
	header http.Header
	body   string
}

// decode decodes the body into v, failing the test if it is not JSON.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal([]byte(r.body), v), "a JSON body: %s", r.body)
}

// errorMessage returns the errorMessage of a Follow Up Boss error body.
func (r response) errorMessage(t *testing.T) string {
	t.Helper()
	var e apiError
	r.decode(t, &e)
	require.NotEmpty(t, e.ErrorMessage, r.body)
	return e.ErrorMessage
}

// fakeClock is the fake's clock in tests: it moves only when told, and
// records the latencies the fake sleeps instead of sleeping.
type fakeClock struct {
	mu    sync.Mutex
	at    time.Time
	slept []time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

func (c *fakeClock) sleep(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = c.at.Add(d)
}

type testBundle struct {
	statePath string
	server    *Server
	clock     *fakeClock
	url       string
	client    *Client
	account   Account
}

// setup starts a fake persisting to a fresh state file, on a fake clock,
// with one account and the system "TestSystem" (key "test-system-key")
// registered.
func setup(t *testing.T) *testBundle {
	t.Helper()
	t.Parallel()
	statePath := filepath.Join(t.TempDir(), "fub", "state.json")
	server, err := NewServer(statePath)
	require.NoError(t, err)
	clock := &fakeClock{at: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	server.now, server.sleep = clock.now, clock.sleep
	require.NoError(t, server.RegisterSystem("TestSystem", "test-system-key"))
	httpServer := httptest.NewServer(server.Handler())
	t.Cleanup(httpServer.Close)
	client := NewClient(httpServer.URL, httpServer.Client())
	account, err := client.CreateAccount(context.Background())
	require.NoError(t, err)
	return &testBundle{statePath: statePath, server: server, clock: clock, url: httpServer.URL, client: client, account: account}
}

// api calls the Follow Up Boss API as a registered system with key.
func (b *testBundle) api(t *testing.T, key, method, path, body string) response {
	t.Helper()
	return b.apiWith(t, key, method, path, body, map[string]string{"X-System": "TestSystem", "X-System-Key": "test-system-key"})
}

func (b *testBundle) apiWith(t *testing.T, key, method, path, body string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, b.url+path, strings.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

// event posts an event for a person with the given email, phone and tags.
func (b *testBundle) event(t *testing.T, email, phone string, tags ...string) response {
	t.Helper()
	body := map[string]any{
		"source": "Zillow", "system": "TestSystem", "type": "General Inquiry", "message": "call me",
		"person": map[string]any{"firstName": "Ada", "lastName": "Lovelace",
			"emails": []map[string]string{{"value": email}}, "phones": []map[string]string{{"value": phone}}, "tags": tags},
	}
	data, err := json.Marshal(body)
	require.NoError(t, err)
	return b.api(t, b.account.APIKey, http.MethodPost, "/v1/events", string(data))
}

func TestIdentity(t *testing.T) {
	t.Parallel()

	t.Run("Answers", func(t *testing.T) {
		b := setup(t)
		resp := b.api(t, b.account.APIKey, http.MethodGet, "/v1/identity", "")
		require.Equal(t, http.StatusOK, resp.status, resp.body)
		var id identity
		resp.decode(t, &id)
		require.Equal(t, b.account.ID, id.Account.ID)
		require.Equal(t, b.account.Domain, id.Account.Domain)
		require.Equal(t, b.account.UserID, id.User.ID)
		require.Equal(t, "250", resp.header.Get("X-RateLimit-Limit"))
		require.Equal(t, "249", resp.header.Get("X-RateLimit-Remaining"))
		require.Equal(t, "10", resp.header.Get("X-RateLimit-Window"))
		require.Equal(t, "global", resp.header.Get("X-RateLimit-Context"))
	})

	t.Run("Unauthenticated", func(t *testing.T) {
		b := setup(t)
		for name, header := range map[string]string{
			"none":        "",
			"bearer":      "Bearer " + b.account.APIKey,
			"not base64":  "Basic !!!",
			"unknown key": "Basic " + base64.StdEncoding.EncodeToString([]byte("0123abcd:")),
		} {
			resp := b.apiWith(t, "", http.MethodGet, "/v1/identity", "", map[string]string{"Authorization": header})
			require.Equal(t, http.StatusUnauthorized, resp.status, name)
			require.Contains(t, resp.header.Get("WWW-Authenticate"), "Basic", name)
			require.Empty(t, resp.header.Get("X-RateLimit-Limit"), "%s: rejected before the limiter", name)
			resp.errorMessage(t)
		}
		calls, err := b.client.Calls(context.Background(), b.account.APIKey)
		require.NoError(t, err)
		require.Empty(t, calls, "calls without the account's key are not the account's")
	})

	t.Run("RevokedAndRestored", func(t *testing.T) {
		b := setup(t)
		_, err := b.client.Revoke(context.Background(), b.account.APIKey)
		require.NoError(t, err)
		resp := b.api(t, b.account.APIKey, http.MethodGet, "/v1/identity", "")
		require.Equal(t, http.StatusUnauthorized, resp.status)
		require.Empty(t, resp.header.Get("X-RateLimit-Limit"))

		_, err = b.client.Restore(context.Background(), b.account.APIKey)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, b.api(t, b.account.APIKey, http.MethodGet, "/v1/identity", "").status)

		calls, err := b.client.Calls(context.Background(), b.account.APIKey)
		require.NoError(t, err)
		require.Len(t, calls, 2, "a revoked key's calls are logged against its account")
		require.Equal(t, http.StatusUnauthorized, calls[0].Status)
		require.Equal(t, Call{At: b.clock.now(), Method: http.MethodGet, Path: "/v1/identity", Context: "global", Status: http.StatusOK}, calls[1])
	})

	t.Run("UnregisteredSystem", func(t *testing.T) {
		b := setup(t)
		for _, key := range []string{"", "not-registered"} {
			resp := b.apiWith(t, b.account.APIKey, http.MethodGet, "/v1/identity", "", map[string]string{"X-System-Key": key})
			require.Equal(t, http.StatusOK, resp.status)
			require.Equal(t, "125", resp.header.Get("X-RateLimit-Limit"), "system key %q", key)
		}
	})
}

func TestEvents(t *testing.T) {
	t.Parallel()

	t.Run("CreateThenUpdate", func(t *testing.T) {
		b := setup(t)
		first := b.event(t, "ada@example.com", "+1 (555) 010-0001", "lead-id:1")
		require.Equal(t, http.StatusCreated, first.status, first.body)
		require.Equal(t, "POST.events", first.header.Get("X-RateLimit-Context"))
		require.Equal(t, "1000", first.header.Get("X-RateLimit-Limit"))
		var p personOut
		first.decode(t, &p)
		require.Positive(t, p.ID)
		require.Equal(t, "Ada Lovelace", p.Name)
		require.Equal(t, "Zillow", p.Source)
		require.Equal(t, []string{"lead-id:1"}, p.Tags)

		// The same email, other case: the same person, updated; the same
		// phone by its digits: the same person too.
		again := b.event(t, "ADA@example.com", "", "lead-id:2")
		require.Equal(t, http.StatusOK, again.status, again.body)
		var q personOut
		again.decode(t, &q)
		require.Equal(t, p.ID, q.ID)
		require.Equal(t, []string{"lead-id:1", "lead-id:2"}, q.Tags)
		byPhone := b.event(t, "other@example.com", "15550100001", "lead-id:1")
		require.Equal(t, http.StatusOK, byPhone.status, byPhone.body)
		byPhone.decode(t, &q)
		require.Equal(t, p.ID, q.ID)
		require.Len(t, q.Emails, 2)

		stats, err := b.client.Records(context.Background(), b.account.APIKey)
		require.NoError(t, err)
		require.Equal(t, RecordStats{
			People: 1, Events: 3,
			EventsByTag: map[string]int{"lead-id:1": 2, "lead-id:2": 1},
			PeopleByTag: map[string]int{"lead-id:1": 1, "lead-id:2": 1},
		}, stats, "every event is kept: a repeated event is logged twice")

		events, err := b.client.Events(context.Background(), b.account.APIKey)
		require.NoError(t, err)
		require.Len(t, events, 3)
		require.Equal(t, Event{
			ID: 1, PersonID: p.ID, At: b.clock.now(), Status: http.StatusCreated,
			Type: "General Inquiry", Source: "Zillow", System: "TestSystem", Message: "call me",
			FirstName: "Ada", LastName: "Lovelace", Emails: []string{"ada@example.com"},
			Phones: []string{"+1 (555) 010-0001"}, Tags: []string{"lead-id:1"},
		}, events[0])
	})

	t.Run("NoEmailNoPhone", func(t *testing.T) {
		b := setup(t)
		body := `{"type":"General Inquiry","source":"Zillow","person":{"firstName":"Ada","tags":["lead-id:7"]}}`
		require.Equal(t, http.StatusCreated, b.api(t, b.account.APIKey, http.MethodPost, "/v1/events", body).status)
		require.Equal(t, http.StatusCreated, b.api(t, b.account.APIKey, http.MethodPost, "/v1/events", body).status,
			"nothing to match a person by: a second person")
		stats, err := b.client.Records(context.Background(), b.account.APIKey)
		require.NoError(t, err)
		require.Equal(t, 2, stats.People)
	})

	t.Run("BadRequests", func(t *testing.T) {
		b := setup(t)
		for name, body := range map[string]string{
			"not JSON":       `{"type":`,
			"no type":        `{"person":{"firstName":"Ada"}}`,
			"no person":      `{"type":"General Inquiry"}`,
			"empty person":   `{"type":"General Inquiry","person":{"tags":["x"]}}`,
			"invalid email":  `{"type":"General Inquiry","person":{"emails":[{"value":"ada.example.com"}]}}`,
			"invalid email2": `{"type":"General Inquiry","person":{"firstName":"Ada","emails":[{"value":"a@b.c"},{"value":"nope"}]}}`,
		} {
			resp := b.api(t, b.account.APIKey, http.MethodPost, "/v1/events", body)
			require.Equal(t, http.StatusBadRequest, resp.status, name)
			resp.errorMessage(t)
		}
		resp := b.api(t, b.account.APIKey, http.MethodPost, "/v1/events", `{"type":"General Inquiry","person":{"emails":[{"value":"ada.example.com"}]}}`)
		require.Equal(t, "Invalid email address: ada.example.com", resp.errorMessage(t), "like real CRMs, the fake quotes the value")

		big := `{"type":"General Inquiry","person":{"firstName":"Ada"},"message":"` + strings.Repeat("x", maxEventBodyBytes) + `"}`
		require.Equal(t, http.StatusRequestEntityTooLarge, b.api(t, b.account.APIKey, http.MethodPost, "/v1/events", big).status)

		stats, err := b.client.Records(context.Background(), b.account.APIKey)
		require.NoError(t, err)
		require.Zero(t, stats.People, "refused events store nothing")
		require.Zero(t, stats.Events)
	})

	t.Run("Rules", func(t *testing.T) {
		b := setup(t)
		ctx := context.Background()
		rejectField, rejectContains := "email", "blocked"
		refuseField, refuseContains := "message", "huge"
		archived := []string{"Archived Source"}
		_, err := b.client.UpdateFaults(ctx, b.account.APIKey, FaultsUpdate{
			RejectField: &rejectField, RejectContains: &rejectContains,
			RefuseField: &refuseField, RefuseContains: &refuseContains,
			ArchivedSources: &archived,
		})
		require.NoError(t, err)

		resp := b.event(t, "blocked@example.com", "")
		require.Equal(t, http.StatusBadRequest, resp.status)
		require.Equal(t, "Invalid email address: blocked@example.com", resp.errorMessage(t))

		resp = b.api(t, b.account.APIKey, http.MethodPost, "/v1/events", `{"type":"General Inquiry","message":"a huge lead","person":{"firstName":"Ada"}}`)
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.status)

		resp = b.api(t, b.account.APIKey, http.MethodPost, "/v1/events", `{"type":"General Inquiry","source":"Archived Source","person":{"firstName":"Ada"}}`)
		require.Equal(t, http.StatusNoContent, resp.status)
		require.Empty(t, resp.body, "204 has no body")

		stats, err := b.client.Records(ctx, b.account.APIKey)
		require.NoError(t, err)
		require.Zero(t, stats.Events, "rejected, refused and ignored events store nothing")

		require.NoError(t, b.client.ClearFaults(ctx, b.account.APIKey))
		require.Equal(t, http.StatusCreated, b.event(t, "blocked@example.com", "").status)
	})
}

func TestPeople(t *testing.T) {
	b := setup(t)
	require.Equal(t, http.StatusCreated, b.event(t, "ada@example.com", "", "lead-id:1", "Buyer").status)
	require.Equal(t, http.StatusCreated, b.event(t, "grace@example.com", "", "lead-id:2").status)

	list := func(t *testing.T, query string) peopleList {
		t.Helper()
		resp := b.api(t, b.account.APIKey, http.MethodGet, "/v1/people"+query, "")
		require.Equal(t, http.StatusOK, resp.status, resp.body)
		require.Equal(t, "global", resp.header.Get("X-RateLimit-Context"))
		var l peopleList
		resp.decode(t, &l)
		return l
	}
	all := list(t, "")
	require.Equal(t, 2, all.Metadata.Total)
	require.Len(t, all.People, 2)

	one := list(t, "?tags=LEAD-ID:2&fields=id,tags&limit=10")
	require.Equal(t, 1, one.Metadata.Total)
	require.Equal(t, []string{"lead-id:2"}, one.People[0].Tags, "tags match whatever their case")
	require.Equal(t, 2, list(t, "?tags=lead-id:2,Buyer").Metadata.Total, "any of the tags")
	require.Empty(t, list(t, "?tags=lead-id:3").People)
	require.Len(t, list(t, "?limit=1").People, 1)

	resp := b.api(t, b.account.APIKey, http.MethodGet, "/v1/people?limit=500", "")
	require.Equal(t, http.StatusBadRequest, resp.status)
	resp.errorMessage(t)
}

func TestAccountStates(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	key := b.account.APIKey

	a, err := b.client.Expire(ctx, key)
	require.NoError(t, err)
	require.Equal(t, StateExpired, a.State)
	require.Equal(t, http.StatusForbidden, b.api(t, key, http.MethodGet, "/v1/identity", "").status)
	resp := b.api(t, key, http.MethodGet, "/v1/people", "")
	require.Equal(t, http.StatusForbidden, resp.status)
	resp.errorMessage(t)
	require.Equal(t, "global", resp.header.Get("X-RateLimit-Context"), "a 403 still carries the limit")
	require.Equal(t, http.StatusCreated, b.event(t, "ada@example.com", "").status, "the grace period keeps events working")

	_, err = b.client.Lock(ctx, key)
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, b.event(t, "grace@example.com", "").status, "a locked account takes nothing")
	require.Equal(t, http.StatusForbidden, b.api(t, key, http.MethodGet, "/v1/identity", "").status)

	a, err = b.client.Reactivate(ctx, key)
	require.NoError(t, err)
	require.Equal(t, StateActive, a.State)
	require.Equal(t, http.StatusOK, b.api(t, key, http.MethodGet, "/v1/identity", "").status)
	stats, err := b.client.Records(ctx, key)
	require.NoError(t, err)
	require.Equal(t, 1, stats.Events)
}

func TestRateLimits(t *testing.T) {
	t.Parallel()

	t.Run("SlidingWindow", func(t *testing.T) {
		b := setup(t)
		ctx := context.Background()
		key := b.account.APIKey
		require.NoError(t, b.client.SetLimits(ctx, key, Limits{Limit: 2, WindowSeconds: 10}))

		identity := func() response { return b.api(t, key, http.MethodGet, "/v1/identity", "") }
		first := identity()
		require.Equal(t, "1", first.header.Get("X-RateLimit-Remaining"))
		b.clock.advance(4 * time.Second)
		require.Equal(t, "0", identity().header.Get("X-RateLimit-Remaining"))
		b.clock.advance(4 * time.Second)

		limited := identity()
		require.Equal(t, http.StatusTooManyRequests, limited.status)
		require.Equal(t, "2", limited.header.Get("Retry-After"), "the first call leaves the window 2 s later")
		require.Equal(t, "0", limited.header.Get("X-RateLimit-Remaining"))
		require.Equal(t, "10", limited.header.Get("X-RateLimit-Window"))
		limited.errorMessage(t)

		// POST.events is its own context: its window is empty.
		require.Equal(t, http.StatusCreated, b.event(t, "ada@example.com", "").status)

		// The window slides: at exactly 10 s the first call no longer counts.
		b.clock.advance(2 * time.Second)
		again := identity()
		require.Equal(t, http.StatusOK, again.status)
		require.Equal(t, "0", again.header.Get("X-RateLimit-Remaining"), "the 429 was not counted")

		calls, err := b.client.Calls(ctx, key)
		require.NoError(t, err)
		statuses := make([]int, len(calls))
		for i, c := range calls {
			statuses[i] = c.Status
		}
		require.Equal(t, []int{200, 200, 429, 201, 200}, statuses)
		require.Equal(t, b.clock.now(), calls[4].At, "calls carry the fake's clock")

		require.NoError(t, b.client.ClearLimits(ctx, key))
		require.Equal(t, "250", identity().header.Get("X-RateLimit-Limit"))
	})

	t.Run("RateLimitNext", func(t *testing.T) {
		b := setup(t)
		ctx := context.Background()
		key := b.account.APIKey
		n, secs := 2, 7
		_, err := b.client.UpdateFaults(ctx, key, FaultsUpdate{RateLimitNext: &n, RetryAfterSeconds: &secs})
		require.NoError(t, err)

		require.Equal(t, http.StatusOK, b.api(t, key, http.MethodGet, "/v1/identity", "").status, "validation is not a delivery call")
		people := b.api(t, key, http.MethodGet, "/v1/people", "")
		require.Equal(t, http.StatusTooManyRequests, people.status)
		require.Equal(t, "7", people.header.Get("Retry-After"))
		require.Equal(t, http.StatusTooManyRequests, b.event(t, "ada@example.com", "").status)
		require.Equal(t, http.StatusCreated, b.event(t, "ada@example.com", "").status)
	})

	t.Run("Concurrent", func(t *testing.T) {
		b := setup(t)
		require.NoError(t, b.client.SetLimits(context.Background(), b.account.APIKey, Limits{Limit: 5, WindowSeconds: 10}))
		var wg sync.WaitGroup
		statuses := make(chan int, 20)
		for range 20 {
			wg.Go(func() { statuses <- b.api(t, b.account.APIKey, http.MethodGet, "/v1/identity", "").status })
		}
		wg.Wait()
		close(statuses)
		count := map[int]int{}
		for s := range statuses {
			count[s]++
		}
		require.Equal(t, map[int]int{200: 5, 429: 15}, count, "the window holds exactly its limit")
	})
}

func TestFaults(t *testing.T) {
	t.Parallel()

	t.Run("FailNextAndLatency", func(t *testing.T) {
		b := setup(t)
		ctx := context.Background()
		key := b.account.APIKey
		n, status, latency := 2, 502, 150
		_, err := b.client.UpdateFaults(ctx, key, FaultsUpdate{FailNext: &n, FailStatus: &status, LatencyMS: &latency})
		require.NoError(t, err)

		resp := b.api(t, key, http.MethodGet, "/v1/identity", "")
		require.Equal(t, http.StatusBadGateway, resp.status, "whatever the endpoint")
		resp.errorMessage(t)
		require.Equal(t, http.StatusBadGateway, b.event(t, "ada@example.com", "").status)
		require.Equal(t, http.StatusCreated, b.event(t, "ada@example.com", "").status)
		require.Equal(t, []time.Duration{150 * time.Millisecond, 150 * time.Millisecond, 150 * time.Millisecond}, b.clock.slept)

		f, err := b.client.Faults(ctx, key)
		require.NoError(t, err)
		require.Zero(t, f.FailNext)
	})

	t.Run("InvalidChangesNothing", func(t *testing.T) {
		b := setup(t)
		ctx := context.Background()
		key := b.account.APIKey
		bad := func(v int) *int { return &v }
		text := func(v string) *string { return &v }
		for name, u := range map[string]FaultsUpdate{
			"fail_next":       {FailNext: bad(-1)},
			"fail_status":     {FailNext: bad(1), FailStatus: bad(200)},
			"latency":         {LatencyMS: bad(maxLatencyMS + 1)},
			"retry_after":     {RetryAfterSeconds: bad(0)},
			"reject field":    {RejectField: text("attributes"), RejectContains: text("x")},
			"reject contains": {RejectField: text("email")},
			"refuse alone":    {RefuseContains: text("x")},
		} {
			_, err := b.client.UpdateFaults(ctx, key, u)
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr, name)
			require.Equal(t, http.StatusBadRequest, apiErr.StatusCode, name)
			require.NotContains(t, err.Error(), key, name)
		}
		f, err := b.client.Faults(ctx, key)
		require.NoError(t, err)
		require.Equal(t, DefaultFaults(), f)

		for _, l := range []Limits{{Limit: 0, WindowSeconds: 1}, {Limit: 1, WindowSeconds: 0}} {
			err := b.client.SetLimits(ctx, key, l)
			require.Error(t, err)
		}
	})
}

func TestControl(t *testing.T) {
	t.Parallel()

	t.Run("UnknownKey", func(t *testing.T) {
		b := setup(t)
		ctx := context.Background()
		const key = "0000deadbeef"
		_, err := b.client.Revoke(ctx, key)
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
		require.Equal(t, "unknown_api_key", apiErr.Code)
		require.NotContains(t, err.Error(), key)
		_, err = b.client.Records(ctx, key)
		require.ErrorAs(t, err, &apiErr)
		_, err = b.client.Account(ctx, " ")
		require.ErrorIs(t, err, errEmptyKey)
	})

	t.Run("UnknownRoutes", func(t *testing.T) {
		b := setup(t)
		resp := b.api(t, b.account.APIKey, http.MethodGet, "/v1/deals", "")
		require.Equal(t, http.StatusNotFound, resp.status)
		resp.errorMessage(t)
		resp = b.apiWith(t, "", http.MethodGet, "/control/keys/"+b.account.APIKey+"/nope", "", nil)
		require.Equal(t, http.StatusNotFound, resp.status)
		require.NotContains(t, resp.body, b.account.APIKey)
		var e crmfake.ErrorBody
		resp.decode(t, &e)
		require.Equal(t, "not_found", e.Code)
	})

	t.Run("StatePersists", func(t *testing.T) {
		b := setup(t)
		ctx := context.Background()
		_, err := b.client.Expire(ctx, b.account.APIKey)
		require.NoError(t, err)
		require.NoError(t, b.client.RegisterSystem(ctx, "Other", "other-key"))
		info, err := os.Stat(b.statePath)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the state file holds API keys")

		reloaded, err := NewServer(b.statePath)
		require.NoError(t, err)
		a, err := reloaded.account(b.account.APIKey)
		require.NoError(t, err)
		require.Equal(t, StateExpired, a.State)
		require.True(t, reloaded.registered("other-key"))
		require.True(t, reloaded.registered("test-system-key"))
		next, err := reloaded.createAccount()
		require.NoError(t, err)
		require.Greater(t, next.ID, a.ID, "account IDs keep counting after a restart")
	})

	t.Run("CorruptState", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		for name, content := range map[string]string{
			"not JSON":  "{",
			"no key":    `{"accounts":[{"id":1,"state":"active"}]}`,
			"bad state": `{"accounts":[{"id":1,"api_key":"k","state":"gone"}]}`,
			"duplicate": `{"accounts":[{"id":1,"api_key":"k","state":"active"},{"id":2,"api_key":"k","state":"active"}]}`,
			"system":    `{"systems":[{"system":"","key":"k"}]}`,
		} {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
			require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
			_, err := NewServer(path)
			require.ErrorContains(t, err, "is corrupt", name)
			require.ErrorContains(t, err, "delete it", name)
		}
		s, err := NewServer(filepath.Join(dir, "absent.json"))
		require.NoError(t, err)
		require.Empty(t, s.accounts)
	})

	t.Run("RegisterSystem", func(t *testing.T) {
		b := setup(t)
		err := b.client.RegisterSystem(context.Background(), "", "k")
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
		require.False(t, b.server.registered("k"), "a refused registration stores nothing")
	})

	t.Run("ClientErrorsHideKeys", func(t *testing.T) {
		t.Parallel()
		client := NewClient("http://127.0.0.1:1", nil)
		_, err := client.Revoke(context.Background(), "secretkey123")
		require.Error(t, err)
		require.NotContains(t, err.Error(), "secretkey123")
		_, err = NewClient("http://bad host", nil).Revoke(context.Background(), "secretkey123")
		require.Error(t, err)
		require.NotContains(t, err.Error(), "secretkey123")
	})
}
