package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	runtimepprof "runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/sandbox"
	"github.com/acme/integrations/crm/sandbox/sandboxfake"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/proc"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
	"github.com/acme/integrations/workflows"
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

// pprofAddrEnv makes any integrations process (worker, serve, dev) serve
// net/http/pprof on a loopback address, e.g. 127.0.0.1:6060: the benchmark's
// --profile-dir sets it on its child processes to profile them, and an
// operator can set it to look inside a slow process on this machine.
const pprofAddrEnv = "INTEGRATIONS_PPROF_ADDR"

// init serves pprof when pprofAddrEnv asks for it. It runs in every process
// of the binary, before any command, so the worker and the HTTP API can be
// profiled without a flag of their own; it does nothing when the variable
// is unset.
func init() {
	addr := os.Getenv(pprofAddrEnv)
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		// Profiles expose memory contents: never on a public interface.
		fmt.Fprintf(os.Stderr, "%s=%q ignored: give a loopback address such as 127.0.0.1:6060\n", pprofAddrEnv, addr)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: cannot listen on %s: %v\n", pprofAddrEnv, addr, err)
		return
	}
	go func() { _ = http.Serve(ln, mux) }()
}

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure the lead flow: intake rate, delivered rate, lead-to-CRM latency, worker memory, and the sandbox's raw capacity",
		Description: "Builds a whole stack on free 127.0.0.1 ports (Temporal dev server, sandbox CRM, and `integrations worker`\n" +
			"and `integrations serve` as child processes), or with --attach uses the running `integrations dev`; creates\n" +
			"N lead and M CRM integrations of one org, posts leads to the intake API at full speed for --duration, waits until\n" +
			"every lead reached every CRM, then pushes batches straight to the sandbox to measure its raw capacity.\n" +
			"Use --database-url postgres://... for figures that mean something (default: SQLite in a temporary directory).",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "leads", Value: 4, Usage: "lead integrations the load is spread over"},
			&cli.IntFlag{Name: "crms", Value: 2, Usage: "CRM integrations of the org; every lead goes to each"},
			&cli.DurationFlag{Name: "duration", Value: time.Minute, Usage: "how long leads are posted"},
			&cli.IntFlag{Name: "concurrency", Value: 8, Usage: "concurrent intake requests (at full speed each; 8 keeps a 2-core PostgreSQL out of lock and connection contention)"},
			&cli.DurationFlag{Name: "crm-latency", Usage: "make every sandbox contacts call take this long, like a real CRM's API (flow and raw capacity alike)"},
			&cli.BoolFlag{Name: "attach", Usage: "use the running `integrations dev` of DATA-DIR instead of starting a stack"},
			&cli.StringFlag{Name: "temporal-bin", EnvVars: []string{"TEMPORAL_BIN"}, Usage: "temporal CLI binary (default: bin/temporal)"},
			&cli.StringFlag{Name: "profile-dir", Usage: "write CPU profiles of the worker, the HTTP API and the load generator, taken during the load, to this directory"},
			&cli.StringFlag{Name: "binary", Hidden: true, Usage: "the integrations binary the child processes run (default: this one)"},
		},
		Action: runBench,
	}
}

// benchOptions are the benchmark's flags, checked.
type benchOptions struct {
	leads, crms, concurrency int
	duration, crmLatency     time.Duration
	attach                   bool
	temporalBin, binary      string
	profileDir               string
}

func parseBenchOptions(c *cli.Context) (benchOptions, error) {
	o := benchOptions{
		leads: c.Int("leads"), crms: c.Int("crms"), concurrency: c.Int("concurrency"),
		duration: c.Duration("duration"), crmLatency: c.Duration("crm-latency"), attach: c.Bool("attach"),
		temporalBin: c.String("temporal-bin"), binary: c.String("binary"), profileDir: c.String("profile-dir"),
	}
	switch {
	case c.NArg() > 0:
		return o, usagef("bench takes no arguments (got %q)", c.Args().First())
	case o.leads < 1 || o.leads > 1000:
		return o, usagef("--leads must be 1-1000, not %d", o.leads)
	case o.crms < 1 || o.crms > 100:
		return o, usagef("--crms must be 1-100, not %d", o.crms)
	case o.concurrency < 1 || o.concurrency > 4096:
		return o, usagef("--concurrency must be 1-4096, not %d", o.concurrency)
	case o.duration < time.Second || o.duration > time.Hour:
		return o, usagef("--duration must be from 1s to 1h, not %s", o.duration)
	case o.crmLatency < 0 || o.crmLatency > 10*time.Second || o.crmLatency%time.Millisecond != 0:
		return o, usagef("--crm-latency must be whole milliseconds from 0 to 10s, not %s", o.crmLatency)
	case o.attach && o.profileDir != "":
		return o, usagef("--profile-dir needs the benchmark's own stack: drop --attach, or set %s on `integrations dev` and profile it yourself", pprofAddrEnv)
	}
	if o.binary == "" && !o.attach {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("find the integrations binary for the child processes: %w (pass --binary)", err)
		}
		o.binary = exe
	}
	return o, nil
}

// benchStack is the service under test, started by the benchmark or
// attached to.
type benchStack struct {
	mode       string // "stack" or "attach"
	store      *store.Store
	starter    *starter.Starter
	httpURL    string
	sandboxURL string
	sandbox    *sandboxfake.Client
	connector  crm.Connector
	// worker and serve are the child processes (nil when attached).
	worker, serve *benchChild
	// temporalPID is the Temporal dev server's process (0 when unknown).
	temporalPID int
	// cleanups run in reverse order by close.
	cleanups []func()
}

func (s *benchStack) onClose(f func()) { s.cleanups = append(s.cleanups, f) }

func (s *benchStack) close() {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	s.cleanups = nil
}

// checkChildren returns an error naming a child process that has exited.
func (s *benchStack) checkChildren() error {
	for _, ch := range []*benchChild{s.worker, s.serve} {
		if ch != nil && ch.exited() {
			return ch.exitError()
		}
	}
	return nil
}

