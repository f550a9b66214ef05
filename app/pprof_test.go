package app_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/app"
)

func TestPprofOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:0", ":0", "example.com:6060", "not-an-address"} {
		require.ErrorContains(t, app.ServePprof(addr), "refused", addr)
	}

	addr, err := app.FreeLoopbackAddr()
	require.NoError(t, err)
	require.NoError(t, app.ServePprof(addr))
	for path, want := range map[string]int{
		"/debug/pprof/":          http.StatusOK,
		"/debug/pprof/heap":      http.StatusOK,
		"/debug/pprof/cmdline":   http.StatusNotFound, // argv may hold a password
		"/debug/pprof/goroutine": http.StatusOK,
	} {
		resp, err := http.Get("http://" + addr + path)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, path)
	}
}
