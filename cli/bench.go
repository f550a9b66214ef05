package cli

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/bench"
)

// benchCommand parses the benchmark's flags and runs package bench.
func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure the lead flow: intake rate, delivered rate, lead-to-CRM latency, backlog drain, worker memory, and the sandbox's raw capacity",
		Description: "Builds a whole stack on free 127.0.0.1 ports (Temporal dev server, sandbox CRM, and `integrations worker`\n" +
			"and `integrations serve` as child processes), or with --attach uses the running `integrations dev`; see the README's Benchmark section.\n" +
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
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("bench takes no arguments (got %q)", c.Args().First())
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			opts := bench.Options{
				Leads: c.Int("leads"), CRMs: c.Int("crms"), Concurrency: c.Int("concurrency"),
				Duration: c.Duration("duration"), CRMLatency: c.Duration("crm-latency"), Attach: c.Bool("attach"),
				TemporalBin: c.String("temporal-bin"), Binary: c.String("binary"), ProfileDir: c.String("profile-dir"), JSON: jsonOutput(c),
			}
			if err := opts.Validate(cfg); err != nil {
				return usagef("%v", err)
			}
			ctx, stop := signalContext(c)
			defer stop()
			return bench.Run(ctx, cfg, opts, c.App.Writer, c.App.ErrWriter)
		},
	}
}