func runBench(c *cli.Context) error {
	opts, err := parseBenchOptions(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := func(format string, args ...any) {
		fmt.Fprintf(c.App.ErrWriter, "bench: "+format+"\n", args...)
	}
	runID := randomID()

	var stack *benchStack
	if opts.attach {
		stack, err = attachBenchStack(c)
	} else {
		stack, err = startBenchStack(ctx, c, opts, runID, progress)
	}
	if stack != nil {
		defer stack.close()
	}
	if err != nil {
		return err
	}

	progress("setting up 1 org with %d lead and %d CRM integrations...", opts.leads, opts.crms)
	org, err := setupBenchOrg(ctx, stack, runID, opts)
	if opts.attach {
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
		Mode: stack.mode, Database: stack.store.Dialect(), LeadIntegrations: opts.leads,
		CRMIntegrations: opts.crms, Concurrency: opts.concurrency, CRMLatencyMS: opts.crmLatency.Milliseconds(),
	}
	runStart := time.Now().UTC()
	cpuBefore, cpuFrom := sampleCPU(stack), time.Now()

	var profiles *benchProfiles
	if opts.profileDir != "" {
		if profiles, err = startProfiles(ctx, opts, stack); err != nil {
			return err
		}
	}
	progress("posting leads to %s for %s with %d senders...", stack.httpURL, opts.duration, opts.concurrency)
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

	progress("accepted %d leads (%.1f/s, %d errors); waiting for %d deliveries...", load.accepted, report.IntakeRate, load.errors, load.accepted*int64(opts.crms))
	drain, err := waitDrained(ctx, stack, org.crms, load, int64(opts.crms))
	if err != nil {
		return err
	}
	report.setDelivery(drain, load, int64(opts.crms))
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
			progress("profile written: %s (read it with `go tool pprof -top %s %s`)", p, opts.binary, p)
		}
	}

	latencies, err := stack.store.DeliveryLatencies(ctx, runStart)
	if err != nil {
		return err
	}
	report.Latency = percentiles(latencies)
	if stack.worker != nil {
		if hwm, err := peakRSS(stack.worker.pid()); err == nil {
			report.WorkerPeakRSSBytes = &hwm
		}
	}

	// The delivered rate above is bound by intake (delivery keeps pace).
	// The delivery capacity shows on a backlog: pause the CRMs, let leads
	// pile up, resume, and time the drain. The backlog must be large
	// enough for the drain to outlast the resume's fixed costs.
	backlogWindow := min(benchBacklogWindow, opts.duration/3)
	progress("backlog: pausing the CRM integrations and posting leads for %s...", backlogWindow.Round(time.Millisecond))
	backlog, err := measureBacklog(ctx, stack, org, runID, opts, backlogWindow, progress)
	if err != nil {
		return err
	}
	report.setBacklog(backlog)

	window := min(benchRawWindow, opts.duration/6)
	progress("measuring the sandbox's raw capacity: %d pushers, batches of %d, %s...", len(org.crms), stack.connector.BatchLimit(), window.Round(time.Millisecond))
	raw, err := measureRawCapacity(ctx, stack.connector, org.crms, runID, window)
	if err != nil {
		return err
	}
	report.setRaw(raw)

	if jsonOutput(c) {
		return printJSON(c, report)
	}
	report.printText(c.App.Writer)
	return nil
}

// randomID returns a short random hex ID that keeps one run's integrations,
// task queue and records apart from every other run's.
func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// attachBenchStack finds the running `integrations dev` through
// DATA-DIR/dev.json.
func attachBenchStack(c *cli.Context) (*benchStack, error) {
	info := readDevInfo(c)
	if info.HTTPURL == "" {
		return nil, usagef("--attach: no running `integrations dev` found (%s is missing): start one, or drop --attach to let bench start its own stack", devInfoPath(c))
	}
	sandboxBase := sandboxURL(c)
	for _, u := range []string{info.HTTPURL, sandboxBase} {
		if err := checkLoopback(u); err != nil {
			return nil, usagef("--attach: %v", err)
		}
	}
	stack := &benchStack{mode: "attach", httpURL: info.HTTPURL, sandboxURL: sandboxBase}
	st, err := openStore(c)
	if err != nil {
		return nil, err
	}
	stack.store = st
	stack.onClose(func() { _ = st.Close() })
	kr, err := keyring(c)
	if err != nil {
		return stack, err
	}
	tc, err := dialTemporal(c, quietLogger(c))
	if err != nil {
		return stack, err
	}
	stack.onClose(tc.Close)
	stack.connector = sandbox.NewConnector(sandboxBase, nil)
	stack.sandbox = sandboxfake.NewClient(sandboxBase, nil)
	stack.starter = &starter.Starter{Temporal: tc, Store: st, Keyring: kr, Connectors: crm.NewRegistry(stack.connector), TaskQueue: taskQueue(c)}
	return stack, nil
}

// checkLoopback refuses a URL that is not on this machine: the benchmark
// sends traffic to 127.0.0.1 only.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s is not on this machine: bench only sends traffic to 127.0.0.1", raw)
	}
	return nil
}

