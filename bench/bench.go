// Package bench is the benchmark of the lead flow, end to end: it builds a
// stack of its own (or attaches to a running `integrations dev`), takes one
// org's lead and CRM integrations through setup, posts leads to the intake
// API at full speed, waits until every lead reached every CRM, times the
// drain of a backlog, and measures the sandbox CRM's raw capacity, with the
// CPU each part of the stack used. The `bench` command only parses its
// flags and calls Run; the files split by concern: stack (and child
// processes), org setup, load, measurements, profiles, report.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/internal/proc"
)

// Bounds of the benchmark's run.
const (
	// benchDrainTimeout is how long the benchmark waits, after intake
	// stopped, for every accepted lead to reach every CRM.
	benchDrainTimeout = 5 * time.Minute
	// benchRawWindow is how long the sandbox's raw capacity is measured
	// (or --duration/6 when that is shorter).
	benchRawWindow = 10 * time.Second
	// benchBacklogWindow is how long leads are posted while the CRMs are
	// paused, to build the backlog whose drain measures the delivery
	// capacity (or --duration/3 when that is shorter).
	benchBacklogWindow = 20 * time.Second
	// benchRequestTimeout bounds one intake request, so the load stops by
	// itself even if the server hangs.
	benchRequestTimeout = 10 * time.Second
	// benchStartTimeout bounds starting the Temporal dev server and
	// waiting for the HTTP API child to answer.
	benchStartTimeout = 2 * time.Minute
	// benchStopTimeout is how long a child gets to stop after SIGTERM
	// before it is killed.
	benchStopTimeout = 15 * time.Second
	// benchShownErrors is how many failed intake requests are printed.
	benchShownErrors = 5
	// benchPollInterval is how often the drain is checked.
	benchPollInterval = 50 * time.Millisecond
)

// randomID returns a short random hex ID that keeps one run's integrations,
// task queue and records apart from every other run's.
func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Options are the benchmark's flags.
type Options struct {
	// Leads and CRMs are the org's lead and CRM integrations; every lead
	// goes to each CRM.
	Leads, CRMs int
	// Concurrency is how many intake requests are in flight at once.
	Concurrency int
	// Duration is how long leads are posted.
	Duration time.Duration
	// CRMLatency makes every sandbox contacts call take this long.
	CRMLatency time.Duration
	// Attach uses the running `integrations dev` of the data dir.
	Attach bool
	// TemporalBin is the temporal CLI ("": see app.FindTemporalBinary).
	TemporalBin string
	// Binary is the integrations binary the child processes run ("":
	// this one).
	Binary string
	// ProfileDir receives CPU profiles taken during the load ("": none).
	ProfileDir string
	// JSON prints the report as one JSON object.
	JSON bool
}

// Validate checks opts against their bounds and, for Attach, that cfg's
// data dir has a running dev stack on this machine. Its errors are the
// caller's mistakes, each saying what to change.
func (o Options) Validate(cfg app.Config) error {
	switch {
	case o.Leads < 1 || o.Leads > 1000:
		return fmt.Errorf("--leads must be 1-1000, not %d", o.Leads)
	case o.CRMs < 1 || o.CRMs > 100:
		return fmt.Errorf("--crms must be 1-100, not %d", o.CRMs)
	case o.Concurrency < 1 || o.Concurrency > 4096:
		return fmt.Errorf("--concurrency must be 1-4096, not %d", o.Concurrency)
	case o.Duration < time.Second || o.Duration > time.Hour:
		return fmt.Errorf("--duration must be from 1s to 1h, not %s", o.Duration)
	case o.CRMLatency < 0 || o.CRMLatency > 10*time.Second || o.CRMLatency%time.Millisecond != 0:
		return fmt.Errorf("--crm-latency must be whole milliseconds from 0 to 10s, not %s", o.CRMLatency)
	case o.Attach && o.ProfileDir != "":
		return fmt.Errorf("--profile-dir needs the benchmark's own stack: drop --attach, or set %s on `integrations dev` and profile it yourself", app.PprofAddrEnv)
	}
	if !o.Attach {
		return nil
	}
	if cfg.Dev == nil || cfg.Dev.HTTPURL == "" {
		return fmt.Errorf("--attach: no running `integrations dev` found (%s is missing): start one, or drop --attach to let bench start its own stack", app.DevInfoPath(cfg.DataDir))
	}
	for _, u := range []string{cfg.Dev.HTTPURL, cfg.SandboxURL} {
		if err := checkLoopback(u); err != nil {
			return fmt.Errorf("--attach: %w", err)
		}
	}
	return nil
}

