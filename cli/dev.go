package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/api"
	"github.com/acme/integrations/crm/sandbox/sandboxfake"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/worker"
	"github.com/acme/integrations/workflows"
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run the whole stack on this machine: Temporal dev server + UI, database, worker, HTTP API, sandbox CRM",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "temporal-port", Value: 7233, Usage: "Temporal frontend port"},
			&cli.IntFlag{Name: "ui-port", Value: 8233, Usage: "Temporal UI port"},
			&cli.StringFlag{Name: "http-addr", Value: defaultHTTPAddr, Usage: "HTTP API address"},
			&cli.StringFlag{Name: "sandbox-addr", Value: defaultSandboxAddr, Usage: "sandbox CRM address"},
			&cli.StringFlag{Name: "temporal-bin", EnvVars: []string{"TEMPORAL_BIN"}, Usage: "temporal CLI binary (default: bin/temporal, built by make temporal)"},
		},
		Action: runDev,
	}
}

func runDev(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := c.App.Writer
	dataDir, err := filepath.Abs(c.String("data-dir"))
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w", dataDir, err)
	}
	bin, err := findTemporalBinary(c.String("temporal-bin"))
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelInfo}))

	// The database first: a wrong URL should fail before anything starts.
	dbURL := c.String("database-url")
	if dbURL == "" {
		dbURL = "sqlite://" + filepath.Join(dataDir, "integrations.db")
	}
	st, err := openStoreURL(ctx, dbURL)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	kr, err := keyring(c)
	if err != nil {
		return err
	}

	temporalAddr := fmt.Sprintf("127.0.0.1:%d", c.Int("temporal-port"))
	temporalLog, err := os.OpenFile(filepath.Join(dataDir, "temporal.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open temporal log: %w", err)
	}
	defer temporalLog.Close()
	fmt.Fprintf(out, "starting Temporal dev server (%s)...\n", bin)
	server, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: bin,
		ClientOptions: &client.Options{
			HostPort: temporalAddr, Namespace: "default",
			Logger: sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		},
		DBFilename:       filepath.Join(dataDir, "temporal.db"),
		EnableUI:         true,
		UIPort:           fmt.Sprint(c.Int("ui-port")),
		LogLevel:         "warn",
		SearchAttributes: workflows.SearchAttributes(integration.State{}),
		Stdout:           temporalLog,
		Stderr:           temporalLog,
	})
	if err != nil {
		return fmt.Errorf("start Temporal dev server on %s: %w (see %s)", temporalAddr, err, temporalLog.Name())
	}
	defer func() {
		fmt.Fprintln(out, "stopping Temporal dev server...")
		if err := server.Stop(); err != nil {
			logger.Warn("stop Temporal dev server", "error", err)
		}
	}()
	tc := server.Client()

	sandboxServer, err := sandboxfake.NewServer(filepath.Join(dataDir, "sandbox.json"))
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	sandboxURL := "http://" + c.String("sandbox-addr")
	stopSandbox, err := serveHTTP(ctx, c.String("sandbox-addr"), sandboxServer.Handler(), logger)
	if err != nil {
		return fmt.Errorf("sandbox CRM: %w", err)
	}
	defer stopSandbox()

	// Operator commands and the worker reach the sandbox at the address dev
	// serves it on.
	if err := c.Set("sandbox-url", sandboxURL); err != nil {
		return err
	}
	acts := &activities.Activities{Store: st, Connectors: connectors(c), Keyring: kr, Logger: logger}
	w := worker.New(tc, taskQueue(c), acts, integration.DefaultPolicy(), sdkworker.Options{})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()

	nudger := starter.NewNudger(tc, nudgeTick, logger.Warn)
	go nudger.Run(ctx)
	st2 := &starter.Starter{Temporal: tc, Store: st, Keyring: kr, Connectors: acts.Connectors, TaskQueue: taskQueue(c), Nudger: nudger}
	stopHTTP, err := serveHTTP(ctx, c.String("http-addr"), api.New(st2, logger), logger)
	if err != nil {
		return fmt.Errorf("HTTP API: %w", err)
	}
	defer stopHTTP()

	info := devInfo{
		TemporalAddress: temporalAddr, Namespace: "default", DatabaseURL: dbURL,
		SandboxURL: sandboxURL, HTTPURL: "http://" + c.String("http-addr"),
		UIURL: fmt.Sprintf("http://127.0.0.1:%d", c.Int("ui-port")), TaskQueue: taskQueue(c),
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := os.WriteFile(devInfoPath(c), b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", devInfoPath(c), err)
	}
	defer os.Remove(devInfoPath(c))

	fmt.Fprintf(out, `
integrations dev stack is up (Ctrl-C stops everything)
  Temporal:     %s (namespace default, task queue %s)
  Temporal UI:  %s
  HTTP API:     %s  (try %s/healthz)
  Sandbox CRM:  %s
  Database:     %s
  Data dir:     %s
From a second terminal in this directory: integrations list
`, info.TemporalAddress, workflows.TaskQueue, info.UIURL, info.HTTPURL, info.HTTPURL, info.SandboxURL, redactURL(dbURL), dataDir)
	<-ctx.Done()
	fmt.Fprintln(out, "\nshutting down...")
	return nil
}