// startBenchStack starts the whole service for the run on free loopback
// ports: the Temporal dev server, the sandbox CRM in this process, and the
// worker and the HTTP API as child processes of the integrations binary.
// Whatever it started is stopped by the stack's close, also when it fails
// half-way.
func startBenchStack(ctx context.Context, c *cli.Context, opts benchOptions, runID string, progress func(string, ...any)) (*benchStack, error) {
	stack := &benchStack{mode: "stack"}
	tmp, err := os.MkdirTemp("", "integrations-bench-")
	if err != nil {
		return nil, fmt.Errorf("create a temporary directory: %w", err)
	}
	stack.onClose(func() { _ = os.RemoveAll(tmp) })

	dbURL := c.String("database-url")
	if dbURL == "" {
		dbURL = "sqlite://" + filepath.Join(tmp, "integrations.db")
		progress("no --database-url: using SQLite in %s (the targets are about PostgreSQL)", tmp)
	}
	st, err := openStoreURL(ctx, dbURL)
	if err != nil {
		return stack, err
	}
	stack.store = st
	stack.onClose(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		return stack, fmt.Errorf("migrate %s: %w", redactURL(dbURL), err)
	}

	// A key of the run's own: nothing sealed in this run outlives it.
	key := make([]byte, credential.KeySize)
	if _, err := rand.Read(key); err != nil {
		return stack, fmt.Errorf("generate an encryption key: %w", err)
	}
	kr, err := credential.NewKeyring(key)
	if err != nil {
		return stack, err
	}

	bin, err := findTemporalBinary(opts.temporalBin)
	if err != nil {
		return stack, err
	}
	temporalLog, err := os.Create(filepath.Join(tmp, "temporal.log"))
	if err != nil {
		return stack, fmt.Errorf("create the Temporal log: %w", err)
	}
	stack.onClose(func() { _ = temporalLog.Close() })
	progress("starting the Temporal dev server (%s)...", bin)
	startCtx, cancel := context.WithTimeout(ctx, benchStartTimeout)
	defer cancel()
	server, err := testsuite.StartDevServer(startCtx, testsuite.DevServerOptions{
		ExistingPath: bin,
		ClientOptions: &client.Options{
			Namespace: "default",
			Logger:    sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelError}))),
		},
		DBFilename:       filepath.Join(tmp, "temporal.db"),
		LogLevel:         "warn",
		SearchAttributes: workflows.SearchAttributes(integration.State{}),
		Stdout:           temporalLog,
		Stderr:           temporalLog,
	})
	if err != nil {
		return stack, fmt.Errorf("start the Temporal dev server: %w (see the log above; is %s the temporal CLI?)", err, bin)
	}
	stack.onClose(func() { _ = server.Stop() })
	stack.temporalPID = findChildPID("temporal")

	sandboxServer, err := sandboxfake.NewServer("")
	if err != nil {
		return stack, fmt.Errorf("sandbox: %w", err)
	}
	sandboxAddr, stopSandbox, err := serveLoopback(sandboxServer.Handler())
	if err != nil {
		return stack, fmt.Errorf("sandbox CRM: %w", err)
	}
	stack.onClose(stopSandbox)
	stack.sandboxURL = "http://" + sandboxAddr
	stack.connector = sandbox.NewConnector(stack.sandboxURL, nil)
	stack.sandbox = sandboxfake.NewClient(stack.sandboxURL, nil)

	queue := "bench-" + runID
	stack.starter = &starter.Starter{Temporal: server.Client(), Store: st, Keyring: kr,
		Connectors: crm.NewRegistry(stack.connector), TaskQueue: queue}

	httpAddr, err := freeLoopbackAddr()
	if err != nil {
		return stack, err
	}
	stack.httpURL = "http://" + httpAddr
	env := proc.ChildEnv(map[string]string{
		"DATABASE_URL":             dbURL,
		"TEMPORAL_ADDRESS":         server.FrontendHostPort(),
		"TEMPORAL_NAMESPACE":       "default",
		"TEMPORAL_CONFIG_FILE":     filepath.Join(tmp, "no-temporal-config.toml"),
		"INTEGRATIONS_SANDBOX_URL": stack.sandboxURL,
		credential.KeyEnv:          base64.StdEncoding.EncodeToString(key),
		"INTEGRATIONS_TASK_QUEUE":  queue,
		// Nothing may fall back to a dev stack's state in the working
		// directory.
		"INTEGRATIONS_DATA_DIR": tmp,
	})
	children := []struct {
		slot *(*benchChild)
		name string
		args []string
	}{
		{&stack.worker, "worker", []string{"worker"}},
		{&stack.serve, "serve", []string{"serve", "--http-addr", httpAddr}},
	}
	for _, ch := range children {
		procEnv := env
		pprofAddr := ""
		if opts.profileDir != "" {
			if pprofAddr, err = freeLoopbackAddr(); err != nil {
				return stack, err
			}
			procEnv = append(slices.Clone(env), pprofAddrEnv+"="+pprofAddr)
		}
		proc, err := startChild(opts.binary, ch.name, ch.args, procEnv, tmp)
		if err != nil {
			return stack, err
		}
		proc.pprofAddr = pprofAddr
		*ch.slot = proc
		stack.onClose(proc.stop)
	}
	progress("started `integrations worker` (pid %d) and `integrations serve` (pid %d) on %s; task queue %s",
		stack.worker.pid(), stack.serve.pid(), stack.httpURL, queue)
	if err := waitHealthy(startCtx, stack); err != nil {
		return stack, err
	}
	return stack, nil
}

// serveLoopback serves h on a free 127.0.0.1 port until stop is called.
func serveLoopback(h http.Handler) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// freeLoopbackAddr returns a 127.0.0.1 address with a port free right now,
// for a child process to listen on.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitHealthy waits until the HTTP API child answers /healthz.
func waitHealthy(ctx context.Context, stack *benchStack) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		if err := stack.checkChildren(); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, stack.httpURL+"/healthz", nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the HTTP API child did not answer %s/healthz: %w (see %s)", stack.httpURL, ctx.Err(), stack.serve.logPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// benchChild is a child process of the integrations binary.
type benchChild struct {
	name      string
	cmd       *exec.Cmd
	logPath   string
	log       *os.File
	pprofAddr string
	done      chan struct{}
	waitErr   error
}

func startChild(binary, name string, args, env []string, dir string) (*benchChild, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create the %s log: %w", name, err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, dir, logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start `integrations %s` from %s: %w (pass the integrations binary with --binary)", name, binary, err)
	}
	ch := &benchChild{name: name, cmd: cmd, logPath: logPath, log: logFile, done: make(chan struct{})}
	go func() {
		ch.waitErr = cmd.Wait()
		close(ch.done)
	}()
	return ch, nil
}

func (ch *benchChild) pid() int { return ch.cmd.Process.Pid }

func (ch *benchChild) exited() bool {
	select {
	case <-ch.done:
		return true
	default:
		return false
	}
}

// exitError says that the child exited, with the end of its log.
func (ch *benchChild) exitError() error {
	return fmt.Errorf("`integrations %s` exited (%v); the end of its log:\n%s", ch.name, ch.waitErr, tailFile(ch.logPath, 10))
}

// stop asks the child to stop (SIGTERM, which both commands handle) and
// kills it if it has not after benchStopTimeout.
func (ch *benchChild) stop() {
	defer ch.log.Close()
	if ch.exited() {
		return
	}
	_ = ch.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ch.done:
	case <-time.After(benchStopTimeout):
		_ = ch.cmd.Process.Kill()
		<-ch.done
	}
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// benchOrg is the run's org: its lead integrations with their intake
// tokens, and its CRM integrations with their sandbox API keys.
type benchOrg struct {
	id    string
	leads []benchLead
	crms  []benchCRM
}

type benchLead struct{ id, token, source string }

type benchCRM struct{ id, apiKey string }

