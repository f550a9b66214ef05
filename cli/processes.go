package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/workflows"
)

// signalContext ends on Ctrl-C or SIGTERM, for the long-running commands.
func signalContext(c *cli.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
}

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run the whole stack on this machine: Temporal dev server + UI, database, worker, HTTP API, the sandbox and fake CRMs",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "temporal-port", Value: 7233, Usage: "Temporal frontend port"},
			&cli.IntFlag{Name: "ui-port", Value: 8233, Usage: "Temporal UI port"},
			&cli.StringFlag{Name: "http-addr", DefaultText: app.DefaultHTTPAddr, Usage: "HTTP API address (env INTEGRATIONS_HTTP_ADDR)"},
			&cli.StringFlag{Name: "sandbox-addr", Value: app.DefaultSandboxAddr, Usage: "sandbox CRM address"},
			&cli.StringFlag{Name: "hubspot-addr", Value: app.DefaultHubSpotFakeAddr, Usage: "fake HubSpot address"},
			&cli.StringFlag{Name: "salesforce-addr", Value: app.DefaultSalesforceFakeAddr, Usage: "fake Salesforce address"},
			&cli.StringFlag{Name: "followupboss-addr", Value: app.DefaultFollowUpBossFakeAddr, Usage: "fake Follow Up Boss address"},
			&cli.StringFlag{Name: "temporal-bin", EnvVars: []string{"TEMPORAL_BIN"}, Usage: "temporal CLI binary (default: bin/temporal, built by make temporal)"},
		},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			ctx, stop := signalContext(c)
			defer stop()
			return app.RunDev(ctx, cfg, app.DevOptions{
				TemporalPort: c.Int("temporal-port"), UIPort: c.Int("ui-port"), Fakes: app.FakeAddrs{
					Sandbox: c.String("sandbox-addr"), HubSpot: c.String("hubspot-addr"),
					Salesforce: c.String("salesforce-addr"), FollowUpBoss: c.String("followupboss-addr"),
				},
				TemporalBin: c.String("temporal-bin"), Out: c.App.Writer, ErrOut: c.App.ErrWriter,
				Logger: slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelInfo})),
			})
		},
	}
}

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:  "worker",
		Usage: "run a Temporal worker for the integration workflows (production piece)",
		Action: func(c *cli.Context) error {
			return runProcess(c, "worker starting", app.WithWorker(sdkworker.Options{}))
		},
	}
}

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the HTTP API (production piece)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "http-addr", DefaultText: app.DefaultHTTPAddr, Usage: "listen address (env INTEGRATIONS_HTTP_ADDR)"},
			&cli.StringFlag{Name: "intake-addr", Usage: "serve partner intake on this address of its own, and not on --http-addr (env INTEGRATIONS_INTAKE_ADDR)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate: serve HTTPS only, with --tls-key (env INTEGRATIONS_TLS_CERT)"},
			&cli.StringFlag{Name: "tls-key", Usage: "PEM private key of --tls-cert (env INTEGRATIONS_TLS_KEY)"},
		},
		Action: func(c *cli.Context) error {
			return runProcess(c, "HTTP API listening", app.WithHTTP())
		},
	}
}

// runProcess runs a production process (worker, serve) until Ctrl-C or
// SIGTERM: it waits up to a minute for Temporal, then starts what opts ask
// for and logs started.
func runProcess(c *cli.Context, started string, opts ...app.Option) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(c)
	defer stop()
	logger := processLogger(c)
	svc, err := app.New(ctx, cfg, append([]app.Option{app.WithLogger(logger), app.WithTemporalWait(app.TemporalStartupWait)}, opts...)...)
	if err != nil {
		return err
	}
	defer svc.Close()
	if err := svc.Start(ctx); err != nil {
		return err
	}
	attrs := []any{"task_queue", cfg.TaskQueue}
	if svc.HTTP != nil {
		attrs = append(attrs, "addr", svc.HTTP.Addr, "url", svc.HTTP.URL())
	}
	if svc.IntakeHTTP != nil {
		attrs = append(attrs, "intake_addr", svc.IntakeHTTP.Addr)
	}
	logger.Info(started, attrs...)
	return svc.Wait(ctx)
}

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "apply the database migrations (idempotent)",
		Action: func(c *cli.Context) error {
			return withService(c, func(_ context.Context, svc *app.Service) error {
				fmt.Fprintf(c.App.Writer, "database %s is migrated\n", app.RedactURL(svc.Config.DatabaseURL))
				return nil
			}, app.WithMigrate())
		},
	}
}

// registerSearchAttributesCommand registers the search attributes the
// workflows upsert, on a self-hosted cluster (the dev server registers
// them itself; on Temporal Cloud use the Cloud UI or tcld).
func registerSearchAttributesCommand() *cli.Command {
	return &cli.Command{
		Name:  "register-search-attributes",
		Usage: "register the Integration* search attributes on a self-hosted Temporal cluster (idempotent)",
		Action: func(c *cli.Context) error {
			return withService(c, func(ctx context.Context, svc *app.Service) error {
				namespace := svc.Config.Temporal.Namespace
				ops := svc.Temporal.OperatorService()
				existing, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
				if err != nil {
					return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
				}
				want := map[string]enumspb.IndexedValueType{}
				for attr := range workflows.SearchAttributes(integration.State{}).GetUntypedValues() {
					if _, ok := existing.CustomAttributes[attr.GetName()]; !ok {
						want[attr.GetName()] = attr.GetValueType()
					}
				}
				if len(want) == 0 {
					fmt.Fprintf(c.App.Writer, "search attributes already registered in namespace %s\n", namespace)
					return nil
				}
				if _, err := ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
					Namespace: namespace, SearchAttributes: want,
				}); err != nil {
					return fmt.Errorf("add search attributes to namespace %s: %w", namespace, err)
				}
				var names []string
				for n := range want {
					names = append(names, n)
				}
				fmt.Fprintf(c.App.Writer, "registered %s in namespace %s\n", strings.Join(names, ", "), namespace)
				return nil
			}, app.WithTemporal())
		},
	}
}
