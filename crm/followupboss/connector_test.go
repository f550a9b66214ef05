package followupboss

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/followupboss/followupbossfake"
	"github.com/acme/integrations/integration"
)

const (
	testSystem    = "AcmeIntegrationsTest"
	testSystemKey = "sys-key-for-tests"
)

// seen is a request as the CRM received it.
type seen struct {
	method, path, query string
	header              http.Header
	body                []byte
}

// frontend stands in front of the fake Follow Up Boss: it records every
// request and answers those its intercept takes with a canned answer, as
// Follow Up Boss (or something in front of it) might answer them.
type frontend struct {
	fake http.Handler

	mu        sync.Mutex
	requests  []seen
	intercept func(r *http.Request) (status int, header http.Header, body string, ok bool)
}

func (f *frontend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, seen{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone(), body: body})
	intercept := f.intercept
	f.mu.Unlock()
	if intercept != nil {
		if status, header, text, ok := intercept(r); ok {
			for k, vs := range header {
				w.Header()[k] = vs
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, text)
			return
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	f.fake.ServeHTTP(w, r)
}

func (f *frontend) seen() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.requests...)
}

func (f *frontend) answer(fn func(r *http.Request) (int, http.Header, string, bool)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.intercept = fn
}

type testBundle struct {
	front     *frontend
	url       string
	fake      *followupbossfake.Client
	connector *Connector
	account   followupbossfake.Account
	creds     []byte
}

// setup starts a fake Follow Up Boss behind a recording frontend, with the
// test system registered and one account, and a connector pointed at it.
func setup(t *testing.T) *testBundle {
	t.Helper()
	t.Parallel()
	server, err := followupbossfake.NewServer("")
	require.NoError(t, err)
	require.NoError(t, server.RegisterSystem(testSystem, testSystemKey))
	front := &frontend{fake: server.Handler()}
	httpServer := httptest.NewServer(front)
	t.Cleanup(httpServer.Close)
	fake := followupbossfake.NewClient(httpServer.URL, httpServer.Client())
	account, err := fake.CreateAccount(context.Background())
	require.NoError(t, err)
	return &testBundle{
		front: front,
		url:   httpServer.URL,
		fake:  fake,
		connector: NewConnector(Config{
			APIURL: httpServer.URL + "/", System: testSystem, SystemKey: testSystemKey, HTTPClient: httpServer.Client(),
		}),
		account: account,
		creds:   []byte(`{"api_key":"` + account.APIKey + `"}`),
	}
}

// apiCalls are the requests the connector made of the Follow Up Boss API
// (not the test's control calls), as "METHOD /path".
func (b *testBundle) apiCalls() []string {
	var out []string
	for _, r := range b.front.seen() {
		if strings.HasPrefix(r.path, "/v1/") {
			out = append(out, r.method+" "+r.path)
		}
	}
	return out
}

// requireClean fails if text holds the API key, a URL or lead data.
func (b *testBundle) requireClean(t *testing.T, text string, pii ...string) {
	t.Helper()
	require.NotContains(t, text, b.account.APIKey)
	require.NotContains(t, text, b.url)
	require.NotContains(t, text, "127.0.0.1")
	for _, v := range pii {
		if v != "" {
			require.NotContains(t, text, v)
		}
	}
}

// validate runs Validate, which must run, with three checks in order.
func (b *testBundle) validate(t *testing.T) []integration.Check {
	t.Helper()
	checks, err := b.connector.Validate(context.Background(), b.creds)
	require.NoError(t, err)
	require.Len(t, checks, 3)
	require.Equal(t, crm.CheckCredentials, checks[0].Name)
	require.Equal(t, crm.CheckScopes, checks[1].Name)
	require.Equal(t, crm.CheckAPIAccess, checks[2].Name)
	for _, c := range checks {
		b.requireClean(t, c.Message+c.Remediation)
	}
	return checks
}

