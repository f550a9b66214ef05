package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/log"

	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/crm/sandbox"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
	"github.com/acme/integrations/workflows"
)

// Defaults of the dev stack, also what other commands assume when neither
// a flag, the environment nor DATA-DIR/dev.json says otherwise.
const (
	defaultTemporalAddress = "127.0.0.1:7233"
	defaultSandboxAddr     = "127.0.0.1:8090"
	defaultHTTPAddr        = "127.0.0.1:8080"
)

// databaseURL resolves the database: --database-url / DATABASE_URL, else
// the one a dev stack in DATA-DIR uses, else SQLite in DATA-DIR.
func databaseURL(c *cli.Context) string {
	if u := c.String("database-url"); u != "" {
		return u
	}
	if u := readDevInfo(c).DatabaseURL; u != "" {
		return u
	}
	return "sqlite://" + filepath.Join(c.String("data-dir"), "integrations.db")
}

func taskQueue(c *cli.Context) string {
	if q := c.String("task-queue"); q != "" {
		return q
	}
	if q := readDevInfo(c).TaskQueue; q != "" {
		return q
	}
	return workflows.TaskQueue
}

func sandboxURL(c *cli.Context) string {
	if u := c.String("sandbox-url"); u != "" {
		return u
	}
	if u := readDevInfo(c).SandboxURL; u != "" {
		return u
	}
	return "http://" + defaultSandboxAddr
}

func openStore(c *cli.Context) (*store.Store, error) {
	return openStoreURL(c.Context, databaseURL(c))
}

func openStoreURL(ctx context.Context, u string) (*store.Store, error) {
	st, err := store.Open(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", redactURL(u), err)
	}
	return st, nil
}

// redactURL hides a database password before the URL is printed.
func redactURL(u string) string {
	parsed, err := url.Parse(u)
	if err != nil || parsed.User == nil {
		return u
	}
	return parsed.Redacted()
}

// temporalOptions follows the SDK's environment conventions
// (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS, profiles),
// falling back to the dev stack's address.
func temporalOptions(c *cli.Context, logger *slog.Logger) (client.Options, error) {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return client.Options{}, fmt.Errorf("load Temporal client configuration: %w", err)
	}
	if opts.HostPort == "" {
		opts.HostPort = readDevInfo(c).TemporalAddress
	}
	if opts.HostPort == "" {
		opts.HostPort = defaultTemporalAddress
	}
	opts.Logger = log.NewStructuredLogger(logger)
	return opts, nil
}

func dialTemporal(c *cli.Context, logger *slog.Logger) (client.Client, error) {
	return dialTemporalContext(c.Context, c, logger)
}

// dialTemporalContext is dialTemporal under ctx.
func dialTemporalContext(ctx context.Context, c *cli.Context, logger *slog.Logger) (client.Client, error) {
	opts, err := temporalOptions(c, logger)
	if err != nil {
		return nil, err
	}
	tc, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w (is `integrations dev` running? set TEMPORAL_ADDRESS otherwise)", opts.HostPort, err)
	}
	return tc, nil
}

// temporalStartupWait is how long the long-running processes (worker,
// serve) keep trying to reach Temporal when they start: a server that is
// still starting, or too busy to answer in time, delays them rather than
// ending them.
const temporalStartupWait = time.Minute

// dialTemporalPatiently is dialTemporal retried every second for up to
// wait, for processes that start next to (or before) the Temporal server;
// ctx (the process's signal context) stops the waiting.
func dialTemporalPatiently(ctx context.Context, c *cli.Context, logger *slog.Logger, wait time.Duration) (client.Client, error) {
	deadline := time.Now().Add(wait)
	for attempt := 1; ; attempt++ {
		tc, err := dialTemporalContext(ctx, c, logger)
		if err == nil || wait <= 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return tc, err
		}
		logger.Warn("Temporal is not reachable yet; retrying", "attempt", attempt, "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Second):
		}
	}
}

// keyring loads the credentials encryption key: INTEGRATIONS_ENCRYPTION_KEY,
// else DATA-DIR/encryption.key (created on first use, for the dev stack).
func keyring(c *cli.Context) (*credential.Keyring, error) {
	var key []byte
	var err error
	if v := os.Getenv(credential.KeyEnv); v != "" {
		key, err = credential.ParseKey(v)
	} else {
		if err := os.MkdirAll(c.String("data-dir"), 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		key, err = credential.LoadOrCreateKeyFile(filepath.Join(c.String("data-dir"), "encryption.key"))
	}
	if err != nil {
		return nil, fmt.Errorf("load encryption key: %w", err)
	}
	return credential.NewKeyring(key)
}

func connectors(c *cli.Context) *crm.Registry {
	httpClient := &http.Client{Timeout: 20 * time.Second}
	return crm.NewRegistry(sandbox.NewConnector(sandboxURL(c), httpClient))
}

// quietLogger is for one-shot commands: warnings and errors only, on stderr.
func quietLogger(c *cli.Context) *slog.Logger {
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// session is what an operator command needs; close it when done.
type session struct {
	starter *starter.Starter
	store   *store.Store
	close   func()
}

// openSession connects to the database and, when withTemporal, to Temporal.
func openSession(c *cli.Context, withTemporal bool) (*session, error) {
	return openSessionWaiting(c.Context, c, withTemporal, 0)
}

// openSessionWaiting is openSession that keeps trying to reach Temporal
// for up to wait or until ctx ends (see dialTemporalPatiently).
func openSessionWaiting(ctx context.Context, c *cli.Context, withTemporal bool, wait time.Duration) (*session, error) {
	st, err := openStore(c)
	if err != nil {
		return nil, err
	}
	s := &session{store: st, starter: &starter.Starter{Store: st, Connectors: connectors(c)}}
	s.close = func() { _ = st.Close() }
	if !withTemporal {
		return s, nil
	}
	kr, err := keyring(c)
	if err != nil {
		s.close()
		return nil, err
	}
	tc, err := dialTemporalPatiently(ctx, c, quietLogger(c), wait)
	if err != nil {
		s.close()
		return nil, err
	}
	s.starter.Temporal, s.starter.Keyring = tc, kr
	s.starter.Config = workflowConfig(c)
	s.starter.TaskQueue = taskQueue(c)
	s.close = func() { tc.Close(); _ = st.Close() }
	return s, nil
}

// workflowConfig reads the workflow timer settings of `create` (flags,
// with environment fallbacks), so demos and tests can shorten them.
func workflowConfig(c *cli.Context) workflows.Config {
	return workflows.Config{
		ValidationInterval: c.Duration("validation-interval"),
		ReminderAfter:      c.Duration("setup-reminder-after"),
		AbandonAfter:       c.Duration("setup-abandon-after"),
	}
}

// timerFlags are the workflow timer settings `create` accepts.
func timerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "validation-interval", EnvVars: []string{"INTEGRATIONS_VALIDATION_INTERVAL"}, Usage: "how often a CRM integration validates (default 1h)"},
		&cli.DurationFlag{Name: "setup-reminder-after", EnvVars: []string{"INTEGRATIONS_SETUP_REMINDER_AFTER"}, Usage: "remind the org when setup is incomplete this long (default 72h)"},
		&cli.DurationFlag{Name: "setup-abandon-after", EnvVars: []string{"INTEGRATIONS_SETUP_ABANDON_AFTER"}, Usage: "flag setup abandoned after this long (default 720h)"},
	}
}