// Run runs the benchmark with cfg (the process's configuration) until it
// is done or ctx ends, and prints its report to out (JSON with
// opts.JSON); its progress goes to errOut. Everything it started is
// stopped and removed before it returns.
func Run(ctx context.Context, cfg app.Config, opts Options, out, errOut io.Writer) error {
	if err := opts.Validate(cfg); err != nil {
		return err
	}
	if opts.Binary == "" && !opts.Attach {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the integrations binary for the child processes: %w (pass --binary)", err)
		}
		opts.Binary = exe
	}
	progress := func(format string, args ...any) {
		fmt.Fprintf(errOut, "bench: "+format+"\n", args...)
	}
	// The SDK's and the stack's own complaints, not their chatter.
	logger := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelError}))
	runID := randomID()

	var stack *benchStack
	var err error
	if opts.Attach {
		stack, err = attachBenchStack(ctx, cfg, logger)
	} else {
		stack, err = startBenchStack(ctx, cfg, opts, runID, logger, progress)
	}
	if stack != nil {
		defer stack.close()
	}
	if err != nil {
		return err
	}

	progress("setting up 1 org with %d lead and %d CRM integrations...", opts.Leads, opts.CRMs)
	org, err := setupBenchOrg(ctx, stack, runID, opts)
	if opts.Attach {
		// The attached stack outlives the run: end the workflows it
		// created (also when setup failed half-way), so they do not keep
		// timers and rows busy.
		stack.onClose(func() { deleteBenchOrg(stack, org) })
	}
	if err != nil {
		if cerr := stack.checkChildren(); cerr != nil {
			err = fmt.Errorf("%w (%v)", err, cerr)
		}
		return fmt.Errorf("bench setup: %w", err)
	}

	report := benchReport{
		Mode: stack.mode, Database: stack.database, LeadIntegrations: opts.Leads,
		CRMIntegrations: opts.CRMs, Concurrency: opts.Concurrency, CRMLatencyMS: opts.CRMLatency.Milliseconds(),
	}
	runStart := time.Now().UTC()
	cpuBefore, cpuFrom := sampleCPU(stack), time.Now()

	var profiles *benchProfiles
	if opts.ProfileDir != "" {
		if profiles, err = startProfiles(ctx, opts, stack); err != nil {
			return err
		}
	}
	progress("posting leads to %s for %s with %d senders...", stack.httpURL, opts.Duration, opts.Concurrency)
	load := driveIntake(ctx, stack.httpURL, org.leads, runID, opts, progress)
	if profiles != nil {
		profiles.stopLoad()
	}
	report.setIntake(load)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bench interrupted during the load: %w", err)
	}
	if err := stack.checkChildren(); err != nil {
		return fmt.Errorf("bench load: %w", err)
	}

	progress("accepted %d leads (%.1f/s, %d errors); waiting for %d deliveries...", load.accepted, report.IntakeRate, load.errors, load.accepted*int64(opts.CRMs))
	drain, err := waitDrained(ctx, stack, org.crms, load, int64(opts.CRMs))
	if err != nil {
		return err
	}
	report.setDelivery(drain, load, int64(opts.CRMs))
	report.CPUSeconds = cpuSince(cpuBefore, sampleCPU(stack))
	if len(report.CPUSeconds) > 0 {
		report.CPUAvailableSeconds = round2(float64(runtime.NumCPU()) * time.Since(cpuFrom).Seconds())
	}
	if profiles != nil {
		written, err := profiles.finish()
		if err != nil {
			return err
		}
		for _, p := range written {
			progress("profile written: %s (read it with `go tool pprof -top %s %s`)", p, opts.Binary, p)
		}
	}

	latencies, err := stack.store.DeliveryLatencies(ctx, runStart)
	if err != nil {
		return err
	}
	report.Latency = percentiles(latencies)
	if stack.worker != nil {
		if hwm, err := proc.PeakRSS(stack.worker.pid()); err == nil {
			report.WorkerPeakRSSBytes = &hwm
		}
	}

	// The delivered rate above is bound by intake (delivery keeps pace).
	// The delivery capacity shows on a backlog: pause the CRMs, let leads
	// pile up, resume, and time the drain. The backlog must be large
	// enough for the drain to outlast the resume's fixed costs.
	backlogWindow := min(benchBacklogWindow, opts.Duration/3)
	progress("backlog: pausing the CRM integrations and posting leads for %s...", backlogWindow.Round(time.Millisecond))
	backlog, err := measureBacklog(ctx, stack, org, runID, opts, backlogWindow, progress)
	if err != nil {
		return err
	}
	report.setBacklog(backlog)

	window := min(benchRawWindow, opts.Duration/6)
	progress("measuring the sandbox's raw capacity: %d pushers, batches of %d, %s...", len(org.crms), stack.connector.BatchLimit(), window.Round(time.Millisecond))
	raw, err := measureRawCapacity(ctx, stack.connector, org.crms, runID, window)
	if err != nil {
		return err
	}
	report.setRaw(raw)

	if opts.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	report.printText(out)
	return nil
}
