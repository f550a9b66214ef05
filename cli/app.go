// Package cli is the `integrations` command line: the dev stack, the
// production processes, and the operator commands. It stays thin: parse,
// call starter or store, print.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/starter"
)

// Exit codes.
const (
	ExitOK       = 0
	ExitError    = 1
	ExitUsage    = 2
	ExitRejected = 3
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
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "text or json"},
			&cli.StringFlag{Name: "data-dir", Value: ".data", EnvVars: []string{"INTEGRATIONS_DATA_DIR"}, Usage: "where the dev command keeps its state; other commands find the dev stack's database and addresses here"},
			&cli.StringFlag{Name: "database-url", EnvVars: []string{"DATABASE_URL"}, Usage: "postgres://... or a SQLite path (default: DATA-DIR/integrations.db)"},
			&cli.StringFlag{Name: "task-queue", EnvVars: []string{"INTEGRATIONS_TASK_QUEUE"}, Usage: "Temporal task queue of the workflows (default: integrations)"},
			&cli.StringFlag{Name: "sandbox-url", EnvVars: []string{"INTEGRATIONS_SANDBOX_URL"}, Usage: "base URL of the sandbox CRM (default: the dev stack's)"},
		},
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
			statusCommand(), listCommand(), eventsCommand(), sendLeadCommand(), rotateTokenCommand(),
			sandboxCommand(), benchCommand(),
		},
		HideHelpCommand: true,
	}
}

// withUsageErrors makes flag errors of every command usage errors.
func withUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usagef("%v", err) }
		withUsageErrors(c.Subcommands)
	}
}

// reorderArgs moves every flag of a command in front of its positional
// arguments, because urfave/cli v2 stops parsing flags at the first
// argument and the documented form is `integrations pause ID --by alice`.
func reorderArgs(app *cli.App, args []string) []string {
	withUsageErrors(app.Commands)
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	flags := app.Flags
	commands := app.Commands
	rest := args[1:]
	// Walk down the command path, keeping global and parent flags in place.
	for len(rest) > 0 {
		tok := rest[0]
		if strings.HasPrefix(tok, "-") {
			n := flagArity(flags, tok)
			out = append(out, rest[:min(n, len(rest))]...)
			rest = rest[min(n, len(rest)):]
			continue
		}
		var next *cli.Command
		for _, c := range commands {
			if c.HasName(tok) {
				next = c
			}
		}
		if next == nil {
			break
		}
		out = append(out, tok)
		rest = rest[1:]
		flags, commands = next.Flags, next.Subcommands
		if len(commands) == 0 {
			break
		}
	}
	var globalArgs, flagArgs, positional []string
	for i := 0; i < len(rest); i++ {
		tok := rest[i]
		if tok == "--" {
			positional = append(positional, rest[i+1:]...)
			break
		}
		if strings.HasPrefix(tok, "-") && tok != "-" {
			// A global flag given after the command (`status ID -o json`)
			// goes back in front of the command path.
			dst, arity := &flagArgs, flagArity(flags, tok)
			if !hasFlag(flags, tok) && hasFlag(app.Flags, tok) {
				dst, arity = &globalArgs, flagArity(app.Flags, tok)
			}
			end := min(i+arity, len(rest))
			*dst = append(*dst, rest[i:end]...)
			i = end - 1
			continue
		}
		positional = append(positional, tok)
	}
	out = append(out[:1], append(globalArgs, out[1:]...)...)
	out = append(out, flagArgs...)
	if len(positional) > 0 {
		out = append(out, "--")
		out = append(out, positional...)
	}
	return out
}

// hasFlag reports whether a flag token names one of flags.
func hasFlag(flags []cli.Flag, tok string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(tok, "-"), "=")
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// flagArity is how many tokens a flag token takes: 1 for booleans and
// --flag=value, 2 for a flag followed by its value.
func flagArity(flags []cli.Flag, tok string) int {
	name := strings.TrimLeft(tok, "-")
	if strings.Contains(name, "=") {
		return 1
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if _, isBool := f.(*cli.BoolFlag); isBool {
				return 1
			}
			return 2
		}
	}
	if name == "help" || name == "h" {
		return 1
	}
	return 2
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

// devInfo is what `dev` writes to DATA-DIR/dev.json so that commands in a
// second terminal find the stack it started.
type devInfo struct {
	TemporalAddress string `json:"temporal_address"`
	Namespace       string `json:"namespace"`
	DatabaseURL     string `json:"database_url"`
	SandboxURL      string `json:"sandbox_url"`
	HTTPURL         string `json:"http_url"`
	UIURL           string `json:"ui_url"`
	TaskQueue       string `json:"task_queue,omitempty"`
}

func devInfoPath(c *cli.Context) string { return filepath.Join(c.String("data-dir"), "dev.json") }

func readDevInfo(c *cli.Context) devInfo {
	var info devInfo
	b, err := os.ReadFile(devInfoPath(c))
	if err == nil {
		_ = json.Unmarshal(b, &info)
	}
	return info
}