// setupBenchOrg creates the org's CRM and lead integrations and takes each
// through setup to active, as a customer would, in parallel.
func setupBenchOrg(ctx context.Context, stack *benchStack, runID string, opts benchOptions) (benchOrg, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	org := benchOrg{id: "bench-" + runID, leads: make([]benchLead, opts.leads), crms: make([]benchCRM, opts.crms)}
	var wg sync.WaitGroup
	errs := make(chan error, opts.leads+opts.crms)
	for i := range org.crms {
		wg.Go(func() {
			c, err := setupBenchCRM(ctx, stack, org.id, fmt.Sprintf("%s-crm-%d", org.id, i+1), opts.crmLatency)
			org.crms[i] = c
			errs <- err
		})
	}
	for i := range org.leads {
		wg.Go(func() {
			l, err := setupBenchLead(ctx, stack, org.id, fmt.Sprintf("%s-lead-%d", org.id, i+1), i+1)
			org.leads[i] = l
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	return org, errors.Join(all...)
}

func setupBenchCRM(ctx context.Context, stack *benchStack, org, id string, latency time.Duration) (benchCRM, error) {
	acct, err := stack.sandbox.CreateAccount(ctx, nil)
	if err != nil {
		return benchCRM{}, err
	}
	if latency > 0 {
		if _, err := stack.sandbox.SetFaults(ctx, acct.APIKey, sandboxfake.Faults{LatencyMS: int(latency / time.Millisecond)}); err != nil {
			return benchCRM{}, err
		}
	}
	s := stack.starter
	if _, err := s.Create(ctx, integration.Spec{ID: id, OrgID: org, Kind: integration.KindCRM, Provider: sandbox.ProviderName, Name: "bench CRM"}, "bench"); err != nil {
		return benchCRM{}, err
	}
	// From here on the integration exists, and is returned to be cleaned up.
	created := benchCRM{id: id, apiKey: acct.APIKey}
	if _, err := s.Authorize(ctx, id, sandboxCredentials(acct.APIKey), "bench"); err != nil {
		return created, err
	}
	st, err := s.Command(ctx, id, integration.EventCompleteSetup, "bench", "benchmark")
	if err == nil && st.Status != integration.StatusActive {
		err = fmt.Errorf("CRM integration %s is %s/%s after setup, not active", id, st.Status, st.Reason)
	}
	return created, err
}

func setupBenchLead(ctx context.Context, stack *benchStack, org, id string, n int) (benchLead, error) {
	s := stack.starter
	source := fmt.Sprintf("Bench Partner %d", n)
	_, token, err := s.CreateLead(ctx, integration.Spec{ID: id, OrgID: org, Kind: integration.KindLead, Provider: "bench-partner", Name: "bench leads", ExpectedSource: source}, "bench")
	if err != nil {
		return benchLead{}, err
	}
	created := benchLead{id: id, token: token, source: source}
	// The partner's test lead with the expected source ticks the tracker;
	// it arrives before activation, so it is routed nowhere.
	if _, err := s.Intake(ctx, id, starter.Lead{ExternalID: "setup-test-lead", Source: source, Name: "Test Lead", Email: "test@example.com"}); err != nil {
		return created, err
	}
	st, err := s.Command(ctx, id, integration.EventCompleteSetup, "bench", "benchmark")
	if err == nil && st.Status != integration.StatusActive {
		err = fmt.Errorf("lead integration %s is %s/%s after setup, not active", id, st.Status, st.Reason)
	}
	return created, err
}

func sandboxCredentials(apiKey string) []byte {
	b, _ := json.Marshal(map[string]string{"api_key": apiKey})
	return b
}

// deleteBenchOrg deletes the run's integrations from an attached stack.
func deleteBenchOrg(stack *benchStack, org benchOrg) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	ids := make([]string, 0, len(org.leads)+len(org.crms))
	for _, l := range org.leads {
		ids = append(ids, l.id)
	}
	for _, c := range org.crms {
		ids = append(ids, c.id)
	}
	for _, id := range ids {
		if id != "" {
			_, _ = stack.starter.Command(ctx, id, integration.EventDelete, "bench", "benchmark finished")
		}
	}
}

// intakeLoad is what the load phase did.
type intakeLoad struct {
	start, end  time.Time
	accepted    int64
	duplicates  int64
	errors      int64
	firstErrors []string
}

// benchLeadBody is the JSON a partner posts.
type benchLeadBody struct {
	ExternalID string `json:"external_id"`
	Source     string `json:"source"`
	Name       string `json:"name"`
	Email      string `json:"email"`
	Phone      string `json:"phone"`
	Message    string `json:"message"`
}

// driveIntake posts leads from opts.concurrency goroutines, round robin over
// the lead integrations, until opts.duration has passed (or ctx ends).
func driveIntake(ctx context.Context, httpURL string, leads []benchLead, runID string, opts benchOptions, progress func(string, ...any)) intakeLoad {
	transport := &http.Transport{
		// No proxy: the traffic stays on 127.0.0.1.
		Proxy:               nil,
		MaxIdleConns:        opts.concurrency,
		MaxIdleConnsPerHost: opts.concurrency,
		IdleConnTimeout:     time.Minute,
	}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport, Timeout: benchRequestTimeout}

	var (
		seq                            atomic.Int64
		accepted, duplicates, failures atomic.Int64
		mu                             sync.Mutex
		shown                          []string
	)
	fail := func(what string) {
		if failures.Add(1) > benchShownErrors {
			return
		}
		mu.Lock()
		shown = append(shown, what)
		mu.Unlock()
		progress("intake error: %s", what)
	}
	load := intakeLoad{start: time.Now()}
	deadline := load.start.Add(opts.duration)
	var wg sync.WaitGroup
	for range opts.concurrency {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				n := seq.Add(1)
				lead := leads[int(n)%len(leads)]
				status, msg, err := postLead(ctx, hc, httpURL, lead, benchLeadBody{
					ExternalID: fmt.Sprintf("bench-%s-%d", runID, n),
					Source:     lead.source,
					Name:       fmt.Sprintf("Lead %d", n),
					Email:      fmt.Sprintf("lead%d@example.com", n),
					Phone:      fmt.Sprintf("+1-555-%07d", n%10_000_000),
					Message:    "Interested in a 3-bedroom home near the park; please call after 5pm.",
				})
				switch {
				case err != nil:
					if ctx.Err() == nil {
						fail(err.Error())
					}
				case status == http.StatusAccepted:
					accepted.Add(1)
				case status == http.StatusOK:
					duplicates.Add(1)
				default:
					fail(fmt.Sprintf("HTTP %d: %s", status, msg))
				}
			}
		})
	}
	wg.Wait()
	load.end = time.Now()
	load.accepted, load.duplicates, load.errors = accepted.Load(), duplicates.Load(), failures.Load()
	load.firstErrors = shown
	return load
}

// postLead posts one lead and returns the status and, for an error, the
// API's message (which never holds lead data).
func postLead(ctx context.Context, hc *http.Client, httpURL string, lead benchLead, body benchLeadBody) (int, string, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return 0, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, httpURL+"/v1/lead-integrations/"+lead.id+"/leads", bytes.NewReader(data))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+lead.token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("POST %s: %w", req.URL.Path, withoutRequestURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		// Read to the end so the connection is reused.
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, "", nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, strings.TrimSpace(string(msg)), nil
}

// withoutRequestURL drops the URL a transport error repeats.
func withoutRequestURL(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	return err
}

// benchDrain is what the wait for delivery saw.
type benchDrain struct {
	completed, pending int64
	lastCompletion     time.Time
	drained            bool
	waited             time.Duration
}

