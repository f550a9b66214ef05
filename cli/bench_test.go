package cli_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/cli"
)

func TestBenchRejectsBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--leads", "0"},
		{"--crms", "0"},
		{"--concurrency", "0"},
		{"--duration", "10ms"},
		{"--crm-latency=20s"},
		{"--attach", "--profile-dir", "profiles"},
		{"extra-argument"},
	} {
		var stdout, stderr bytes.Buffer
		code := cli.Run(context.Background(), append([]string{"integrations", "--data-dir", t.TempDir(), "bench"}, args...), &stdout, &stderr)
		require.Equal(t, cli.ExitUsage, code, "bench %v: stderr %s", args, stderr.String())
		require.Empty(t, stdout.String())
	}
}

func TestBenchAttachNeedsARunningDevStack(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), []string{"integrations", "--data-dir", t.TempDir(), "bench", "--attach"}, &stdout, &stderr)
	require.Equal(t, cli.ExitUsage, code)
	require.Contains(t, stderr.String(), "no running `integrations dev` found")
}
