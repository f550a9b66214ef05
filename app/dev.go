package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	sdkworker "go.temporal.io/sdk/worker"
)

// DevOptions are the dev stack's own settings (the `dev` command's flags).
type DevOptions struct {
	TemporalPort int
	UIPort       int
	// Fakes are where the fake CRMs listen.
	Fakes FakeAddrs
	// TemporalBin is the temporal CLI ("": see FindTemporalBinary).
	TemporalBin string
	// Out takes the progress lines and the banner; ErrOut the SDK's
	// warnings; Logger the stack's log.
	Out, ErrOut io.Writer
	Logger      *slog.Logger
}

// RunDev runs the whole stack on this machine until ctx ends: a Temporal
// dev server with its UI, the database (migrated), the fake CRMs (the
// sandbox, HubSpot, Salesforce, Follow Up Boss: each CRM whose real client
// credentials are not configured is its fake), the worker and the HTTP
// API, with their state in cfg.DataDir, and writes
// DATA-DIR/dev.json so that commands in a second terminal find it. It is
// the one process that creates an encryption key.
func RunDev(ctx context.Context, cfg Config, o DevOptions) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w", cfg.DataDir, err)
	}
	bin, err := FindTemporalBinary(o.TemporalBin)
	if err != nil {
		return err
	}
	if err := devConfig(&cfg, o); err != nil {
		return err
	}

	// The database and the key first: a wrong URL should fail before
	// anything starts.
	check, err := New(ctx, cfg, WithMigrate(), WithDevKeyring())
	if err != nil {
		return err
	}
	// The local user's admin API key, made on the first start only.
	adminKey, err := EnsureDevAdminKey(ctx, cfg, check.Store, time.Now())
	check.Close()
	if err != nil {
		return err
	}

	temporalLog, err := os.OpenFile(filepath.Join(cfg.DataDir, "temporal.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open temporal log: %w", err)
	}
	defer temporalLog.Close()
	fmt.Fprintf(o.Out, "starting Temporal dev server (%s)...\n", bin)
	server, err := StartDevServer(ctx, DevServerOptions{
		Bin: bin, Address: cfg.Temporal.Address, UIPort: o.UIPort,
		DBFile: filepath.Join(cfg.DataDir, "temporal.db"), Log: temporalLog,
		Logger: slog.New(slog.NewTextHandler(o.ErrOut, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return fmt.Errorf("%w on %s (see %s)", err, cfg.Temporal.Address, temporalLog.Name())
	}
	defer func() {
		fmt.Fprintln(o.Out, "stopping Temporal dev server...")
		if err := server.Stop(); err != nil {
			o.Logger.Warn("stop Temporal dev server", "error", err)
		}
	}()

	fakes, err := StartFakes(ctx, o.Fakes, cfg.DataDir, cfg.PublicURL, o.Logger)
	if err != nil {
		return err
	}
	defer fakes.Stop()
	if err := fakes.Configure(&cfg); err != nil {
		return err
	}

	svc, err := New(ctx, cfg, WithLogger(o.Logger), WithTemporalClient(server.Client()), WithDevKeyring(),
		WithWorker(sdkworker.Options{}), WithHTTP())
	if err != nil {
		return err
	}
	defer svc.Close()
	if err := svc.Start(ctx); err != nil {
		return err
	}

	info := svc.DevInfo(fmt.Sprintf("http://127.0.0.1:%d", o.UIPort))
	if err := WriteDevInfo(cfg.DataDir, info); err != nil {
		return err
	}
	defer os.Remove(DevInfoPath(cfg.DataDir))

	keyLine := fmt.Sprintf("%s  (admin, %s; kept in %s)", adminKey.Key, adminKey.Stored.Name, cfg.AdminKeyFile())
	if adminKey.Note != "" {
		keyLine = fmt.Sprintf("%s %s", cfg.AdminKeyFile(), adminKey.Note)
	}
	fmt.Fprintf(o.Out, `
integrations dev stack is up (Ctrl-C stops everything)
  Temporal:     %s (namespace %s, task queue %s)
  Temporal UI:  %s
  HTTP API:     %s  (try %s/healthz)
  API key:      %s
  CRMs:         sandbox %s
                HubSpot %s
                Salesforce %s
                Follow Up Boss %s
  Database:     %s
  Data dir:     %s
From a second terminal in this directory: integrations%s list
  or: curl -H "Authorization: Bearer $(cat %s)" %s/v1/integrations
`, info.TemporalAddress, info.Namespace, cfg.TaskQueue, info.UIURL, info.HTTPURL, info.HTTPURL, keyLine,
		info.SandboxURL, crmShown(cfg.HubSpot.APIURL, fakes.HubSpotURL), crmShown(cfg.Salesforce.LoginURL, fakes.SalesforceURL),
		crmShown(cfg.FollowUpBoss.APIURL, fakes.FollowUpBossURL), RedactURL(cfg.DatabaseURL), cfg.DataDir, dataDirFlag(cfg.DataDir), cfg.AdminKeyFile(), info.HTTPURL)
	err = svc.Wait(ctx)
	fmt.Fprintln(o.Out, "\nshutting down...")
	return err
}

// devConfig sets what the dev stack decides itself: its Temporal dev
// server's address and namespace, and, unless one was given, its public
// URL: its own HTTP API, where the fakes' consent pages send browsers back
// (dev.json hands it on to the commands of a second terminal).
func devConfig(cfg *Config, o DevOptions) error {
	for name, value := range map[string]string{
		"temporal_address":   fmt.Sprintf("127.0.0.1:%d", o.TemporalPort),
		"temporal_namespace": DefaultNamespace,
	} {
		if err := cfg.Override(name, value, SourceFlag); err != nil {
			return err
		}
	}
	if cfg.PublicURL == "" {
		return cfg.Override("public_url", cfg.HTTP.scheme()+"://"+cfg.HTTPAddr, SourceDev)
	}
	return nil
}

// crmShown says where the dev stack's connector for a CRM goes: its fake,
// or the real CRM when its client credentials are configured.
func crmShown(configured, fake string) string {
	if configured == fake {
		return fake + " (fake)"
	}
	return configured + " (real: its client credentials are configured)"
}

// dataDirFlag is the --data-dir a second terminal's commands need to find
// this stack, or nothing for the default data dir (Load makes dir
// absolute, so the default is compared as such).
func dataDirFlag(dir string) string {
	if def, err := filepath.Abs(DefaultDataDir); err == nil && filepath.Clean(dir) == def {
		return ""
	}
	if strings.ContainsAny(dir, " \t'\"$\\`") {
		// Quoted for the shell it is pasted into.
		return " --data-dir '" + strings.ReplaceAll(dir, "'", `'\''`) + "'"
	}
	return " --data-dir " + dir
}