// waitDrained polls the CRM integrations' delivery counts until nothing is
// pending and every accepted lead reached every CRM, or benchDrainTimeout
// after intake stopped.
func waitDrained(ctx context.Context, stack *benchStack, crms []benchCRM, load intakeLoad, perLead int64) (benchDrain, error) {
	want := load.accepted * perLead
	deadline := load.end.Add(benchDrainTimeout)
	interrupted := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("bench interrupted while waiting for deliveries: %w", ctx.Err())
		}
		return err
	}
	for {
		// While anything is pending only the head of the index of pending
		// deliveries is read: counting every delivery (or every pending
		// one) each poll would cost the database more than the drain it
		// watches.
		pending := false
		for _, c := range crms {
			has, err := stack.store.HasPending(ctx, c.id)
			if err != nil {
				return benchDrain{}, interrupted(err)
			}
			pending = pending || has
		}
		timedOut := time.Now().After(deadline)
		if !pending || timedOut {
			d, err := countDeliveries(ctx, stack, crms)
			if err != nil {
				return d, interrupted(err)
			}
			d.waited = time.Since(load.end)
			d.drained = d.pending == 0 && d.completed >= want
			if d.drained || timedOut {
				return d, nil
			}
		}
		if err := stack.checkChildren(); err != nil {
			return benchDrain{}, fmt.Errorf("while waiting for deliveries: %w", err)
		}
		select {
		case <-ctx.Done():
			return benchDrain{}, fmt.Errorf("bench interrupted while waiting for deliveries: %w", ctx.Err())
		case <-time.After(benchPollInterval):
		}
	}
}

// countDeliveries sums the CRM integrations' delivery counts.
func countDeliveries(ctx context.Context, stack *benchStack, crms []benchCRM) (benchDrain, error) {
	var d benchDrain
	for _, c := range crms {
		counts, err := stack.store.DeliveryCounts(ctx, c.id)
		if err != nil {
			return d, err
		}
		d.pending += counts.Pending
		d.completed += counts.Delivered + counts.Rejected
		if counts.LastDeliveredAt != nil && counts.LastDeliveredAt.After(d.lastCompletion) {
			d.lastCompletion = *counts.LastDeliveredAt
		}
	}
	return d, nil
}

// benchRaw is the sandbox's raw capacity measurement.
type benchRaw struct {
	records int64
	elapsed time.Duration
	err     error
	// busy is the CPU time the whole machine spent meanwhile.
	busy time.Duration
}

// measureRawCapacity pushes full batches straight to the sandbox with the
// connector, one pusher per CRM account as the workflows do, for window.
func measureRawCapacity(ctx context.Context, connector crm.Connector, crms []benchCRM, runID string, window time.Duration) (benchRaw, error) {
	var (
		records  atomic.Int64
		firstErr error
		mu       sync.Mutex
		wg       sync.WaitGroup
	)
	batchSize := connector.BatchLimit()
	busyBefore, _ := proc.MachineBusy()
	start := time.Now()
	deadline := start.Add(window)
	for p, c := range crms {
		creds := sandboxCredentials(c.apiKey)
		wg.Go(func() {
			batch := make([]crm.Record, batchSize)
			for n := 0; ctx.Err() == nil && time.Now().Before(deadline); n++ {
				for i := range batch {
					k := n*batchSize + i
					batch[i] = crm.Record{
						Key: fmt.Sprintf("raw-%s-%d-%d", runID, p, k), Source: "Bench Raw",
						Name: fmt.Sprintf("Lead %d", k), Email: fmt.Sprintf("raw%d@example.com", k),
						Phone:   fmt.Sprintf("+1-555-%07d", k%10_000_000),
						Message: "Interested in a 3-bedroom home near the park; please call after 5pm.",
					}
				}
				pctx, cancel := context.WithTimeout(ctx, benchRequestTimeout)
				results, err := connector.Push(pctx, creds, batch)
				cancel()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				records.Add(int64(len(results)))
			}
		})
	}
	wg.Wait()
	busyAfter, _ := proc.MachineBusy()
	raw := benchRaw{records: records.Load(), elapsed: time.Since(start), err: firstErr, busy: busyAfter - busyBefore}
	if err := ctx.Err(); err != nil {
		return raw, fmt.Errorf("bench interrupted while measuring the sandbox: %w", err)
	}
	if firstErr != nil && raw.records == 0 {
		return raw, fmt.Errorf("measure the sandbox's raw capacity: %w", firstErr)
	}
	return raw, nil
}

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmHWM of %d: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM for process %d", pid)
}

// findChildPID returns the PID of a child of this process whose name
// starts with prefix, or 0.
func findChildPID(prefix string) int {
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if name, ppid, _, _, ok := proc.Stat(e.Name()); ok && ppid == self && strings.HasPrefix(name, prefix) {
			return pid
		}
	}
	return 0
}

// sampleCPU reads the CPU time used so far by each part of the stack on
// this machine: the benchmark process (load generator and sandbox), the
// worker, the HTTP API, the Temporal dev server, and PostgreSQL (every
// process named postgres, and the backends that have exited: a connection
// pool that closes and reopens connections costs a backend each time).
// Parts it cannot see are left out; on systems without /proc the map is
// empty.
func sampleCPU(stack *benchStack) map[string]time.Duration {
	out := map[string]time.Duration{}
	add := func(part string, pid int) {
		if pid <= 0 {
			return
		}
		if _, _, cpu, _, ok := proc.Stat(strconv.Itoa(pid)); ok {
			out[part] = cpu
		}
	}
	add("bench", os.Getpid())
	if stack.worker != nil {
		add("worker", stack.worker.pid())
		add("serve", stack.serve.pid())
	}
	add("temporal", stack.temporalPID)
	if busy, ok := proc.MachineBusy(); ok {
		out["machine"] = busy
	}
	if stack.store.Dialect() == "postgres" {
		entries, _ := os.ReadDir("/proc")
		var total time.Duration
		seen := false
		for _, e := range entries {
			if name, _, cpu, reaped, ok := proc.Stat(e.Name()); ok && name == "postgres" {
				total += cpu + reaped
				seen = true
			}
		}
		if seen {
			out["postgres"] = total
		}
	}
	return out
}

// cpuSince returns the CPU seconds each part used between two samples.
func cpuSince(before, after map[string]time.Duration) map[string]float64 {
	out := map[string]float64{}
	for part, t := range after {
		if b, ok := before[part]; ok && t >= b {
			out[part] = round2((t - b).Seconds())
		}
	}
	return out
}

// benchProfiles collects CPU profiles during the load: the children's from
// their pprof endpoints, this process's with runtime/pprof.
type benchProfiles struct {
	dir      string
	selfFile *os.File
	wg       sync.WaitGroup
	mu       sync.Mutex
	written  []string
	errs     []error
}

