package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/sandbox"
	"github.com/acme/integrations/crm/sandbox/sandboxfake"
	"github.com/acme/integrations/internal/proc"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
)

// benchStack is the service under test, started by the benchmark or
// attached to.
type benchStack struct {
	mode string // "stack" or "attach"
	// database is "postgres" or "sqlite".
	database   string
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

// attachBenchStack uses the running `integrations dev` that cfg found
// through DATA-DIR/dev.json (Options.Validate checked it is there), with
// the dev stack's key.
func attachBenchStack(ctx context.Context, cfg app.Config, logger *slog.Logger) (*benchStack, error) {
	stack := &benchStack{mode: "attach", httpURL: cfg.Dev.HTTPURL, sandboxURL: cfg.SandboxURL}
	svc, err := app.New(ctx, cfg, app.WithLogger(logger), app.WithTemporal(), app.WithKeyring())
	if err != nil {
		return nil, err
	}
	stack.onClose(svc.Close)
	return stack, stack.use(svc)
}

// use takes the store, the starter and the sandbox connector of svc.
func (s *benchStack) use(svc *app.Service) error {
	s.store, s.starter, s.database = svc.Store, svc.Starter, svc.Store.Backend()
	connector, err := svc.Connectors.Get(sandbox.ProviderName)
	if err != nil {
		return err
	}
	s.connector = connector
	s.sandbox = sandboxfake.NewClient(s.sandboxURL, nil)
	return nil
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

// unpacedIntake is the per-token intake rate and burst of the benchmark's
// HTTP API: far above what any run sends.
const unpacedIntake = 1_000_000

// startBenchStack starts the whole service for the run on free loopback
// ports: the Temporal dev server, the sandbox CRM in this process, and the
// worker and the HTTP API as child processes of the integrations binary,
// all with a configuration of the run's own (a database, key and task
// queue nobody else uses; nothing from a dev stack). Whatever it started is
// stopped by the stack's close, also when it fails half-way.
func startBenchStack(ctx context.Context, cfg app.Config, opts Options, runID string, logger *slog.Logger, progress func(string, ...any)) (*benchStack, error) {
	stack := &benchStack{mode: "stack"}
	tmp, err := os.MkdirTemp("", "integrations-bench-")
	if err != nil {
		return nil, fmt.Errorf("create a temporary directory: %w", err)
	}
	stack.onClose(func() { _ = os.RemoveAll(tmp) })

	// Only a database given for the run counts, never a dev stack's.
	dbURL := cfg.DatabaseURL
	if src := cfg.Source("database_url"); src != app.SourceFlag && src != app.SourceEnv {
		dbURL = "sqlite://" + filepath.Join(tmp, "integrations.db")
		progress("no --database-url: using SQLite in %s (the targets are about PostgreSQL)", tmp)
	}
	// A key of the run's own: nothing sealed in this run outlives it.
	key := make([]byte, credential.KeySize)
	if _, err := rand.Read(key); err != nil {
		return stack, fmt.Errorf("generate an encryption key: %w", err)
	}
	httpAddr, err := app.FreeLoopbackAddr()
	if err != nil {
		return stack, err
	}

	bin, err := app.FindTemporalBinary(opts.TemporalBin)
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
	server, err := app.StartDevServer(startCtx, app.DevServerOptions{
		Bin: bin, DBFile: filepath.Join(tmp, "temporal.db"), Log: temporalLog, Logger: logger,
	})
	if err != nil {
		return stack, fmt.Errorf("%w (see %s; is %s the temporal CLI?)", err, temporalLog.Name(), bin)
	}
	stack.onClose(func() { _ = server.Stop() })
	stack.temporalPID = proc.ChildPID("temporal")

	sandboxServer, err := sandboxfake.NewServer("")
	if err != nil {
		return stack, fmt.Errorf("sandbox: %w", err)
	}
	sandboxHTTP, err := app.ServeHTTP("127.0.0.1:0", sandboxServer.Handler(), logger)
	if err != nil {
		return stack, fmt.Errorf("sandbox CRM: %w", err)
	}
	stack.onClose(sandboxHTTP.Stop)
	stack.sandboxURL = sandboxHTTP.URL()

	run := app.Config{
		DataDir: tmp, DatabaseURL: dbURL, TaskQueue: "bench-" + runID,
		EncryptionKey: base64.StdEncoding.EncodeToString(key),
		Temporal:      app.TemporalConfig{Address: server.FrontendHostPort(), Namespace: app.DefaultNamespace},
		HTTPAddr:      httpAddr, SandboxURL: stack.sandboxURL, Policy: cfg.Policy,
		// The load is the measurement: intake is not paced for it.
		HTTP: app.HTTPConfig{IntakeRate: unpacedIntake, IntakeBurst: unpacedIntake},
	}
	svc, err := app.New(ctx, run, app.WithLogger(logger), app.WithTemporalClient(server.Client()), app.WithMigrate(), app.WithKeyring())
	if err != nil {
		return stack, err
	}
	stack.onClose(svc.Close)
	if err := stack.use(svc); err != nil {
		return stack, err
	}

	stack.httpURL = "http://" + httpAddr
	// The children run with exactly the run's configuration; no Temporal
	// profile of the machine may point them elsewhere.
	set := run.Environ()
	set["TEMPORAL_CONFIG_FILE"] = filepath.Join(tmp, "no-temporal-config.toml")
	env := proc.ChildEnv(set)
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
		if opts.ProfileDir != "" {
			if pprofAddr, err = app.FreeLoopbackAddr(); err != nil {
				return stack, err
			}
			procEnv = append(slices.Clone(env), app.PprofAddrEnv+"="+pprofAddr)
		}
		child, err := startChild(opts.Binary, ch.name, ch.args, procEnv, tmp)
		if err != nil {
			return stack, err
		}
		child.pprofAddr = pprofAddr
		*ch.slot = child
		stack.onClose(child.stop)
	}
	progress("started `integrations worker` (pid %d) and `integrations serve` (pid %d) on %s; task queue %s",
		stack.worker.pid(), stack.serve.pid(), stack.httpURL, run.TaskQueue)
	if err := waitHealthy(startCtx, stack); err != nil {
		return stack, err
	}
	return stack, nil
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
