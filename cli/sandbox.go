package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/crm/sandbox"
)

func sandboxCommand() *cli.Command {
	keyAction := func(name string, op func(ctx context.Context, sc *sandbox.Client, key string) (sandbox.Account, error)) *cli.Command {
		return &cli.Command{
			Name: name, ArgsUsage: "KEY", Usage: name + " an account's API key",
			Action: func(c *cli.Context) error {
				key, err := oneArg(c, "KEY")
				if err != nil {
					return err
				}
				return withSandbox(c, func(ctx context.Context, sc *sandbox.Client) error {
					a, err := op(ctx, sc, key)
					if err != nil {
						return err
					}
					return printAccount(c, a)
				})
			},
		}
	}
	return &cli.Command{
		Name:  "sandbox",
		Usage: "drive the sandbox CRM (accounts, keys, scopes)",
		Subcommands: []*cli.Command{{
			Name:  "serve",
			Usage: "run the sandbox CRM on its own (dev runs one for you)",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "addr", Value: defaultSandboxAddr, Usage: "listen address"},
				&cli.StringFlag{Name: "state-file", Usage: "keep accounts in this JSON file across restarts (default: in memory)"},
			},
			Action: func(c *cli.Context) error {
				ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
				defer stop()
				srv, err := sandbox.NewServer(c.String("state-file"))
				if err != nil {
					return err
				}
				logger := slog.New(slog.NewJSONHandler(c.App.ErrWriter, nil))
				stopHTTP, err := serveHTTP(ctx, c.String("addr"), srv.Handler(), logger)
				if err != nil {
					return err
				}
				logger.Info("sandbox CRM listening", "addr", c.String("addr"))
				<-ctx.Done()
				stopHTTP()
				return nil
			},
		}, {
			Name:  "account",
			Usage: "sandbox CRM accounts",
			Subcommands: []*cli.Command{
				{
					Name: "create", Usage: "create an account and print its API key", ArgsUsage: " ",
					Flags: []cli.Flag{
						&cli.StringFlag{Name: "scopes", Usage: "comma-separated scopes (default: contacts.read,contacts.write)"},
						&cli.StringFlag{Name: "credentials-out", Usage: "also write {\"api_key\": ...} to this file, ready for authorize --credentials-file"},
						&cli.BoolFlag{Name: "key-only", Usage: "print only the API key"},
					},
					Action: func(c *cli.Context) error {
						if c.NArg() > 0 {
							return usagef("sandbox account create takes no arguments")
						}
						var scopes []string
						if v := c.String("scopes"); v != "" {
							for _, s := range strings.Split(v, ",") {
								scopes = append(scopes, strings.TrimSpace(s))
							}
						}
						return withSandbox(c, func(ctx context.Context, sc *sandbox.Client) error {
							a, err := sc.CreateAccount(ctx, scopes)
							if err != nil {
								return err
							}
							if path := c.String("credentials-out"); path != "" {
								doc, _ := json.Marshal(map[string]string{"api_key": a.APIKey})
								if err := os.WriteFile(path, append(doc, '\n'), 0o600); err != nil {
									return fmt.Errorf("write credentials file: %w", err)
								}
							}
							if c.Bool("key-only") {
								fmt.Fprintln(c.App.Writer, a.APIKey)
								return nil
							}
							return printAccount(c, a)
						})
					},
				},
				keyAction("revoke", func(ctx context.Context, sc *sandbox.Client, key string) (sandbox.Account, error) {
					return sc.Revoke(ctx, key)
				}),
				keyAction("restore", func(ctx context.Context, sc *sandbox.Client, key string) (sandbox.Account, error) {
					return sc.Restore(ctx, key)
				}),
				keyAction("disable-api", func(ctx context.Context, sc *sandbox.Client, key string) (sandbox.Account, error) {
					return sc.DisableAPI(ctx, key)
				}),
				keyAction("enable-api", func(ctx context.Context, sc *sandbox.Client, key string) (sandbox.Account, error) {
					return sc.EnableAPI(ctx, key)
				}),
				{
					Name: "drop-scope", Usage: "remove a scope from an account", ArgsUsage: "KEY SCOPE",
					Action: func(c *cli.Context) error {
						if c.NArg() != 2 {
							return usagef("sandbox account drop-scope takes two arguments, KEY and SCOPE (got %d)", c.NArg())
						}
						return withSandbox(c, func(ctx context.Context, sc *sandbox.Client) error {
							a, err := sc.DropScope(ctx, c.Args().Get(0), c.Args().Get(1))
							if err != nil {
								return err
							}
							return printAccount(c, a)
						})
					},
				},
			},
		}},
	}
}

func withSandbox(c *cli.Context, fn func(ctx context.Context, sc *sandbox.Client) error) error {
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	return fn(ctx, sandbox.NewClient(sandboxURL(c), &http.Client{Timeout: 20 * time.Second}))
}

func printAccount(c *cli.Context, a sandbox.Account) error {
	if jsonOutput(c) {
		return printJSON(c, a)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "account:     %s\n", a.ID)
	fmt.Fprintf(w, "api_key:     %s\n", a.APIKey)
	fmt.Fprintf(w, "scopes:      %s\n", strings.Join(a.Scopes, ","))
	fmt.Fprintf(w, "revoked:     %t\n", a.Revoked)
	fmt.Fprintf(w, "api_enabled: %t\n", a.APIEnabled)
	return nil
}