func startProfiles(ctx context.Context, opts benchOptions, stack *benchStack) (*benchProfiles, error) {
	if err := os.MkdirAll(opts.profileDir, 0o755); err != nil {
		return nil, fmt.Errorf("create the profile directory: %w", err)
	}
	p := &benchProfiles{dir: opts.profileDir}
	f, err := os.Create(filepath.Join(opts.profileDir, "bench.cpu.pprof"))
	if err != nil {
		return nil, fmt.Errorf("create the profile file: %w", err)
	}
	if err := runtimepprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("profile the load generator: %w", err)
	}
	p.selfFile = f
	seconds := int(math.Ceil(opts.duration.Seconds()))
	for _, ch := range []*benchChild{stack.worker, stack.serve} {
		p.wg.Go(func() {
			path := filepath.Join(opts.profileDir, ch.name+".cpu.pprof")
			err := fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", ch.pprofAddr, seconds), path)
			p.mu.Lock()
			defer p.mu.Unlock()
			if err != nil {
				p.errs = append(p.errs, fmt.Errorf("profile of %s: %w", ch.name, err))
				return
			}
			p.written = append(p.written, path)
		})
	}
	return p, nil
}

// stopLoad ends this process's profile, which covers the load only.
func (p *benchProfiles) stopLoad() {
	if p.selfFile == nil {
		return
	}
	runtimepprof.StopCPUProfile()
	_ = p.selfFile.Close()
	p.mu.Lock()
	p.written = append(p.written, p.selfFile.Name())
	p.mu.Unlock()
	p.selfFile = nil
}

// finish waits for the children's profiles and returns the files written.
func (p *benchProfiles) finish() ([]string, error) {
	p.stopLoad()
	p.wg.Wait()
	return p.written, errors.Join(p.errs...)
}

func fetchProfile(ctx context.Context, profileURL, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, profileURL, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return withoutRequestURL(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof answered %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// benchLatency are lead-to-CRM latency percentiles, in milliseconds.
type benchLatency struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	// Samples is how many deliveries the percentiles are over.
	Samples int `json:"samples"`
}

// percentiles takes nearest-rank percentiles of sorted durations.
func percentiles(sorted []time.Duration) benchLatency {
	if len(sorted) == 0 {
		return benchLatency{}
	}
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(sorted)))) - 1
		return ms(sorted[min(max(i, 0), len(sorted)-1)])
	}
	return benchLatency{P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: ms(sorted[len(sorted)-1]), Samples: len(sorted)}
}

func ms(d time.Duration) float64 { return round2(float64(d) / float64(time.Millisecond)) }

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// benchReport is what the benchmark prints; its JSON is --output json.
type benchReport struct {
	// Mode is "stack" (the benchmark's own) or "attach" (a running dev).
	Mode             string `json:"mode"`
	Database         string `json:"database"`
	LeadIntegrations int    `json:"lead_integrations"`
	CRMIntegrations  int    `json:"crm_integrations"`
	Concurrency      int    `json:"concurrency"`
	// CRMLatencyMS is the latency every sandbox contacts call was given.
	CRMLatencyMS int64 `json:"crm_latency_ms"`

	IntakeSeconds float64  `json:"intake_seconds"`
	Accepted      int64    `json:"accepted"`
	Duplicates    int64    `json:"duplicates"`
	Errors        int64    `json:"errors"`
	FirstErrors   []string `json:"first_errors,omitempty"`
	// IntakeRate is accepted leads per second of load.
	IntakeRate float64 `json:"intake_rate"`

	// DeliveriesTotal is accepted × CRM integrations: what must reach
	// the CRMs; DeliveriesCompleted is what did.
	DeliveriesTotal     int64 `json:"deliveries_total"`
	DeliveriesCompleted int64 `json:"deliveries_completed"`
	Pending             int64 `json:"pending"`
	// DeliveredRate is completed deliveries per second from the first
	// intake request to the last completion.
	DeliveredRate float64 `json:"delivered_rate"`
	Drained       bool    `json:"drained"`
	// DrainSeconds is from intake stopping to the last completion (to
	// the timeout when not drained).
	DrainSeconds float64      `json:"drain_seconds"`
	Latency      benchLatency `json:"latency_ms"`
	// WorkerPeakRSSBytes is null when the worker is not a child process
	// of the benchmark (--attach).
	WorkerPeakRSSBytes *int64 `json:"worker_peak_rss_bytes"`

	RawCapacity    float64 `json:"raw_capacity"`
	RawRecords     int64   `json:"raw_records"`
	RawSeconds     float64 `json:"raw_seconds"`
	RawPushers     int     `json:"raw_pushers"`
	RawError       string  `json:"raw_error,omitempty"`
	DeliveredOfRaw float64 `json:"delivered_of_raw_percent"`

	// Backlog*: leads posted while the CRMs were paused, then drained
	// after resume. BacklogSeconds is from resume to the last completion,
	// BacklogStartSeconds the part of it before the first (the resume's
	// validation); BacklogDrainRate is deliveries over BacklogSeconds.
	// BacklogRate, the delivery capacity, is deliveries per second from
	// the first completion to the last; BacklogOfRaw compares it with the
	// raw capacity.
	BacklogDeliveries   int64   `json:"backlog_deliveries"`
	BacklogSeconds      float64 `json:"backlog_seconds"`
	BacklogStartSeconds float64 `json:"backlog_start_seconds"`
	BacklogDrained      bool    `json:"backlog_drained"`
	BacklogDrainRate    float64 `json:"backlog_drain_rate"`
	BacklogRate         float64 `json:"backlog_rate"`
	BacklogOfRaw        float64 `json:"backlog_of_raw_percent"`
	// BacklogCPUMicros and RawCPUMicros are the machine's CPU time (every
	// process) per delivery while the backlog drained and per record
	// while the raw capacity was measured: while both saturate the
	// processors, their ratio bounds BacklogOfRaw.
	BacklogCPUMicros float64 `json:"backlog_cpu_us_per_delivery,omitempty"`
	// BacklogCPUBusy and RawCPUBusy are how busy the processors were
	// meanwhile (percent of all processors' time).
	BacklogCPUBusy float64 `json:"backlog_cpu_busy_percent,omitempty"`
	RawCPUBusy     float64 `json:"raw_cpu_busy_percent,omitempty"`
	// BacklogCPUSeconds is each part's CPU time while the backlog drained.
	BacklogCPUSeconds map[string]float64 `json:"backlog_cpu_seconds,omitempty"`
	RawCPUMicros      float64            `json:"raw_cpu_us_per_record,omitempty"`

	// CPUSeconds is the CPU time each part of the stack used from the
	// start of the load until the backlog drained; "machine" is every
	// process's, out of CPUAvailableSeconds (processors × that time).
	CPUSeconds          map[string]float64 `json:"cpu_seconds,omitempty"`
	CPUAvailableSeconds float64            `json:"cpu_available_seconds,omitempty"`
}

