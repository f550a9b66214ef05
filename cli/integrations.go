package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/workflows"
)

func byFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "by", Value: defaultActor(), Usage: "who is acting (recorded in the event history)"},
		&cli.StringFlag{Name: "note", Usage: "why (recorded in the event history)"},
	}
}

func defaultActor() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "cli"
}

func createCommand() *cli.Command {
	common := []cli.Flag{
		&cli.StringFlag{Name: "org", Usage: "the customer org (required)"},
		&cli.StringFlag{Name: "id", Usage: "integration id (default: generated)"},
		&cli.StringFlag{Name: "name", Usage: "display name"},
		&cli.StringFlag{Name: "by", Value: defaultActor(), Usage: "who is acting"},
	}
	common = append(common, overrideFlags()...)
	return &cli.Command{
		Name:  "create",
		Usage: "create a lead or CRM integration",
		Subcommands: []*cli.Command{
			{
				Name:      "lead",
				Usage:     "create a lead integration: a partner sends leads with the expected source value",
				ArgsUsage: " ",
				Flags: append(common,
					&cli.StringFlag{Name: "partner", Usage: "the lead partner's name (required)"},
					&cli.StringFlag{Name: "expected-source", Usage: "the exact source value the partner's test lead must carry (required)"},
				),
				Action: func(c *cli.Context) error {
					partner, err := requireFlag(c, "partner")
					if err != nil {
						return err
					}
					source, err := requireFlag(c, "expected-source")
					if err != nil {
						return err
					}
					return create(c, integration.Spec{Kind: integration.KindLead, Provider: partner, ExpectedSource: source})
				},
			},
			{
				Name:      "crm",
				Usage:     "create a CRM integration: we push the org's leads into its CRM",
				ArgsUsage: " ",
				Flags:     append(common, &cli.StringFlag{Name: "provider", Usage: "the CRM provider: hubspot, salesforce, followupboss or sandbox (required)"}),
				Action: func(c *cli.Context) error {
					provider, err := requireFlag(c, "provider")
					if err != nil {
						return err
					}
					return create(c, integration.Spec{Kind: integration.KindCRM, Provider: provider})
				},
			},
		},
	}
}

func create(c *cli.Context, spec integration.Spec) error {
	if c.NArg() > 0 {
		return usagef("%s takes no arguments (got %q)", c.Command.FullName(), c.Args().First())
	}
	org, err := requireFlag(c, "org")
	if err != nil {
		return err
	}
	spec.OrgID, spec.Name, spec.ID = org, c.String("name"), c.String("id")
	if spec.ID == "" {
		spec.ID = fmt.Sprintf("%s-%d", spec.Kind, time.Now().UnixNano()/int64(time.Millisecond))
	}
	if err := integration.ValidateID("integration id", spec.ID); err != nil {
		return usagef("%v", err)
	}
	if err := integration.ValidateID("org id", spec.OrgID); err != nil {
		return usagef("%v", err)
	}
	return withService(c, func(ctx context.Context, svc *app.Service) error {
		svc.Starter.Config = overrides(c)
		if spec.Kind == integration.KindLead {
			st, token, err := svc.Starter.CreateLead(ctx, spec, c.String("by"))
			if err != nil {
				return err
			}
			return printWithToken(c, st, token)
		}
		st, err := svc.Starter.Create(ctx, spec, c.String("by"))
		if err != nil {
			return err
		}
		return printState(c, st)
	}, app.WithTemporal())
}

// overrideFlags are the per-integration overrides of the worker policy
// that `create` takes. They have no environment fallback: the environment
// variables of the same settings are the worker's policy (see app).
func overrideFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "validation-interval", Usage: "how often this CRM integration validates (default: the worker's policy, 1h)"},
		&cli.DurationFlag{Name: "setup-reminder-after", Usage: "remind the org when setup is incomplete this long (default: the worker's policy, 72h)"},
		&cli.DurationFlag{Name: "setup-abandon-after", Usage: "flag setup abandoned after this long (default: the worker's policy, 720h)"},
	}
}

// overrides reads create's override flags (zero: the worker's policy).
func overrides(c *cli.Context) workflows.Config {
	return workflows.Config{
		ValidationInterval: c.Duration("validation-interval"),
		ReminderAfter:      c.Duration("setup-reminder-after"),
		AbandonAfter:       c.Duration("setup-abandon-after"),
	}
}

// printWithToken prints a lead integration and its new intake token, which
// is shown this once.
func printWithToken(c *cli.Context, st integration.State, token string) error {
	if jsonOutput(c) {
		return printJSON(c, struct {
			integration.View
			IntakeToken string `json:"intake_token"`
		}{integration.NewView(st), token})
	}
	printText(c.App.Writer, st)
	fmt.Fprintf(c.App.Writer, "  intake:    POST /v1/lead-integrations/%s/leads with header\n", st.ID)
	fmt.Fprintf(c.App.Writer, "             Authorization: Bearer %s\n", token)
	fmt.Fprintf(c.App.Writer, "             (the token is shown only now; `integrations rotate-intake-token %s` issues a new one)\n", st.ID)
	return nil
}

