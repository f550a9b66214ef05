package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/crm/sandbox/sandboxfake"
)

func sandboxCommand() *cli.Command {
	keyAction := func(name string, op func(ctx context.Context, sc *sandboxfake.Client, key string) (sandboxfake.Account, error)) *cli.Command {
		return &cli.Command{
			Name: name, ArgsUsage: "KEY", Usage: name + " an account's API key",
			Action: func(c *cli.Context) error {
				key, err := oneArg(c, "KEY")
				if err != nil {
					return err
				}
				return withSandbox(c, func(ctx context.Context, sc *sandboxfake.Client) error {
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
		Usage: "drive the sandbox CRM (accounts, keys, scopes, faults, records)",
		Subcommands: []*cli.Command{{
			Name:  "serve",
			Usage: "run the sandbox CRM on its own (dev runs one for you)",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "addr", Value: app.DefaultSandboxAddr, Usage: "listen address"},
				&cli.StringFlag{Name: "state-file", Usage: "keep accounts in this JSON file across restarts (default: in memory)"},
			},
			Action: func(c *cli.Context) error {
				ctx, stop := signalContext(c)
				defer stop()
				srv, err := sandboxfake.NewServer(c.String("state-file"))
				if err != nil {
					return err
				}
				logger := processLogger(c)
				httpServer, err := app.ServeHTTP(c.String("addr"), srv.Handler(), logger)
				if err != nil {
					return err
				}
				logger.Info("sandbox CRM listening", "addr", httpServer.Addr)
				<-ctx.Done()
				httpServer.Stop()
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
						return withSandbox(c, func(ctx context.Context, sc *sandboxfake.Client) error {
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
				keyAction("revoke", func(ctx context.Context, sc *sandboxfake.Client, key string) (sandboxfake.Account, error) {
					return sc.Revoke(ctx, key)
				}),
				keyAction("restore", func(ctx context.Context, sc *sandboxfake.Client, key string) (sandboxfake.Account, error) {
					return sc.Restore(ctx, key)
				}),
				keyAction("disable-api", func(ctx context.Context, sc *sandboxfake.Client, key string) (sandboxfake.Account, error) {
					return sc.DisableAPI(ctx, key)
				}),
				keyAction("enable-api", func(ctx context.Context, sc *sandboxfake.Client, key string) (sandboxfake.Account, error) {
					return sc.EnableAPI(ctx, key)
				}),
				{
					Name: "drop-scope", Usage: "remove a scope from an account", ArgsUsage: "KEY SCOPE",
					Action: func(c *cli.Context) error {
						if c.NArg() != 2 {
							return usagef("sandbox account drop-scope takes two arguments, KEY and SCOPE (got %d)", c.NArg())
						}
						return withSandbox(c, func(ctx context.Context, sc *sandboxfake.Client) error {
							a, err := sc.DropScope(ctx, c.Args().Get(0), c.Args().Get(1))
							if err != nil {
								return err
							}
							return printAccount(c, a)
						})
					},
				},
			},
		}, sandboxFaultCommand(), sandboxRecordsCommand()},
	}
}

// sandboxFaultCommand is `sandbox fault KEY [flags]`: it merges the given
// flags into the account's faults (flags not given keep their value) and
// prints the result; with no flags it only prints them.
func sandboxFaultCommand() *cli.Command {
	return &cli.Command{
		Name:      "fault",
		Usage:     "make the sandbox misbehave for one API key's lead pushes (validation is never affected)",
		ArgsUsage: "KEY",
		Description: "Flags merge into the key's current faults; flags not given keep their value. With no flags, prints the current faults.\n" +
			"Examples:\n" +
			"  integrations sandbox fault KEY --fail-next 5 --status 503   # the next 5 pushes fail with 503\n" +
			"  integrations sandbox fault KEY --rate-limit-next 3 --retry-after 2s\n" +
			"  integrations sandbox fault KEY --reject-field email --reject-contains blocked\n" +
			"  integrations sandbox fault KEY --refuse-field email --refuse-contains huge   # refuse whole batches carrying such a record (400)\n" +
			"  integrations sandbox fault KEY --clear",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "fail-next", DefaultText: "unchanged", Usage: "fail the next N pushes (0 ends a failure run)"},
			&cli.IntFlag{Name: "status", DefaultText: "unchanged; 503 on a fresh or cleared key", Usage: "HTTP status of failed pushes, 400-599"},
			&cli.DurationFlag{Name: "latency", DefaultText: "unchanged", Usage: "delay every push by this much, e.g. 200ms (0 for none)"},
			&cli.IntFlag{Name: "rate-limit-next", DefaultText: "unchanged", Usage: "answer the next N pushes with 429 (used up before --fail-next)"},
			&cli.DurationFlag{Name: "retry-after", DefaultText: "unchanged; 1s on a fresh or cleared key", Usage: "Retry-After of a 429 in whole seconds, e.g. 2s (0 sends no header)"},
			&cli.StringFlag{Name: "reject-field", Usage: "reject records whose FIELD (source, name, email, phone, message) contains --reject-contains; \"\" removes the rule"},
			&cli.StringFlag{Name: "reject-contains", Usage: "text (case-sensitive) that makes --reject-field reject a record"},
			&cli.StringFlag{Name: "refuse-field", Usage: "refuse, as a whole, every push carrying a record whose FIELD (source, name, email, phone, message) contains --refuse-contains; \"\" removes the rule"},
			&cli.StringFlag{Name: "refuse-contains", Usage: "text (case-sensitive) that makes --refuse-field refuse a push"},
			&cli.IntFlag{Name: "refuse-status", DefaultText: "unchanged; 400 on a fresh or cleared key", Usage: "HTTP status of a refused push, 400-599 (a 5xx fails just the pushes that carry the record)"},
			&cli.BoolFlag{Name: "clear", Usage: "remove every fault first (other flags then apply on a clean slate)"},
		},
		Action: func(c *cli.Context) error {
			key, err := oneArg(c, "KEY")
			if err != nil {
				return err
			}
			update, changes, err := faultsUpdateFromFlags(c)
			if err != nil {
				return err
			}
			return withSandbox(c, func(ctx context.Context, sc *sandboxfake.Client) error {
				if c.Bool("clear") {
					if err := sc.ClearFaults(ctx, key); err != nil {
						return err
					}
				}
				var f sandboxfake.Faults
				if changes {
					f, err = sc.UpdateFaults(ctx, key, update)
				} else {
					f, err = sc.Faults(ctx, key)
				}
				if err != nil {
					return err
				}
				return printFaults(c, f)
			})
		},
	}
}

// faultsUpdateFromFlags turns the fault flags given into a FaultsUpdate;
// changes is false when no fault flag was given. Flag values are checked
// here so that mistakes are usage errors; the sandbox checks them again.
func faultsUpdateFromFlags(c *cli.Context) (u sandboxfake.FaultsUpdate, changes bool, err error) {
	count := func(name string) (*int, error) {
		if !c.IsSet(name) {
			return nil, nil
		}
		v := c.Int(name)
		if v < 0 {
			return nil, usagef("--%s must be 0 or more, not %d", name, v)
		}
		changes = true
		return &v, nil
	}
	if u.FailNext, err = count("fail-next"); err != nil {
		return u, false, err
	}
	if u.RateLimitNext, err = count("rate-limit-next"); err != nil {
		return u, false, err
	}
	if c.IsSet("status") {
		v := c.Int("status")
		if v < 400 || v > 599 {
			return u, false, usagef("--status must be an HTTP error status from 400 to 599, e.g. 503, not %d", v)
		}
		u.FailStatus, changes = &v, true
	}
	if c.IsSet("latency") {
		d := c.Duration("latency")
		if d < 0 || d%time.Millisecond != 0 {
			return u, false, usagef("--latency must be 0 or more whole milliseconds, e.g. 200ms, not %s", d)
		}
		ms := int(d / time.Millisecond)
		u.LatencyMS, changes = &ms, true
	}
	if c.IsSet("retry-after") {
		d := c.Duration("retry-after")
		if d < 0 || d%time.Second != 0 {
			return u, false, usagef("--retry-after must be 0 or more whole seconds, e.g. 2s, not %s (Retry-After has no fractions)", d)
		}
		secs := int(d / time.Second)
		u.RetryAfterSeconds, changes = &secs, true
	}
	if c.IsSet("reject-field") {
		v := c.String("reject-field")
		if v != "" && !slices.Contains(sandboxfake.RejectFields(), v) {
			return u, false, usagef("--reject-field must be one of %s (or \"\" to remove the rule), not %q", strings.Join(sandboxfake.RejectFields(), ", "), v)
		}
		u.RejectField, changes = &v, true
	}
	if c.IsSet("reject-contains") {
		v := c.String("reject-contains")
		if v == "" {
			return u, false, usagef("--reject-contains is empty: give the text that marks a record to reject, or remove the rule with --reject-field \"\"")
		}
		u.RejectContains, changes = &v, true
	}
	if u.RejectField != nil && *u.RejectField != "" && u.RejectContains == nil {
		return u, false, usagef("--reject-field %s needs --reject-contains TEXT", *u.RejectField)
	}
	if c.IsSet("refuse-field") {
		v := c.String("refuse-field")
		if v != "" && !slices.Contains(sandboxfake.RejectFields(), v) {
			return u, false, usagef("--refuse-field must be one of %s (or \"\" to remove the rule), not %q", strings.Join(sandboxfake.RejectFields(), ", "), v)
		}
		u.RefuseField, changes = &v, true
	}
	if c.IsSet("refuse-contains") {
		v := c.String("refuse-contains")
		if v == "" {
			return u, false, usagef("--refuse-contains is empty: give the text that marks a record whose pushes to refuse, or remove the rule with --refuse-field \"\"")
		}
		u.RefuseContains, changes = &v, true
	}
	if u.RefuseField != nil && *u.RefuseField != "" && u.RefuseContains == nil {
		return u, false, usagef("--refuse-field %s needs --refuse-contains TEXT", *u.RefuseField)
	}
	if c.IsSet("refuse-status") {
		v := c.Int("refuse-status")
		if v < 400 || v > 599 {
			return u, false, usagef("--refuse-status must be an HTTP error status from 400 to 599, e.g. 400 or 413, not %d", v)
		}
		u.RefuseStatus, changes = &v, true
	}
	return u, changes, nil
}

func printFaults(c *cli.Context, f sandboxfake.Faults) error {
	if jsonOutput(c) {
		return printJSON(c, f)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "fail_next:       %d\n", f.FailNext)
	fmt.Fprintf(w, "fail_status:     %d\n", f.FailStatus)
	fmt.Fprintf(w, "latency:         %s\n", time.Duration(f.LatencyMS)*time.Millisecond)
	fmt.Fprintf(w, "rate_limit_next: %d\n", f.RateLimitNext)
	fmt.Fprintf(w, "retry_after:     %s\n", time.Duration(f.RetryAfterSeconds)*time.Second)
	rule := "none"
	if f.RejectField != "" {
		rule = fmt.Sprintf("%s contains %q", f.RejectField, f.RejectContains)
	}
	fmt.Fprintf(w, "reject_rule:     %s\n", rule)
	rule = "none"
	if f.RefuseField != "" {
		rule = fmt.Sprintf("%s contains %q (HTTP %d)", f.RefuseField, f.RefuseContains, f.RefuseStatus)
	}
	fmt.Fprintf(w, "refuse_rule:     %s\n", rule)
	return nil
}

// sandboxRecordsCommand is `sandbox records KEY`: how many leads the
// account holds and how often they were upserted, for exactly-once checks.
func sandboxRecordsCommand() *cli.Command {
	return &cli.Command{
		Name:      "records",
		Usage:     "count the records an API key's account holds (--output json adds upserts per lead)",
		ArgsUsage: "KEY",
		Action: func(c *cli.Context) error {
			key, err := oneArg(c, "KEY")
			if err != nil {
				return err
			}
			return withSandbox(c, func(ctx context.Context, sc *sandboxfake.Client) error {
				st, err := sc.Records(ctx, key)
				if err != nil {
					return err
				}
				if jsonOutput(c) {
					return printJSON(c, st)
				}
				repeated := 0
				for _, n := range st.ByKey {
					if n > 1 {
						repeated++
					}
				}
				w := c.App.Writer
				fmt.Fprintf(w, "records:                 %d\n", st.Records)
				fmt.Fprintf(w, "upserts:                 %d\n", st.Upserts)
				fmt.Fprintf(w, "upserted_more_than_once: %d\n", repeated)
				return nil
			})
		},
	}
}

// withSandbox runs fn with a control client of the configured sandbox CRM.
func withSandbox(c *cli.Context, fn func(ctx context.Context, sc *sandboxfake.Client) error) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	return fn(ctx, sandboxfake.NewClient(cfg.SandboxURL, &http.Client{Timeout: 20 * time.Second}))
}

func printAccount(c *cli.Context, a sandboxfake.Account) error {
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
