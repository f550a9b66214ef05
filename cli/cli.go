// Package cli is the `integrations` command line: the dev stack, the
// production processes, the operator commands and the benchmark. It holds
// command definitions only: parse, call app (the composition root),
// starter, store or bench, print. Each file is one family of commands.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/starter"
)

// Exit codes.
const (
	ExitOK       = 0
	ExitError    = 1
	ExitUsage    = 2
	ExitRejected = 3
	// ExitTimeout: `wait` gave up; the last status is on stderr.
	ExitTimeout = 4
)

var runMu sync.Mutex

// usageError marks an error in how a command was called.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// Run runs the CLI with args (args[0] is the program name) and returns the
// process exit code. Errors go to stderr as one line.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// urfave/cli v2 keeps some flag state in package variables; one run at
	// a time (a process normally makes just one).
	runMu.Lock()
	defer runMu.Unlock()
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, reorderArgs(app, args))
	if err == nil {
		return ExitOK
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	var usage *usageError
	switch {
	case errors.As(err, &usage), errors.Is(err, starter.ErrInvalidInput), errors.Is(err, starter.ErrNotFound):
		fmt.Fprintf(stderr, "usage error: %s\n", msg)
		return ExitUsage
	case integration.IsRejection(err):
		fmt.Fprintf(stderr, "rejected: %s\n", msg)
		return ExitRejected
	case errors.As(err, new(*waitTimeoutError)):
		fmt.Fprintf(stderr, "%s\n", msg)
		return ExitTimeout
	case errors.Is(err, context.Canceled):
		return ExitError
	}
	fmt.Fprintf(stderr, "error: %s\n", msg)
	return ExitError
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "integrations",
		Usage: "keep lead-partner and CRM integrations alive",
		Description: "Each integration is one long-lived Temporal workflow whose every change lands in SQL.\n" +
			"Start the whole stack with `integrations dev`; drive it from a second terminal in the same directory.",
		Writer:    stdout,
		ErrWriter: stderr,
		// The settings' flags carry no environment variables or defaults
		// of their own: app.Load resolves each setting once, and knows
		// where its value came from (see `integrations config`).
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "text or json"},
			&cli.StringFlag{Name: "data-dir", DefaultText: app.DefaultDataDir, Usage: "where the dev command keeps its state; other commands find the dev stack's database and addresses here (env INTEGRATIONS_DATA_DIR)"},
			&cli.StringFlag{Name: "database-url", Usage: "postgres://... or a SQLite path (env DATABASE_URL; default: the dev stack's, else DATA-DIR/integrations.db)"},
			&cli.StringFlag{Name: "task-queue", Usage: "Temporal task queue of the workflows (env INTEGRATIONS_TASK_QUEUE; default: integrations)"},
			&cli.StringFlag{Name: "sandbox-url", Usage: "base URL of the sandbox CRM (env INTEGRATIONS_SANDBOX_URL; default: the dev stack's)"},
		},
		Metadata: map[string]any{},
		Before: func(c *cli.Context) error {
			switch c.String("output") {
			case "text", "json":
				return nil
			}
			return usagef("--output must be text or json, not %q", c.String("output"))
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error { return usagef("%v", err) },
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown command %q; see `integrations --help`", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		Commands: []*cli.Command{
			devCommand(), workerCommand(), serveCommand(), migrateCommand(), registerSearchAttributesCommand(),
			createCommand(), authorizeCommand(),
			commandCommand(integration.EventCompleteSetup, "finish setup: a lead integration needs a matching test lead, a CRM integration a passing authorization"),
			commandCommand(integration.EventPause, "pause a CRM integration; it stays paused until resumed"),
			commandCommand(integration.EventResume, "resume a manually paused CRM integration (validates first)"),
			commandCommand(integration.EventDelete, "delete an integration; its workflow ends"),
			statusCommand(), waitCommand(), listCommand(), eventsCommand(), sendLeadCommand(), leadsCommand(), rotateTokenCommand(), credentialsCommand(),
			apiKeyCommand(), sandboxCommand(), fakesCommand(), benchCommand(), configCommand(),
		},
		HideHelpCommand: true,
	}
}

// oneArg returns the single positional argument a command takes.
func oneArg(c *cli.Context, name string) (string, error) {
	if c.NArg() != 1 {
		return "", usagef("%s takes exactly one argument, %s (got %d)", c.Command.FullName(), name, c.NArg())
	}
	return c.Args().First(), nil
}

func requireFlag(c *cli.Context, name string) (string, error) {
	v := c.String(name)
	if v == "" {
		return "", usagef("%s needs --%s", c.Command.FullName(), name)
	}
	return v, nil
}

func jsonOutput(c *cli.Context) bool { return c.String("output") == "json" }

func printJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
