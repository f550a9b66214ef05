package sandboxfake

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClient(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		client *Client
		url    string
	}

	setup := func(t *testing.T) *testBundle {
		t.Helper()
		server, err := NewServer("")
		require.NoError(t, err)
		httpServer := httptest.NewServer(server.Handler())
		t.Cleanup(httpServer.Close)
		// A trailing slash on the base URL is tolerated.
		return &testBundle{client: NewClient(httpServer.URL+"/", nil), url: httpServer.URL}
	}

	t.Run("CreateAccount", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		ctx := context.Background()

		a, err := bundle.client.CreateAccount(ctx, nil)
		require.NoError(t, err)
		require.Regexp(t, `^acct_[0-9a-f]{12}$`, a.ID)
		require.Regexp(t, `^sbx_[0-9a-f]{32}$`, a.APIKey)
		require.Equal(t, []string{"contacts.read", "contacts.write"}, a.Scopes)
		require.True(t, a.APIEnabled)
		require.False(t, a.Revoked)
		require.False(t, a.CreatedAt.IsZero())

		b, err := bundle.client.CreateAccount(ctx, []string{"contacts.read", "deals.read", "contacts.read"})
		require.NoError(t, err)
		require.Equal(t, []string{"contacts.read", "deals.read"}, b.Scopes, "duplicates collapse")
		require.NotEqual(t, a.ID, b.ID)
		require.NotEqual(t, a.APIKey, b.APIKey)

		none, err := bundle.client.CreateAccount(ctx, []string{})
		require.NoError(t, err)
		require.Empty(t, none.Scopes, "an empty list means no scopes, not the defaults")
		require.NotNil(t, none.Scopes)
	})

	t.Run("EveryOperation", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		ctx := context.Background()
		a, err := bundle.client.CreateAccount(ctx, nil)
		require.NoError(t, err)

		got, err := bundle.client.Account(ctx, a.APIKey)
		require.NoError(t, err)
		require.Equal(t, a, got)

		got, err = bundle.client.Revoke(ctx, a.APIKey)
		require.NoError(t, err)
		require.True(t, got.Revoked)
		got, err = bundle.client.Revoke(ctx, a.APIKey)
		require.NoError(t, err, "revoke is idempotent")
		require.True(t, got.Revoked)

		got, err = bundle.client.Restore(ctx, a.APIKey)
		require.NoError(t, err)
		require.False(t, got.Revoked)

		got, err = bundle.client.DropScope(ctx, a.APIKey, ScopeContactsWrite)
		require.NoError(t, err)
		require.Equal(t, []string{ScopeContactsRead}, got.Scopes)

		got, err = bundle.client.AddScope(ctx, a.APIKey, ScopeContactsWrite)
		require.NoError(t, err)
		require.Equal(t, []string{ScopeContactsRead, ScopeContactsWrite}, got.Scopes)
		got, err = bundle.client.AddScope(ctx, a.APIKey, ScopeContactsWrite)
		require.NoError(t, err, "add-scope is idempotent")
		require.Equal(t, []string{ScopeContactsRead, ScopeContactsWrite}, got.Scopes)

		got, err = bundle.client.DisableAPI(ctx, a.APIKey)
		require.NoError(t, err)
		require.False(t, got.APIEnabled)

		got, err = bundle.client.EnableAPI(ctx, a.APIKey)
		require.NoError(t, err)
		require.True(t, got.APIEnabled)

		got, err = bundle.client.Account(ctx, a.APIKey)
		require.NoError(t, err)
		require.Equal(t, a, got, "after undoing every change the account is as created")
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		ctx := context.Background()
		a, err := bundle.client.CreateAccount(ctx, nil)
		require.NoError(t, err)
		const unknown = "sbx_00000000000000000000000000000000"

		var errs []error
		check := func(err error) error {
			t.Helper()
			require.Error(t, err)
			errs = append(errs, err)
			return err
		}

		var apiErr *APIError
		err = check(func() error { _, err := bundle.client.Revoke(ctx, unknown); return err }())
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
		require.Equal(t, "unknown_api_key", apiErr.Code)
		require.ErrorContains(t, err, "revoke sandbox API key: sandbox CRM answered HTTP 404: no sandbox account has that API key")

		for _, op := range []func(string) error{
			func(k string) error { _, err := bundle.client.Account(ctx, k); return err },
			func(k string) error { _, err := bundle.client.Restore(ctx, k); return err },
			func(k string) error { _, err := bundle.client.DisableAPI(ctx, k); return err },
			func(k string) error { _, err := bundle.client.EnableAPI(ctx, k); return err },
			func(k string) error { _, err := bundle.client.DropScope(ctx, k, "x"); return err },
			func(k string) error { _, err := bundle.client.AddScope(ctx, k, "x"); return err },
		} {
			err := check(op(unknown))
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, http.StatusNotFound, apiErr.StatusCode)
			require.ErrorContains(t, check(op("")), "API key is empty")
		}

		// Keys with characters that need escaping reach the server as one path segment.
		err = check(func() error { _, err := bundle.client.Revoke(ctx, "sbx_a/b?c"); return err }())
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusNotFound, apiErr.StatusCode)

		err = check(func() error { _, err := bundle.client.DropScope(ctx, a.APIKey, ""); return err }())
		require.ErrorContains(t, err, "scope is empty")
		err = check(func() error { _, err := bundle.client.AddScope(ctx, a.APIKey, ""); return err }())
		require.ErrorContains(t, err, "scope is empty")

		err = check(func() error { _, err := bundle.client.DropScope(ctx, a.APIKey, "deals.read"); return err }())
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusConflict, apiErr.StatusCode)

		err = check(func() error { _, err := bundle.client.CreateAccount(ctx, []string{"bad scope"}); return err }())
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusBadRequest, apiErr.StatusCode)

		// Nothing listening: the transport error must not carry the URL, whose path holds the key.
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		err = check(func() error { _, err := NewClient(dead.URL, nil).Revoke(ctx, a.APIKey); return err }())
		require.ErrorContains(t, err, "reach sandbox CRM at "+dead.URL)

		// A server that is not the sandbox and echoes the request.
		echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("upstream failed for " + r.URL.Path))
		}))
		t.Cleanup(echo.Close)
		err = check(func() error { _, err := NewClient(echo.URL, nil).Revoke(ctx, a.APIKey); return err }())
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusBadGateway, apiErr.StatusCode)
		require.ErrorContains(t, err, "not a control API error: is the URL the sandbox CRM?")

		// A cancelled context is reported as such.
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		err = check(func() error { _, err := bundle.client.Account(cancelled, a.APIKey); return err }())
		require.True(t, errors.Is(err, context.Canceled), err.Error())

		for _, err := range errs {
			require.NotContains(t, err.Error(), a.APIKey)
			require.NotContains(t, err.Error(), unknown)
			require.NotContains(t, err.Error(), "sbx_a")
		}
	})
}