// nudgeTick is how often coalesced sync nudges go out: the floor of the
// lead-to-CRM latency, and the most signals a CRM workflow gets per second
// from one API process is 1/nudgeTick.
const nudgeTick = 100 * time.Millisecond

// serveHTTP listens on addr and serves h until the returned stop is called.
func serveHTTP(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server stopped", "addr", addr, "error", err)
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// findTemporalBinary locates the temporal CLI built from tools/temporal.
func findTemporalBinary(flag string) (string, error) {
	if flag != "" {
		if _, err := os.Stat(flag); err != nil {
			return "", fmt.Errorf("temporal binary %s: %w", flag, err)
		}
		return flag, nil
	}
	candidates := []string{filepath.Join("bin", "temporal")}
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "temporal"))
	}
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return filepath.Abs(p)
		}
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, nil
	}
	return "", errors.New("temporal dev server binary not found: run `make temporal` (builds bin/temporal from tools/temporal) or set TEMPORAL_BIN")
}

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:  "worker",
		Usage: "run a Temporal worker for the integration workflows (production piece)",
		Action: func(c *cli.Context) error {
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			logger := slog.New(slog.NewJSONHandler(c.App.ErrWriter, nil))
			st, err := openStore(c)
			if err != nil {
				return err
			}
			defer st.Close()
			kr, err := keyring(c)
			if err != nil {
				return err
			}
			tc, err := dialTemporalPatiently(ctx, c, logger, temporalStartupWait)
			if err != nil {
				return err
			}
			defer tc.Close()
			acts := &activities.Activities{Store: st, Connectors: connectors(c), Keyring: kr, Logger: logger}
			w := worker.New(tc, taskQueue(c), acts, integration.DefaultPolicy(), sdkworker.Options{})
			logger.Info("worker starting", "task_queue", taskQueue(c))
			return w.Run(workerInterrupt(ctx))
		},
	}
}

// workerInterrupt adapts a context to the worker's interrupt channel.
func workerInterrupt(ctx context.Context) <-chan any {
	ch := make(chan any)
	go func() { <-ctx.Done(); close(ch) }()
	return ch
}

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the HTTP API (production piece)",
		Flags: []cli.Flag{&cli.StringFlag{Name: "http-addr", Value: defaultHTTPAddr, EnvVars: []string{"INTEGRATIONS_HTTP_ADDR"}, Usage: "listen address"}},
		Action: func(c *cli.Context) error {
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			logger := slog.New(slog.NewJSONHandler(c.App.ErrWriter, nil))
			s, err := openSessionWaiting(ctx, c, true, temporalStartupWait)
			if err != nil {
				return err
			}
			defer s.close()
			s.starter.Nudger = starter.NewNudger(s.starter.Temporal, nudgeTick, logger.Warn)
			go s.starter.Nudger.Run(ctx)
			stopHTTP, err := serveHTTP(ctx, c.String("http-addr"), api.New(s.starter, logger), logger)
			if err != nil {
				return err
			}
			logger.Info("HTTP API listening", "addr", c.String("http-addr"))
			<-ctx.Done()
			stopHTTP()
			return nil
		},
	}
}

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "apply the database migrations (idempotent)",
		Action: func(c *cli.Context) error {
			st, err := openStore(c)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.Migrate(c.Context); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			fmt.Fprintf(c.App.Writer, "database %s is migrated\n", redactURL(databaseURL(c)))
			return nil
		},
	}
}
