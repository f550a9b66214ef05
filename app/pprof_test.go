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
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
