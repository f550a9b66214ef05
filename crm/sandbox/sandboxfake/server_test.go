package sandboxfake

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/crm/crmfake"
)

// response is a decoded HTTP response from the sandbox.
type response struct {
	status int
	header http.Header
	body   string
}

// errorMessage decodes the JSON error body, failing the test if the body is
// not the sandbox's error shape.
func (r response) errorMessage(t *testing.T) crmfake.ErrorBody {
	t.Helper()
	var body crmfake.ErrorBody
	require.NoError(t, json.Unmarshal([]byte(r.body), &body), "error bodies are JSON: %s", r.body)
	require.NotEmpty(t, body.Error)
	require.NotEmpty(t, body.Code)
	return body
}

func do(t *testing.T, baseURL, method, path, body string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, baseURL+path, strings.NewReader(body))
	require.NoError(t, err)
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

func accountCount(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accounts)
}

func TestServer(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		statePath string
		server    *Server
		url       string
		client    *Client
	}

	// setup starts a sandbox persisting to a fresh state file.
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		statePath := filepath.Join(t.TempDir(), "sandbox", "state.json")
		server, err := NewServer(statePath)
		require.NoError(t, err)
		httpServer := httptest.NewServer(server.Handler())
		t.Cleanup(httpServer.Close)
		return &testBundle{statePath: statePath, server: server, url: httpServer.URL, client: NewClient(httpServer.URL, httpServer.Client())}
	}

	me := func(t *testing.T, bundle *testBundle, key string) response {
		t.Helper()
		return do(t, bundle.url, http.MethodGet, "/api/v1/me", "", map[string]string{"Authorization": "Bearer " + key})
	}

	t.Run("MeReportsAccount", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		acct, err := bundle.client.CreateAccount(context.Background(), nil)
		require.NoError(t, err)

		resp := me(t, bundle, acct.APIKey)
		require.Equal(t, http.StatusOK, resp.status)
		require.JSONEq(t, `{"account_id":"`+acct.ID+`","scopes":["contacts.read","contacts.write"],"api_enabled":true}`, resp.body)

		// The scheme is case-insensitive, as in RFC 9110.
		resp = do(t, bundle.url, http.MethodGet, "/api/v1/me", "", map[string]string{"Authorization": "bearer " + acct.APIKey})
		require.Equal(t, http.StatusOK, resp.status)

		// Disabled API access still answers /me, so validation can see it.
		_, err = bundle.client.DisableAPI(context.Background(), acct.APIKey)
		require.NoError(t, err)
		resp = me(t, bundle, acct.APIKey)
		require.Equal(t, http.StatusOK, resp.status)
		require.Contains(t, resp.body, `"api_enabled":false`)
	})

	t.Run("MeRejectsBadKeys", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		acct, err := bundle.client.CreateAccount(context.Background(), nil)
		require.NoError(t, err)

		resp := do(t, bundle.url, http.MethodGet, "/api/v1/me", "", nil)
		require.Equal(t, http.StatusUnauthorized, resp.status)
		require.Equal(t, "missing_api_key", resp.errorMessage(t).Code)
		require.Contains(t, resp.header.Get("WWW-Authenticate"), "Bearer")

		resp = do(t, bundle.url, http.MethodGet, "/api/v1/me", "", map[string]string{"Authorization": "Basic " + acct.APIKey})
		require.Equal(t, http.StatusUnauthorized, resp.status)
		require.Equal(t, "missing_api_key", resp.errorMessage(t).Code)

		resp = me(t, bundle, "sbx_unknown")
		require.Equal(t, http.StatusUnauthorized, resp.status)
		require.Equal(t, "invalid_api_key", resp.errorMessage(t).Code)
		require.NotContains(t, resp.body, "sbx_unknown")

		_, err = bundle.client.Revoke(context.Background(), acct.APIKey)
		require.NoError(t, err)
		resp = me(t, bundle, acct.APIKey)
		require.Equal(t, http.StatusUnauthorized, resp.status)
		require.Equal(t, "invalid_api_key", resp.errorMessage(t).Code)
		require.NotContains(t, resp.body, acct.APIKey)
	})

	t.Run("CreateAccountBadInput", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		for name, tc := range map[string]struct {
			body string
			want string
		}{
			"malformed JSON":   {`{"scopes":`, "not valid"},
			"wrong type":       {`{"scopes":"contacts.read"}`, "not valid"},
			"unknown field":    {`{"scope":["contacts.read"]}`, `unknown field "scope"`},
			"trailing data":    {`{"scopes":[]} {}`, "data after the JSON object"},
			"trailing brace":   {`{"scopes":[]}}`, "data after the JSON object"},
			"empty scope":      {`{"scopes":["contacts.read",""]}`, "scope is empty"},
			"scope with space": {`{"scopes":["contacts read"]}`, `scope "contacts read" is invalid`},
		} {
			resp := do(t, bundle.url, http.MethodPost, "/control/accounts", tc.body, nil)
			require.Equal(t, http.StatusBadRequest, resp.status, name)
			body := resp.errorMessage(t)
			require.Contains(t, body.Error, tc.want, name)
			require.Contains(t, body.Error, "e.g.", "%s: the error shows what to send", name)
		}

		huge := `{"scopes":["` + strings.Repeat("a", crmfake.MaxBodyBytes) + `"]}`
		resp := do(t, bundle.url, http.MethodPost, "/control/accounts", huge, nil)
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.status)

		// None of the rejected requests created an account.
		require.Zero(t, accountCount(bundle.server))
		_, err := os.Stat(bundle.statePath)
		require.ErrorIs(t, err, os.ErrNotExist)
	})

	t.Run("ScopeChangeBadInput", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		acct, err := bundle.client.CreateAccount(context.Background(), nil)
		require.NoError(t, err)
		path := "/control/keys/" + acct.APIKey + "/drop-scope"

		for name, tc := range map[string]struct {
			body   string
			status int
			want   string
		}{
			"empty body":     {``, http.StatusBadRequest, "request body is empty"},
			"malformed JSON": {`{"scope":`, http.StatusBadRequest, "not valid"},
			"unknown field":  {`{"scopes":"contacts.read"}`, http.StatusBadRequest, "unknown field"},
			"empty scope":    {`{"scope":""}`, http.StatusBadRequest, "scope is empty"},
			"invalid scope":  {`{"scope":"a\nb"}`, http.StatusBadRequest, "is invalid"},
			"scope not held": {`{"scope":"deals.read"}`, http.StatusConflict, "does not have scope \"deals.read\" (it has: contacts.read, contacts.write)"},
		} {
			resp := do(t, bundle.url, http.MethodPost, path, tc.body, nil)
			require.Equal(t, tc.status, resp.status, name)
			body := resp.errorMessage(t)
			require.Contains(t, body.Error, tc.want, name)
			require.NotContains(t, resp.body, acct.APIKey, name)
		}

		got, err := bundle.client.Account(context.Background(), acct.APIKey)
		require.NoError(t, err)
		require.Equal(t, acct, got, "rejected requests change nothing")
	})

	t.Run("UnknownKeyIs404", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		for _, req := range []struct{ method, path, body string }{
			{http.MethodGet, "/control/accounts/sbx_nope", ""},
			{http.MethodPost, "/control/keys/sbx_nope/revoke", ""},
			{http.MethodPost, "/control/keys/sbx_nope/restore", ""},
			{http.MethodPost, "/control/keys/sbx_nope/disable-api", ""},
			{http.MethodPost, "/control/keys/sbx_nope/enable-api", ""},
			{http.MethodPost, "/control/keys/sbx_nope/drop-scope", `{"scope":"contacts.read"}`},
			{http.MethodPost, "/control/keys/sbx_nope/add-scope", `{"scope":"contacts.read"}`},
		} {
			resp := do(t, bundle.url, req.method, req.path, req.body, nil)
			require.Equal(t, http.StatusNotFound, resp.status, req.path)
			body := resp.errorMessage(t)
			require.Equal(t, "unknown_api_key", body.Code, req.path)
			require.Contains(t, body.Error, "create an account with POST /control/accounts")
			require.NotContains(t, resp.body, "sbx_nope")
		}
	})

	t.Run("UnroutedRequestsGetJSON", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)

		resp := do(t, bundle.url, http.MethodPost, "/control/keys/sbx_secret/revok", "", nil)
		require.Equal(t, http.StatusNotFound, resp.status)
		require.Equal(t, "not_found", resp.errorMessage(t).Code)
		require.NotContains(t, resp.body, "sbx_secret", "the path may hold a key")

		resp = do(t, bundle.url, http.MethodGet, "/control/keys/sbx_secret/revoke", "", nil)
		require.Equal(t, http.StatusMethodNotAllowed, resp.status)
		require.Equal(t, "method_not_allowed", resp.errorMessage(t).Code)
		require.Equal(t, "POST", resp.header.Get("Allow"))
		require.Contains(t, resp.errorMessage(t).Error, "use POST")
	})

	t.Run("PersistsAcrossRestarts", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		ctx := context.Background()

		kept, err := bundle.client.CreateAccount(ctx, nil)
		require.NoError(t, err)
		revoked, err := bundle.client.CreateAccount(ctx, []string{"contacts.read", "deals.read"})
		require.NoError(t, err)
		_, err = bundle.client.Revoke(ctx, revoked.APIKey)
		require.NoError(t, err)
		_, err = bundle.client.DropScope(ctx, revoked.APIKey, "deals.read")
		require.NoError(t, err)
		_, err = bundle.client.DisableAPI(ctx, revoked.APIKey)
		require.NoError(t, err)

		info, err := os.Stat(bundle.statePath)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the state file holds API keys")

		restarted, err := NewServer(bundle.statePath)
		require.NoError(t, err)
		httpServer := httptest.NewServer(restarted.Handler())
		t.Cleanup(httpServer.Close)
		client := NewClient(httpServer.URL, nil)

		got, err := client.Account(ctx, kept.APIKey)
		require.NoError(t, err)
		require.Equal(t, kept, got)

		got, err = client.Account(ctx, revoked.APIKey)
		require.NoError(t, err)
		require.Equal(t, revoked.ID, got.ID)
		require.True(t, got.Revoked)
		require.False(t, got.APIEnabled)
		require.Equal(t, []string{"contacts.read"}, got.Scopes)

		resp := do(t, httpServer.URL, http.MethodGet, "/api/v1/me", "", map[string]string{"Authorization": "Bearer " + kept.APIKey})
		require.Equal(t, http.StatusOK, resp.status, "keys keep authenticating after a restart")
	})

	t.Run("InMemoryWritesNoFile", func(t *testing.T) {
		t.Parallel()
		server, err := NewServer("")
		require.NoError(t, err)
		a, err := server.createAccount(nil)
		require.NoError(t, err)
		require.Equal(t, DefaultScopes(), a.Scopes)
		require.Equal(t, "", server.state.Path)
	})

	t.Run("CorruptStateFile", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()

		for name, content := range map[string]string{
			"not JSON":      `{"accounts": [`,
			"no key":        `{"accounts": [{"account_id":"acct_1"}]}`,
			"duplicate key": `{"accounts": [{"account_id":"acct_1","api_key":"sbx_1"},{"account_id":"acct_2","api_key":"sbx_1"}]}`,
		} {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
			require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
			_, err := NewServer(path)
			require.ErrorContains(t, err, "is corrupt", name)
			require.ErrorContains(t, err, "delete it to start with no sandbox accounts", name)
			require.NotContains(t, err.Error(), "sbx_1", name)
		}
	})

	t.Run("FailedSaveChangesNothing", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		ctx := context.Background()

		acct, err := bundle.client.CreateAccount(ctx, nil)
		require.NoError(t, err)

		// A directory where the state file should be makes the rename fail.
		require.NoError(t, os.Remove(bundle.statePath))
		require.NoError(t, os.MkdirAll(filepath.Join(bundle.statePath, "blocker"), 0o700))

		_, err = bundle.client.Revoke(ctx, acct.APIKey)
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusInternalServerError, apiErr.StatusCode)
		require.Contains(t, apiErr.Message, "save sandbox state")

		_, err = bundle.client.CreateAccount(ctx, nil)
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusInternalServerError, apiErr.StatusCode)

		got, err := bundle.client.Account(ctx, acct.APIKey)
		require.NoError(t, err)
		require.False(t, got.Revoked, "the failed revoke was rolled back")
		require.Equal(t, 1, accountCount(bundle.server), "the failed create was rolled back")
	})
}