func (r *benchReport) setIntake(load intakeLoad) {
	secs := load.end.Sub(load.start).Seconds()
	r.IntakeSeconds = round2(secs)
	r.Accepted, r.Duplicates, r.Errors, r.FirstErrors = load.accepted, load.duplicates, load.errors, load.firstErrors
	if secs > 0 {
		r.IntakeRate = round2(float64(load.accepted) / secs)
	}
}

func (r *benchReport) setDelivery(d benchDrain, load intakeLoad, perLead int64) {
	r.DeliveriesTotal = load.accepted * perLead
	r.DeliveriesCompleted, r.Pending, r.Drained = d.completed, d.pending, d.drained
	if !d.lastCompletion.IsZero() {
		if span := d.lastCompletion.Sub(load.start).Seconds(); span > 0 {
			r.DeliveredRate = round2(float64(d.completed) / span)
		}
	}
	switch {
	case !d.drained:
		r.DrainSeconds = round2(d.waited.Seconds())
	case !d.lastCompletion.IsZero():
		r.DrainSeconds = round2(max(0, d.lastCompletion.Sub(load.end).Seconds()))
	}
}

func (r *benchReport) setRaw(raw benchRaw) {
	r.RawRecords, r.RawSeconds, r.RawPushers = raw.records, round2(raw.elapsed.Seconds()), r.CRMIntegrations
	if raw.elapsed > 0 {
		r.RawCapacity = round2(float64(raw.records) / raw.elapsed.Seconds())
	}
	if raw.records > 0 && raw.busy > 0 {
		r.RawCPUMicros = round2(float64(raw.busy.Microseconds()) / float64(raw.records))
		r.RawCPUBusy = busyPercent(raw.busy, raw.elapsed)
	}
	if raw.err != nil {
		r.RawError = raw.err.Error()
	}
	if r.RawCapacity > 0 {
		r.DeliveredOfRaw = round2(100 * r.DeliveredRate / r.RawCapacity)
		r.BacklogOfRaw = round2(100 * r.BacklogRate / r.RawCapacity)
	}
}

// benchBacklog is the drain of a backlog built while the CRMs were paused.
type benchBacklog struct {
	deliveries int64
	// drain is from the resume commands to the last completion; start is
	// the part of it before the first completion (the resume validates
	// each CRM first, then a page of leads is pushed and recorded).
	drain, start time.Duration
	// steady counts the deliveries completed after the first completion,
	// over the steady interval from the first to the last one.
	steady       int64
	steadyPeriod time.Duration
	drained      bool
	// busy is the CPU time the whole machine spent from resume until the
	// drain was seen (busyWall later), and cpu each part's CPU seconds
	// meanwhile.
	busy, busyWall time.Duration
	cpu            map[string]float64
}

// measureBacklog pauses every CRM integration, posts leads for window,
// resumes them and times how long the backlog takes to reach the CRMs.
func measureBacklog(ctx context.Context, stack *benchStack, org benchOrg, runID string, opts benchOptions, window time.Duration, progress func(string, ...any)) (benchBacklog, error) {
	for _, c := range org.crms {
		if _, err := stack.starter.Command(ctx, c.id, integration.EventPause, "bench", "backlog"); err != nil {
			return benchBacklog{}, fmt.Errorf("bench backlog: pause %s: %w", c.id, err)
		}
	}
	before := int64(0)
	for _, c := range org.crms {
		counts, err := stack.store.DeliveryCounts(ctx, c.id)
		if err != nil {
			return benchBacklog{}, err
		}
		before += counts.Delivered + counts.Rejected
	}
	bopts := opts
	bopts.duration = window
	load := driveIntake(ctx, stack.httpURL, org.leads, runID+"b", bopts, progress)
	resumed := time.Now().UTC()
	busyBefore, _ := proc.MachineBusy()
	cpuBefore := sampleCPU(stack)
	for _, c := range org.crms {
		if _, err := stack.starter.Command(ctx, c.id, integration.EventResume, "bench", "backlog"); err != nil {
			return benchBacklog{}, fmt.Errorf("bench backlog: resume %s: %w", c.id, err)
		}
	}
	perLead := int64(len(org.crms))
	d, err := waitDrained(ctx, stack, org.crms, intakeLoad{accepted: before/perLead + load.accepted, end: resumed}, perLead)
	if err != nil {
		return benchBacklog{}, err
	}
	busyAfter, _ := proc.MachineBusy()
	b := benchBacklog{deliveries: d.completed - before, drained: d.drained, busy: busyAfter - busyBefore,
		busyWall: time.Since(resumed), cpu: cpuSince(cpuBefore, sampleCPU(stack))}
	if !d.lastCompletion.IsZero() {
		b.drain = d.lastCompletion.Sub(resumed)
	}
	first, steady, err := completionsSince(ctx, stack, org.crms, resumed)
	if err != nil {
		return benchBacklog{}, err
	}
	if !first.IsZero() {
		b.start, b.steady, b.steadyPeriod = first.Sub(resumed), steady, d.lastCompletion.Sub(first)
	}
	progress("backlog of %d deliveries drained in %s (first delivery %s after resume)", b.deliveries, b.drain.Round(time.Millisecond), b.start.Round(time.Millisecond))
	return b, nil
}

// completionsSince returns the first completion time of the CRMs'
// deliveries at or after since, and how many completed after it.
func completionsSince(ctx context.Context, stack *benchStack, crms []benchCRM, since time.Time) (time.Time, int64, error) {
	db := stack.store.DB()
	ids := make([]string, len(crms))
	for i, c := range crms {
		ids[i] = c.id
	}
	// ORDER BY and LIMIT rather than MIN, whose result SQLite does not
	// declare as a time for the driver to parse.
	q, args, err := sqlx.In(`SELECT completed_at FROM lead_deliveries
WHERE crm_integration_id IN (?) AND completed_at >= ? ORDER BY completed_at LIMIT 1`, ids, since.UTC())
	if err != nil {
		return time.Time{}, 0, err
	}
	var first time.Time
	if err := db.GetContext(ctx, &first, db.Rebind(q), args...); errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, 0, nil
	} else if err != nil {
		return time.Time{}, 0, fmt.Errorf("first delivery of the backlog: %w", err)
	}
	q, args, err = sqlx.In(`SELECT COUNT(*) FROM lead_deliveries WHERE crm_integration_id IN (?) AND completed_at > ?`, ids, first)
	if err != nil {
		return time.Time{}, 0, err
	}
	var n int64
	if err := db.GetContext(ctx, &n, db.Rebind(q), args...); err != nil {
		return time.Time{}, 0, fmt.Errorf("deliveries of the backlog: %w", err)
	}
	return first.UTC(), n, nil
}

