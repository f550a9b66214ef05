package sandbox

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/sandbox/sandboxfake"
	"github.com/acme/integrations/integration"
)

func TestConnector(t *testing.T) {
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
		client := sandboxfake.NewClient(httpServer.URL, nil)
		account, err := client.CreateAccount(context.Background(), nil)
		require.NoError(t, err)
		return &testBundle{
			client:    client,
			connector: NewConnector(httpServer.URL, httpServer.Client()),
			account:   account,
			creds:     []byte(`{"api_key":"` + account.APIKey + `"}`),
		}
	}

	// validate runs Validate and checks what every outcome shares: three
	// checks in a fixed order, and no key in any text.
	validate := func(t *testing.T, bundle *testBundle) []integration.Check {
		t.Helper()
		checks, err := bundle.connector.Validate(context.Background(), bundle.creds)
		require.NoError(t, err)
		require.Len(t, checks, 3)
		require.Equal(t, crm.CheckCredentials, checks[0].Name)
		require.Equal(t, crm.CheckScopes, checks[1].Name)
		require.Equal(t, crm.CheckAPIAccess, checks[2].Name)
		for _, c := range checks {
			require.NotContains(t, c.Message+c.Remediation, bundle.account.APIKey)
		}
		return checks
	}

	t.Run("Provider", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		require.Equal(t, "sandbox", bundle.connector.Provider())

		registry := crm.NewRegistry(bundle.connector)
		got, err := registry.Get("sandbox")
		require.NoError(t, err)
		require.Same(t, bundle.connector, got)
	})

	t.Run("ParseCredentials", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		require.NoError(t, bundle.connector.ParseCredentials(bundle.creds))
		require.NoError(t, bundle.connector.ParseCredentials([]byte(" {\"api_key\": \"sbx_x\"}\n")))

		const secret = "sbx_topsecret"
		for name, tc := range map[string]struct {
			raw  string
			want string
		}{
			"empty":           {``, "credentials are empty"},
			"blank":           {"  \n", "credentials are empty"},
			"bare key":        {secret, "not valid JSON (syntax error at byte 1)"},
			"truncated":       {`{"api_key": "` + secret + `"`, "not valid JSON"},
			"unterminated":    {`{"api_key": "` + secret, "not valid JSON"},
			"array":           {`["` + secret + `"]`, "must be a JSON object, not a array"},
			"number key":      {`{"api_key": 424242}`, "field api_key must be a string, not a number"},
			"missing api_key": {`{}`, "api_key is missing or empty"},
			"empty api_key":   {`{"api_key": ""}`, "api_key is missing or empty"},
			"typo":            {`{"apikey": "` + secret + `"}`, `unknown field "apikey"`},
			"extra field":     {`{"api_key": "` + secret + `", "region": "eu"}`, `unknown field "region"`},
			"trailing data":   {`{"api_key": "` + secret + `"} x`, "data after the JSON object"},
			"whitespace":      {`{"api_key": " ` + secret + `"}`, "whitespace or control characters"},
			"newline":         {`{"api_key": "` + secret + `\n"}`, "whitespace or control characters"},
		} {
			err := bundle.connector.ParseCredentials([]byte(tc.raw))
			require.ErrorContains(t, err, tc.want, name)
			require.NotContains(t, err.Error(), "topsecret", name)
			require.NotContains(t, err.Error(), "424242", name)
		}
	})

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		checks := validate(t, bundle)
		for _, c := range checks {
			require.True(t, c.OK, c.Name)
			require.Empty(t, c.Code, c.Name)
		}
		require.Contains(t, checks[0].Message, bundle.account.ID)

		// Unchanged state gives identical checks, so the workflow sees no change.
		require.Equal(t, checks, validate(t, bundle))
	})

	t.Run("RevokedThenRestored", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		ctx := context.Background()

		_, err := bundle.client.Revoke(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		checks := validate(t, bundle)
		require.False(t, checks[0].OK)
		require.Equal(t, integration.ReasonExpiredCredentials, checks[0].Code)
		require.Contains(t, checks[0].Message, "rejected the API key (HTTP 401)")
		require.Contains(t, checks[0].Remediation, "integrations authorize ID --credentials-file FILE")
		for _, c := range checks[1:] {
			require.False(t, c.OK, c.Name)
			require.Empty(t, c.Code, c.Name)
			require.Equal(t, "not checked: the credentials were rejected", c.Message)
		}
		require.Len(t, integration.Validation{Checks: checks}.Failed(), 3)

		_, err = bundle.client.Restore(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		for _, c := range validate(t, bundle) {
			require.True(t, c.OK, c.Name)
		}
	})

	t.Run("UnknownKey", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		bundle.creds = []byte(`{"api_key":"sbx_never_issued"}`)

		checks := validate(t, bundle)
		require.Equal(t, integration.ReasonExpiredCredentials, checks[0].Code)
		require.NotContains(t, checks[0].Message, "sbx_never_issued")
	})

	t.Run("DroppedScope", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		ctx := context.Background()

		_, err := bundle.client.DropScope(ctx, bundle.account.APIKey, ScopeContactsWrite)
		require.NoError(t, err)
		checks := validate(t, bundle)
		require.True(t, checks[0].OK)
		require.False(t, checks[1].OK)
		require.Equal(t, integration.ReasonInsufficientPermissions, checks[1].Code)
		require.Equal(t, "the API key lacks scope contacts.write (it has: contacts.read)", checks[1].Message)
		require.Contains(t, checks[1].Remediation, "Grant the API key the missing scopes")
		require.True(t, checks[2].OK)

		_, err = bundle.client.DropScope(ctx, bundle.account.APIKey, ScopeContactsRead)
		require.NoError(t, err)
		checks = validate(t, bundle)
		require.Equal(t, "the API key lacks scope contacts.read, contacts.write (it has: no scopes)", checks[1].Message)

		_, err = bundle.client.AddScope(ctx, bundle.account.APIKey, ScopeContactsRead)
		require.NoError(t, err)
		_, err = bundle.client.AddScope(ctx, bundle.account.APIKey, ScopeContactsWrite)
		require.NoError(t, err)
		require.True(t, validate(t, bundle)[1].OK)
	})

	t.Run("DisabledAPI", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		ctx := context.Background()

		_, err := bundle.client.DisableAPI(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		checks := validate(t, bundle)
		require.True(t, checks[0].OK)
		require.True(t, checks[1].OK)
		require.False(t, checks[2].OK)
		require.Equal(t, integration.ReasonAPIDisabled, checks[2].Code)
		require.Contains(t, checks[2].Message, bundle.account.ID)
		require.NotEmpty(t, checks[2].Remediation)

		_, err = bundle.client.EnableAPI(ctx, bundle.account.APIKey)
		require.NoError(t, err)
		require.True(t, validate(t, bundle)[2].OK)
	})

	t.Run("MalformedStoredCredentials", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		bundle.creds = []byte(`{"api_key": "sbx_topsecret"`)

		checks := validate(t, bundle)
		require.Equal(t, integration.ReasonExpiredCredentials, checks[0].Code)
		require.Contains(t, checks[0].Message, "stored credentials are unusable")
		require.NotContains(t, checks[0].Message, "topsecret")
	})

	t.Run("CouldNotRun", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		key := bundle.account.APIKey

		// A misbehaving CRM that echoes the request's Authorization header.
		respond := func(status int, header map[string]string) *httptest.Server {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(status)
				_, _ = w.Write([]byte(`{"error":"failed for ` + r.Header.Get("Authorization") + `","code":"boom"}`))
			}))
			t.Cleanup(srv.Close)
			return srv
		}
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		notSandbox := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`<html>hello</html>`))
		}))
		t.Cleanup(notSandbox.Close)

		for name, tc := range map[string]struct {
			url        string
			class      crm.ErrorClass
			status     int
			retryAfter time.Duration
		}{
			"500":         {respond(http.StatusInternalServerError, nil).URL, crm.ClassTransient, 500, 0},
			"503":         {respond(http.StatusServiceUnavailable, nil).URL, crm.ClassTransient, 503, 0},
			"429":         {respond(http.StatusTooManyRequests, map[string]string{"Retry-After": "17"}).URL, crm.ClassRateLimited, 429, 17 * time.Second},
			"network":     {dead.URL, crm.ClassTransient, 0, 0},
			"not sandbox": {notSandbox.URL, crm.ClassTransient, 200, 0},
		} {
			checks, err := NewConnector(tc.url, nil).Validate(context.Background(), bundle.creds)
			require.Error(t, err, name)
			require.Nil(t, checks, name)
			var crmErr *crm.Error
			require.ErrorAs(t, err, &crmErr, name)
			require.Equal(t, tc.class, crmErr.Class, name)
			require.Equal(t, tc.status, crmErr.StatusCode, name)
			require.Equal(t, tc.retryAfter, crmErr.RetryAfter, name)
			require.NotContains(t, err.Error(), key, name)
		}

		// A 401 whose message quotes the key gets it redacted.
		checks, err := NewConnector(respond(http.StatusUnauthorized, nil).URL, nil).Validate(context.Background(), bundle.creds)
		require.NoError(t, err)
		require.Equal(t, integration.ReasonExpiredCredentials, checks[0].Code)
		require.Contains(t, checks[0].Message, "[redacted]")
		require.NotContains(t, checks[0].Message, key)

		// A cancelled context stops validation with an error, not failed checks.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err = bundle.connector.Validate(ctx, bundle.creds)
		require.ErrorIs(t, err, context.Canceled)
	})
}
