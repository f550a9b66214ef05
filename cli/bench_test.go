package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/cli"
	"github.com/acme/integrations/internal/testenv"
)

// benchBundle is what `integrations bench` needs: the integrations binary
// its worker and HTTP API children run, and the temporal CLI.
type benchBundle struct {
	binary, temporalBin string
}

func setupBench(t *testing.T) *benchBundle {
	t.Helper()
	temporalBin, err := testenv.TemporalBinary()
	if err != nil {
		testenv.Unavailable(t, "the temporal CLI binary", err)
	}
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	// The children are separate processes of the real binary; the test
	// binary cannot stand in for it.
	binary := filepath.Join(t.TempDir(), "integrations")
	build := exec.Command("go", "build", "-o", binary, "./cmd/integrations")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return &benchBundle{binary: binary, temporalBin: temporalBin}
}

// benchFigures is the part of bench's JSON report the test checks.
type benchFigures struct {
	Accepted            int64   `json:"accepted"`
	Errors              int64   `json:"errors"`
	IntakeRate          float64 `json:"intake_rate"`
	DeliveriesTotal     int64   `json:"deliveries_total"`
	DeliveriesCompleted int64   `json:"deliveries_completed"`
	Pending             int64   `json:"pending"`
	Drained             bool    `json:"drained"`
	DeliveredRate       float64 `json:"delivered_rate"`
	Latency             struct {
		P50, P95, P99, Max float64
		Samples            int64
	} `json:"latency_ms"`
	WorkerPeakRSSBytes *int64  `json:"worker_peak_rss_bytes"`
	RawCapacity        float64 `json:"raw_capacity"`
	DeliveredOfRaw     float64 `json:"delivered_of_raw_percent"`
}

func TestBenchDrivesLeadsToEveryCRM(t *testing.T) {
	t.Parallel()
	b := setupBench(t)
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), []string{"integrations", "--data-dir", t.TempDir(),
		"bench", "--database-url", testenv.SQLiteURL(t), "--duration", "3s", "--leads", "1", "--crms", "1",
		"--concurrency", "4", "--output", "json", "--binary", b.binary, "--temporal-bin", b.temporalBin,
	}, &stdout, &stderr)
	require.Equal(t, cli.ExitOK, code, "stderr: %s", stderr.String())

	var got benchFigures
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &got), "stdout must be the JSON report alone: %s", stdout.String())
	require.Positive(t, got.Accepted)
	require.Zero(t, got.Errors, "stderr: %s", stderr.String())
	require.Positive(t, got.IntakeRate)
	require.Equal(t, got.Accepted, got.DeliveriesTotal, "one CRM: one delivery per lead")
	require.Equal(t, got.DeliveriesTotal, got.DeliveriesCompleted)
	require.Zero(t, got.Pending)
	require.True(t, got.Drained)
	require.Positive(t, got.DeliveredRate)
	require.Equal(t, got.DeliveriesCompleted, got.Latency.Samples)
	require.Positive(t, got.Latency.P50)
	require.LessOrEqual(t, got.Latency.P50, got.Latency.P95)
	require.LessOrEqual(t, got.Latency.P95, got.Latency.P99)
	require.LessOrEqual(t, got.Latency.P99, got.Latency.Max)
	require.NotNil(t, got.WorkerPeakRSSBytes)
	require.Positive(t, *got.WorkerPeakRSSBytes)
	require.Positive(t, got.RawCapacity)
	require.Positive(t, got.DeliveredOfRaw)
}

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