func (r *benchReport) setBacklog(b benchBacklog) {
	r.BacklogDeliveries, r.BacklogDrained = b.deliveries, b.drained
	r.BacklogSeconds, r.BacklogStartSeconds = round2(b.drain.Seconds()), round2(b.start.Seconds())
	if b.drain > 0 {
		r.BacklogDrainRate = round2(float64(b.deliveries) / b.drain.Seconds())
	}
	if b.steadyPeriod > 0 {
		r.BacklogRate = round2(float64(b.steady) / b.steadyPeriod.Seconds())
	}
	if b.deliveries > 0 && b.busy > 0 {
		r.BacklogCPUMicros = round2(float64(b.busy.Microseconds()) / float64(b.deliveries))
		r.BacklogCPUBusy = busyPercent(b.busy, b.busyWall)
	}
	if len(b.cpu) > 0 {
		r.BacklogCPUSeconds = b.cpu
	}
}

// saturatedPercent is how busy the processors must be for a phase to count
// as CPU-bound. The drain's share includes the resume's validation before
// the first delivery and the last poll after the last, mostly waiting.
const saturatedPercent = 75

// busyPercent is busy CPU time as a share of all processors' time in wall.
func busyPercent(busy, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return round2(100 * busy.Seconds() / (wall.Seconds() * float64(runtime.NumCPU())))
}

// cpuParts formats CPU seconds per part of the stack, in a fixed order.
func cpuParts(seconds map[string]float64, format string) string {
	var parts []string
	for _, part := range []string{"worker", "serve", "temporal", "postgres", "bench", "machine"} {
		if s, ok := seconds[part]; ok {
			parts = append(parts, fmt.Sprintf("%s "+format, part, s))
		}
	}
	return strings.Join(parts, "  ")
}

// printText prints the report as a table.
func (r *benchReport) printText(w io.Writer) {
	mode := "own stack"
	if r.Mode == "attach" {
		mode = "attached to integrations dev"
	}
	latency := ""
	if r.CRMLatencyMS > 0 {
		latency = fmt.Sprintf(", CRM calls take %dms", r.CRMLatencyMS)
	}
	fmt.Fprintf(w, "integrations bench: %d lead and %d CRM integrations, %d senders, %s, %s%s\n\n",
		r.LeadIntegrations, r.CRMIntegrations, r.Concurrency, r.Database, mode, latency)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "intake rate\t%.1f leads/s\t%d accepted in %.1fs, %d errors, %d duplicates\n", r.IntakeRate, r.Accepted, r.IntakeSeconds, r.Errors, r.Duplicates)
	fmt.Fprintf(tw, "deliveries\t%d of %d\taccepted × %d CRM integrations; %d pending\n", r.DeliveriesCompleted, r.DeliveriesTotal, r.CRMIntegrations, r.Pending)
	fmt.Fprintf(tw, "delivered rate\t%.1f deliveries/s\tfirst intake → last delivery\n", r.DeliveredRate)
	drain := fmt.Sprintf("%.2fs", r.DrainSeconds)
	note := "after intake stopped"
	if !r.Drained {
		note = fmt.Sprintf("NOT drained: %d still pending after the %s timeout", r.Pending, benchDrainTimeout)
	}
	fmt.Fprintf(tw, "drain time\t%s\t%s\n", drain, note)
	fmt.Fprintf(tw, "lead-to-CRM latency\tp50 %.0fms  p95 %.0fms  p99 %.0fms  max %.0fms\tover %d deliveries\n", r.Latency.P50, r.Latency.P95, r.Latency.P99, r.Latency.Max, r.Latency.Samples)
	rss := "n/a"
	if r.WorkerPeakRSSBytes != nil {
		rss = fmt.Sprintf("%.1f MiB", float64(*r.WorkerPeakRSSBytes)/(1<<20))
	}
	fmt.Fprintf(tw, "worker peak RSS\t%s\tVmHWM of `integrations worker`\n", rss)
	fmt.Fprintf(tw, "sandbox raw capacity\t%.1f records/s\t%d records in %.1fs, one pusher per CRM account (%d), straight through the connector\n", r.RawCapacity, r.RawRecords, r.RawSeconds, r.RawPushers)
	fmt.Fprintf(tw, "delivered / raw\t%.1f%%\tdelivered rate as a share of the raw capacity (bound by intake: delivery keeps pace)\n", r.DeliveredOfRaw)
	fmt.Fprintf(tw, "backlog drain\t%.1f deliveries/s\t%d deliveries queued while the CRMs were paused, drained in %.2fs after resume (%.1f/s), the first after %.2fs\n",
		r.BacklogRate, r.BacklogDeliveries, r.BacklogSeconds, r.BacklogDrainRate, r.BacklogStartSeconds)
	fmt.Fprintf(tw, "backlog / raw\t%.1f%%\tdelivery capacity (first to last delivery of the backlog) as a share of the raw capacity\n", r.BacklogOfRaw)
	if r.BacklogCPUMicros > 0 && r.RawCPUMicros > 0 {
		note := fmt.Sprintf("processors %.0f%% busy while draining, %.0f%% while pushing raw: ", r.BacklogCPUBusy, r.RawCPUBusy)
		if r.BacklogCPUBusy >= saturatedPercent && r.RawCPUBusy >= saturatedPercent {
			note += fmt.Sprintf("CPU-bound, so their ratio (%.0f%%) is about as far as backlog / raw can go", 100*r.RawCPUMicros/r.BacklogCPUMicros)
		} else {
			note += "not CPU-bound: waits (the CRM's latency, round trips) set the pace"
		}
		fmt.Fprintf(tw, "CPU per record\tdelivery %.1fµs  raw %.1fµs\tthe machine's CPU per delivery of the backlog and per raw push; %s\n", r.BacklogCPUMicros, r.RawCPUMicros, note)
	}
	if len(r.BacklogCPUSeconds) > 0 {
		fmt.Fprintf(tw, "backlog CPU seconds\t%s\twhile the backlog drained (bench = the sandbox CRM)\n", cpuParts(r.BacklogCPUSeconds, "%.2f"))
	}
	if len(r.CPUSeconds) > 0 {
		fmt.Fprintf(tw, "CPU seconds\t%s\tduring load + drain, of %.1f available\n", cpuParts(r.CPUSeconds, "%.1f"), r.CPUAvailableSeconds)
	}
	_ = tw.Flush()
	for _, e := range r.FirstErrors {
		fmt.Fprintf(w, "  intake error: %s\n", e)
	}
	if r.RawError != "" {
		fmt.Fprintf(w, "  raw push error: %s\n", r.RawError)
	}
}