func TestProvider(t *testing.T) {
	b := setup(t)
	require.Equal(t, "followupboss", b.connector.Provider())
	require.Equal(t, 1, b.connector.BatchLimit())
	got, err := crm.NewRegistry(b.connector).Get("followupboss")
	require.NoError(t, err)
	require.Same(t, b.connector, got)
	require.Equal(t, DefaultAPIURL, NewConnector(Config{}).apiURL)
}

func TestParseCredentials(t *testing.T) {
	b := setup(t)
	require.NoError(t, b.connector.ParseCredentials(b.creds))
	const secret = "7a5bad2cf150b388a7ecf1dca94d5e2d14694a"
	for name, tc := range map[string]struct {
		raw  string
		want string
	}{
		"space":         {`{"api_key":"` + secret + ` "}`, "whitespace"},
		"newline":       {`{"api_key":"` + secret + `\n"}`, "whitespace"},
		"colon":         {`{"api_key":"` + secret + `:x"}`, "colon"},
		"unknown field": {`{"api_key":"` + secret + `","apikey":"x"}`, "unknown field \"apikey\""},
		"number":        {`{"api_key":12345}`, "api_key must be a string"},
	} {
		err := b.connector.ParseCredentials([]byte(tc.raw))
		require.ErrorContains(t, err, tc.want, name)
		require.NotContains(t, err.Error(), secret, name)
		require.NotContains(t, err.Error(), "12345", name)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()

	t.Run("Good", func(t *testing.T) {
		b := setup(t)
		checks := b.validate(t)
		for _, c := range checks {
			require.True(t, c.OK, c.Message)
		}
		require.Equal(t, "API key accepted for Follow Up Boss account "+strconv.Itoa(b.account.ID)+" (user 1)", checks[0].Message)
		require.Contains(t, checks[1].Message, "Follow Up Boss API keys have no scopes")
		require.Contains(t, checks[1].Message, "an agent's or lender's key sees only the people assigned to that user")

		reqs := b.front.seen()
		require.Len(t, reqs, 2, "account creation, then one identity call")
		r := reqs[1]
		require.Equal(t, "GET /v1/identity", r.method+" "+r.path)
		require.Equal(t, "Basic "+base64.StdEncoding.EncodeToString([]byte(b.account.APIKey+":")), r.header.Get("Authorization"),
			"the API key is the user name, the password empty")
		require.Equal(t, testSystem, r.header.Get("X-System"))
		require.Equal(t, testSystemKey, r.header.Get("X-System-Key"))
		require.Equal(t, userAgent, r.header.Get("User-Agent"))
	})

	t.Run("Revoked", func(t *testing.T) {
		b := setup(t)
		_, err := b.fake.Revoke(context.Background(), b.account.APIKey)
		require.NoError(t, err)
		checks := b.validate(t)
		require.Equal(t, integration.ReasonExpiredCredentials, checks[0].Code)
		require.Equal(t, RemediateCredentials, checks[0].Remediation)
		require.Contains(t, checks[0].Message, "HTTP 401")
		require.Equal(t, crm.NotChecked(crm.CheckScopes, "the credentials were rejected"), checks[1])
		require.Equal(t, crm.NotChecked(crm.CheckAPIAccess, "the credentials were rejected"), checks[2])
	})

	t.Run("ExpiredAndLockedAccounts", func(t *testing.T) {
		b := setup(t)
		ctx := context.Background()
		for _, change := range []func(context.Context, string) (followupbossfake.Account, error){b.fake.Expire, b.fake.Lock} {
			_, err := change(ctx, b.account.APIKey)
			require.NoError(t, err)
			checks := b.validate(t)
			require.True(t, checks[0].OK, "the key is still valid: %s", checks[0].Message)
			require.True(t, checks[1].OK)
			require.False(t, checks[2].OK)
			require.Equal(t, integration.ReasonAPIDisabled, checks[2].Code)
			require.Equal(t, RemediateAPIAccess, checks[2].Remediation)
			require.Contains(t, checks[2].Message, "HTTP 403")
		}
		_, err := b.fake.Reactivate(ctx, b.account.APIKey)
		require.NoError(t, err)
		for _, c := range b.validate(t) {
			require.True(t, c.OK, c.Message)
		}
	})

	t.Run("UnusableCredentials", func(t *testing.T) {
		b := setup(t)
		checks, err := b.connector.Validate(context.Background(), []byte(`{"api_key":""}`))
		require.NoError(t, err)
		require.Equal(t, integration.ReasonExpiredCredentials, checks[0].Code)
		require.Contains(t, checks[0].Message, "the stored credentials are unusable")
		require.Empty(t, b.apiCalls(), "nothing to call with")
	})

	t.Run("NotFollowUpBoss", func(t *testing.T) {
		b := setup(t)
		for name, body := range map[string]string{"empty object": `{}`, "HTML": `<html>hello</html>`} {
			b.front.answer(func(*http.Request) (int, http.Header, string, bool) { return http.StatusOK, nil, body, true })
			_, err := b.connector.Validate(context.Background(), b.creds)
			var crmErr *crm.Error
			require.ErrorAs(t, err, &crmErr, name)
			require.Equal(t, crm.ClassTransient, crmErr.Class, name)
			require.ErrorContains(t, err, "is the configured API URL Follow Up Boss's?", name)
			b.requireClean(t, err.Error())
		}
	})

	t.Run("StringIDs", func(t *testing.T) {
		b := setup(t)
		b.front.answer(func(*http.Request) (int, http.Header, string, bool) {
			return http.StatusOK, nil, `{"account":{"id":"a-77"},"user":{"id":"u-3"}}`, true
		})
		checks := b.validate(t)
		require.Equal(t, "API key accepted for Follow Up Boss account a-77 (user u-3)", checks[0].Message,
			"an ID of another JSON type must not stop validation")
	})

	t.Run("RateLimited", func(t *testing.T) {
		b := setup(t)
		b.front.answer(func(*http.Request) (int, http.Header, string, bool) {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}}, `{"errorMessage":"slow down"}`, true
		})
		_, err := b.connector.Validate(context.Background(), b.creds)
		var crmErr *crm.Error
		require.ErrorAs(t, err, &crmErr)
		require.Equal(t, crm.ClassRateLimited, crmErr.Class)
		require.Equal(t, 7*time.Second, crmErr.RetryAfter)
	})

	t.Run("Outage", func(t *testing.T) {
		b := setup(t)
		b.front.answer(func(*http.Request) (int, http.Header, string, bool) {
			return http.StatusBadGateway, nil, `<html>` + b.account.APIKey + `</html>`, true
		})
		_, err := b.connector.Validate(context.Background(), b.creds)
		var crmErr *crm.Error
		require.ErrorAs(t, err, &crmErr)
		require.Equal(t, crm.ClassTransient, crmErr.Class)
		require.Equal(t, http.StatusBadGateway, crmErr.StatusCode)
		require.EqualError(t, err, "Follow Up Boss validation: crm transient (HTTP 502): Follow Up Boss answered GET /v1/identity with HTTP 502 Bad Gateway: a Follow Up Boss outage")
	})

	t.Run("Unreachable", func(t *testing.T) {
		b := setup(t)
		server := httptest.NewServer(http.NotFoundHandler())
		server.Close()
		c := NewConnector(Config{APIURL: server.URL})
		_, err := c.Validate(context.Background(), b.creds)
		var crmErr *crm.Error
		require.ErrorAs(t, err, &crmErr)
		require.Equal(t, crm.ClassTransient, crmErr.Class)
		require.ErrorContains(t, err, "GET /v1/identity: Follow Up Boss could not be reached")
		require.NotContains(t, err.Error(), server.URL)
		require.NotContains(t, err.Error(), strings.TrimPrefix(server.URL, "http://"), "not even the address dialled")

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err = b.connector.Validate(ctx, b.creds)
		require.ErrorIs(t, err, context.Canceled, "the cause stays reachable")
		b.requireClean(t, err.Error())
	})
}
