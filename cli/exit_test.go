package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/cli"
	"github.com/acme/integrations/internal/testenv"
)

// exitBundle is a data directory of its own, whose dev.json points at
// services that are not there.
type exitBundle struct {
	dataDir string
}

func setupExit(t *testing.T) *exitBundle {
	t.Helper()
	return &exitBundle{dataDir: t.TempDir()}
}

// run invokes the CLI with the bundle's data directory.
func (b *exitBundle) run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), append([]string{"integrations", "--data-dir", b.dataDir}, args...), &out, &errOut)
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// writeDevInfo writes the dev.json a dev stack would leave.
func (b *exitBundle) writeDevInfo(t *testing.T, info map[string]string) {
	t.Helper()
	raw, err := json.Marshal(info)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(b.dataDir, "dev.json"), raw, 0o600))
}

// closedAddress returns a local address nothing listens on.
func closedAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// requireError checks an invocation that failed for want of a service:
// exit 1, nothing on stdout, and one "error: " line on stderr naming it
// and what to check.
func requireError(t *testing.T, r result, want ...string) {
	t.Helper()
	require.Equal(t, cli.ExitError, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Empty(t, r.stdout)
	require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
	require.True(t, strings.HasPrefix(r.stderr, "error: "), r.stderr)
	for _, w := range want {
		require.Contains(t, r.stderr, w)
	}
}

// TestExitCodeError: a command that cannot reach the database or Temporal
// exits 1 with an "error:" line, and stores nothing.
func TestExitCodeError(t *testing.T) {
	t.Parallel()
	t.Run("database unreachable", func(t *testing.T) {
		t.Parallel()
		b := setupExit(t)
		url := "postgres://postgres@" + closedAddress(t) + "/integrations?sslmode=disable"
		requireError(t, b.run(t, "--database-url", url, "list"), "PostgreSQL", "DATABASE_URL")
		requireError(t, b.run(t, "--database-url", url, "status", "crm-1"), "PostgreSQL", "DATABASE_URL")
	})
	t.Run("Temporal unreachable", func(t *testing.T) {
		t.Parallel()
		b := setupExit(t)
		db := testenv.SQLiteURL(t)
		temporalAddr := closedAddress(t)
		b.writeDevInfo(t, map[string]string{"temporal_address": temporalAddr, "namespace": "default", "database_url": db})
		require.Equal(t, cli.ExitOK, b.run(t, "migrate").code)

		r := b.run(t, "create", "crm", "--org", "acme", "--provider", "sandbox", "--id", "crm-1")
		requireError(t, r, "connect to Temporal at "+temporalAddr, "TEMPORAL_ADDRESS")
		requireError(t, b.run(t, "pause", "crm-1"), "connect to Temporal at "+temporalAddr, "TEMPORAL_ADDRESS")

		// Nothing was stored: the database still lists no integration.
		r = b.run(t, "list", "--org", "acme", "-o", "json")
		require.Equal(t, cli.ExitOK, r.code, r.stderr)
		var views []json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &views))
		require.Empty(t, views, "a create that failed stored nothing")
	})
}
