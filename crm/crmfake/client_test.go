package crmfake

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := "/control/things/" + url.PathEscape(secret)

	t.Run("Answers", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.Equal(t, b.url, b.client.BaseURL(), "the trailing slash is dropped")
		require.NotNil(t, b.client.HTTPClient())

		var th thing
		require.NoError(t, b.client.Do(ctx, http.MethodGet, path, nil, &th, "a thing"))
		require.Equal(t, thing{Key: secret, Count: 2}, th)

		var created thing
		require.NoError(t, b.client.Do(ctx, http.MethodPost, "/control/things", thing{Key: "new"}, &created, "a thing"))
		require.Equal(t, thing{Key: "new"}, created)
	})

	t.Run("DoOn", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		noID := errors.New("the key is empty: pass one")
		var n int
		require.NoError(t, b.client.DoOn(ctx, "count things", http.MethodGet, "/control/things/", secret, "/count", noID, nil, &n, "a count"))
		require.Equal(t, 2, n)

		err := b.client.DoOn(ctx, "count things", http.MethodGet, "/control/things/", " ", "/count", noID, nil, &n, "a count")
		require.ErrorIs(t, err, noID)
		require.EqualError(t, err, "count things: the key is empty: pass one")

		// An ID that needs escaping stays one path segment.
		err = b.client.DoOn(ctx, "count things", http.MethodGet, "/control/things/", "a/b?c", "/count", noID, nil, &n, "a count")
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, "unknown_key", apiErr.Code)
		require.EqualError(t, err, "count things: fake Acme answered HTTP 404: no fake Acme account has that key")
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var errs []error

		// An error answer of the control API.
		err := b.client.Do(ctx, http.MethodGet, "/control/things/other", nil, &thing{}, "a thing")
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, APIError{Fake: "fake Acme", StatusCode: http.StatusNotFound, Code: "unknown_key", Message: "no fake Acme account has that key"}, *apiErr)
		require.EqualError(t, err, "fake Acme answered HTTP 404: no fake Acme account has that key")
		require.EqualError(t, &APIError{Fake: "fake Acme", StatusCode: 502}, "fake Acme answered HTTP 502")
		errs = append(errs, err)

		// A 2xx answer that is not what was asked for.
		var n struct{ Count string }
		err = b.client.Do(ctx, http.MethodGet, path, nil, &n, "a count")
		require.EqualError(t, err, "the fake Acme's answer is not a count (HTTP 200): is "+b.url+" the fake Acme?")
		errs = append(errs, err)

		// A server that is not the fake and echoes the request.
		echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("upstream failed for " + r.URL.Path))
		}))
		t.Cleanup(echo.Close)
		err = NewClient(b.fake, echo.URL, nil).Do(ctx, http.MethodGet, path, nil, &thing{}, "a thing")
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusBadGateway, apiErr.StatusCode)
		require.EqualError(t, err, "fake Acme answered HTTP 502: Bad Gateway (not a control API error: is the URL the fake Acme?)")
		errs = append(errs, err)

		// Nothing listening: the transport error keeps its cause, not the URL.
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		err = NewClient(b.fake, dead.URL, nil).Do(ctx, http.MethodGet, path, nil, &thing{}, "a thing")
		require.ErrorContains(t, err, "reach fake Acme at "+dead.URL+": ")
		errs = append(errs, err)

		// A base URL that cannot be used is quoted, the path is not.
		err = NewClient(b.fake, "http://bad host", nil).Do(ctx, http.MethodGet, path, nil, &thing{}, "a thing")
		require.EqualError(t, err, `invalid fake Acme URL "http://bad host": use e.g. http://127.0.0.1:8099`)
		errs = append(errs, err)

		// A body that cannot be encoded.
		err = b.client.Do(ctx, http.MethodPost, "/control/things", func() {}, &thing{}, "a thing")
		require.ErrorContains(t, err, "encode request: ")
		errs = append(errs, err)

		// A cancelled context is reported as such.
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		err = b.client.Do(cancelled, http.MethodGet, path, nil, &thing{}, "a thing")
		require.True(t, errors.Is(err, context.Canceled), err.Error())
		errs = append(errs, err)

		for _, err := range errs {
			require.NotContains(t, err.Error(), secret)
		}
	})
}