func rotateTokenCommand() *cli.Command {
	return &cli.Command{
		Name:      "rotate-intake-token",
		Usage:     "issue a new intake token for a lead integration (the old one stops working)",
		ArgsUsage: "ID",
		Action: func(c *cli.Context) error {
			return withIntegration(c, func(ctx context.Context, svc *app.Service, id string) error {
				token, err := svc.Starter.RotateIntakeToken(ctx, id)
				if err != nil {
					return err
				}
				if jsonOutput(c) {
					return printJSON(c, map[string]string{"id": id, "intake_token": token})
				}
				fmt.Fprintf(c.App.Writer, "intake token of %s: %s\n(shown only now; the previous token no longer works)\n", id, token)
				return nil
			})
		},
	}
}

func authorizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "authorize",
		Usage:     "give a CRM integration credentials (a file, or the CRM's consent page with --oauth) and validate them now",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "credentials-file", Usage: "JSON credentials, e.g. {\"api_key\": \"...\"} for sandbox; - reads stdin"},
			&cli.BoolFlag{Name: "oauth", Usage: "print the CRM's consent URL instead: the customer opens it and allows access (HubSpot, Salesforce)"},
			&cli.BoolFlag{Name: "sandbox", Usage: "with --oauth: the CRM's test environment (Salesforce sandbox orgs)"},
			&cli.BoolFlag{Name: "url-only", Usage: "with --oauth: print only the consent URL (for scripts)"},
			&cli.StringFlag{Name: "by", Value: defaultActor(), Usage: "who is acting"},
		},
		Action: func(c *cli.Context) error {
			id, err := oneArg(c, "ID")
			if err != nil {
				return err
			}
			if c.Bool("oauth") {
				if c.IsSet("credentials-file") {
					return usagef("authorize takes --credentials-file or --oauth, not both")
				}
				return startOAuth(c, id)
			}
			if c.Bool("sandbox") {
				return usagef("--sandbox goes with --oauth")
			}
			path, err := requireFlag(c, "credentials-file")
			if err != nil {
				return usagef("authorize needs --credentials-file FILE (or --oauth for a CRM that connects through its consent page)")
			}
			raw, err := readCredentials(c, path)
			if err != nil {
				return err
			}
			// Authorize seals the credentials: without the workers' key
			// (WithKeyring) it refuses before storing anything.
			return withService(c, func(ctx context.Context, svc *app.Service) error {
				st, err := svc.Starter.Authorize(ctx, id, raw, c.String("by"))
				if err != nil {
					return err
				}
				return printState(c, st)
			}, app.WithTemporal(), app.WithKeyring())
		},
	}
}

// startOAuth prints the consent URL of an OAuth connect of id.
func startOAuth(c *cli.Context, id string) error {
	return withService(c, func(ctx context.Context, svc *app.Service) error {
		consent, err := svc.Starter.StartOAuth(ctx, id, c.String("by"), c.Bool("sandbox"))
		if err != nil {
			return err
		}
		switch {
		case jsonOutput(c):
			return printJSON(c, consent)
		case c.Bool("url-only"):
			fmt.Fprintln(c.App.Writer, consent.URL)
			return nil
		}
		fmt.Fprintf(c.App.Writer, "open this URL to connect %s (it works once, until %s):\n%s\n", id, consent.ExpiresAt.UTC().Format(time.RFC3339), consent.URL)
		return nil
	})
}

// maxCredentialsBytes bounds a credentials document.
const maxCredentialsBytes = 64 << 10

func readCredentials(c *cli.Context, path string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, usagef("cannot read credentials file: %v", err)
		}
		defer f.Close()
		r = f
	}
	raw, err := io.ReadAll(io.LimitReader(r, maxCredentialsBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	if len(raw) > maxCredentialsBytes {
		return nil, usagef("credentials file is over %d KiB", maxCredentialsBytes>>10)
	}
	return raw, nil
}

func commandCommand(event integration.EventType, usage string) *cli.Command {
	return &cli.Command{
		Name:      string(event),
		Usage:     usage,
		ArgsUsage: "ID",
		Flags:     byFlags(),
		Action: func(c *cli.Context) error {
			return withIntegration(c, func(ctx context.Context, svc *app.Service, id string) error {
				st, err := svc.Starter.Command(ctx, id, event, c.String("by"), c.String("note"))
				if err != nil {
					return err
				}
				return printState(c, st)
			}, app.WithTemporal())
		},
	}
}
