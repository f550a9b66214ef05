package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/bench"
	"github.com/acme/integrations/internal/testenv"
)

// TestMain stops the shared Temporal dev server after the tests.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

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
	cfg, err := app.Load(app.Inputs{Flags: map[string]string{"data-dir": t.TempDir(), "database-url": testenv.SQLiteURL(t)}})
	require.NoError(t, err)
	var stdout, stderr bytes.Buffer
	err = bench.Run(context.Background(), cfg, bench.Options{
		Leads: 1, CRMs: 1, Concurrency: 4, Duration: 3 * time.Second, JSON: true,
		Binary: b.binary, TemporalBin: b.temporalBin,
	}, &stdout, &stderr)
	require.NoError(t, err, "stderr: %s", stderr.String())

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

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	cfg, err := app.Load(app.Inputs{Flags: map[string]string{"data-dir": t.TempDir()}})
	require.NoError(t, err)
	good := bench.Options{Leads: 4, CRMs: 2, Concurrency: 8, Duration: time.Minute}
	require.NoError(t, good.Validate(cfg))
	for name, mutate := range map[string]func(o *bench.Options){
		"--leads":       func(o *bench.Options) { o.Leads = 0 },
		"--crms":        func(o *bench.Options) { o.CRMs = 0 },
		"--concurrency": func(o *bench.Options) { o.Concurrency = 0 },
		"--duration":    func(o *bench.Options) { o.Duration = 10 * time.Millisecond },
		"--crm-latency": func(o *bench.Options) { o.CRMLatency = 20 * time.Second },
		"--profile-dir": func(o *bench.Options) { o.Attach, o.ProfileDir = true, "profiles" },
	} {
		o := good
		mutate(&o)
		err := o.Validate(cfg)
		require.Error(t, err, name)
		require.Contains(t, err.Error(), name)
	}
}

func TestAttachNeedsARunningDevStack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg, err := app.Load(app.Inputs{Flags: map[string]string{"data-dir": dir}})
	require.NoError(t, err)
	err = bench.Options{Leads: 1, CRMs: 1, Concurrency: 1, Duration: time.Second, Attach: true}.Validate(cfg)
	require.ErrorContains(t, err, "no running `integrations dev` found")
	require.ErrorContains(t, err, filepath.Join(dir, "dev.json"))
}
