package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
)

// commandTimeout bounds one operator command, including a validation
// against the CRM.
const commandTimeout = 90 * time.Second

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
	common = append(common, timerFlags()...)
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
				Flags:     append(common, &cli.StringFlag{Name: "provider", Usage: "the CRM provider, e.g. sandbox (required)"}),
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
	return withSession(c, true, func(ctx context.Context, s *session) error {
		if spec.Kind == integration.KindLead {
			st, token, err := s.starter.CreateLead(ctx, spec, c.String("by"))
			if err != nil {
				return err
			}
			return printWithToken(c, st, token)
		}
		st, err := s.starter.Create(ctx, spec, c.String("by"))
		if err != nil {
			return err
		}
		return printState(c, st)
	})
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
			id, err := oneArg(c, "ID")
			if err != nil {
				return err
			}
			return withSession(c, false, func(ctx context.Context, s *session) error {
				token, err := s.starter.RotateIntakeToken(ctx, id)
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
		Usage:     "store credentials for a CRM integration and validate them now",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "credentials-file", Usage: "JSON credentials, e.g. {\"api_key\": \"...\"} for sandbox; - reads stdin (required)"},
			&cli.StringFlag{Name: "by", Value: defaultActor(), Usage: "who is acting"},
		},
		Action: func(c *cli.Context) error {
			id, err := oneArg(c, "ID")
			if err != nil {
				return err
			}
			path, err := requireFlag(c, "credentials-file")
			if err != nil {
				return err
			}
			raw, err := readCredentials(c, path)
			if err != nil {
				return err
			}
			return withSession(c, true, func(ctx context.Context, s *session) error {
				st, err := s.starter.Authorize(ctx, id, raw, c.String("by"))
				if err != nil {
					return err
				}
				return printState(c, st)
			})
		},
	}
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
			id, err := oneArg(c, "ID")
			if err != nil {
				return err
			}
			return withSession(c, true, func(ctx context.Context, s *session) error {
				st, err := s.starter.Command(ctx, id, event, c.String("by"), c.String("note"))
				if err != nil {
					return err
				}
				return printState(c, st)
			})
		},
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show an integration (from the database; --live asks its workflow)",
		ArgsUsage: "ID",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "live", Usage: "query the running workflow instead of the database"}},
		Action: func(c *cli.Context) error {
			id, err := oneArg(c, "ID")
			if err != nil {
				return err
			}
			live := c.Bool("live")
			return withSession(c, live, func(ctx context.Context, s *session) error {
				if !live {
					st, err := s.starter.Status(ctx, id)
					if err != nil {
						return err
					}
					v, err := s.starter.ViewOf(ctx, st)
					if err != nil {
						return err
					}
					if jsonOutput(c) {
						return printJSON(c, v)
					}
					printText(c.App.Writer, st)
					printSync(c.App.Writer, v)
					return nil
				}
				snap, err := s.starter.Live(ctx, id)
				if err != nil {
					return err
				}
				if jsonOutput(c) {
					return printJSON(c, struct {
						integration.View
						ProjectedVersion int64      `json:"projected_version"`
						PendingMessages  int        `json:"pending_messages"`
						NextValidationAt *time.Time `json:"next_validation_at,omitempty"`
						Run              int        `json:"run"`
					}{integration.NewView(snap.State), snap.ProjectedVersion, snap.PendingMessages, snap.NextValidationAt, snap.Run})
				}
				if err := printState(c, snap.State); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "workflow: run %d, projected version %d, %d pending message(s)", snap.Run, snap.ProjectedVersion, snap.PendingMessages)
				if snap.NextValidationAt != nil {
					fmt.Fprintf(c.App.Writer, ", next validation %s", snap.NextValidationAt.UTC().Format(time.RFC3339))
				}
				fmt.Fprintln(c.App.Writer)
				return nil
			})
		},
	}
}

func listCommand() *cli.Command {
	return &cli.Command{
		Name:      "list",
		Usage:     "list integrations",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "org", Usage: "only this org"},
			&cli.StringFlag{Name: "kind", Usage: "lead or crm"},
			&cli.StringFlag{Name: "status", Usage: "setup_incomplete, active, failed_sync, paused or deleted"},
			&cli.IntFlag{Name: "limit", Value: 100, Usage: "at most this many (1-1000)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("list takes no arguments (got %q)", c.Args().First())
			}
			f := store.ListFilter{OrgID: c.String("org"), Limit: c.Int("limit")}
			if v := c.String("kind"); v != "" {
				k, err := integration.ParseKind(v)
				if err != nil {
					return usagef("%v", err)
				}
				f.Kind = k
			}
			if v := c.String("status"); v != "" {
				st, err := integration.ParseStatus(v)
				if err != nil {
					return usagef("%v", err)
				}
				f.Status = st
			}
			if f.Limit < 1 || f.Limit > 1000 {
				return usagef("--limit must be between 1 and 1000")
			}
			return withSession(c, false, func(ctx context.Context, s *session) error {
				states, err := s.store.List(ctx, f)
				if err != nil {
					return fmt.Errorf("list: %w", err)
				}
				if jsonOutput(c) {
					views := make([]integration.View, 0, len(states))
					for _, st := range states {
						views = append(views, integration.NewView(st))
					}
					return printJSON(c, views)
				}
				printTable(c.App.Writer, states)
				return nil
			})
		},
	}
}

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:      "events",
		Usage:     "show an integration's transition history",
		ArgsUsage: "ID",
		Action: func(c *cli.Context) error {
			id, err := oneArg(c, "ID")
			if err != nil {
				return err
			}
			return withSession(c, false, func(ctx context.Context, s *session) error {
				if _, err := s.starter.Status(ctx, id); err != nil {
					return err
				}
				changes, err := s.store.Events(ctx, id)
				if err != nil {
					return fmt.Errorf("events of %s: %w", id, err)
				}
				if jsonOutput(c) {
					if changes == nil {
						changes = []integration.Change{}
					}
					return printJSON(c, changes)
				}
				printEvents(c.App.Writer, changes)
				return nil
			})
		},
	}
}

func sendLeadCommand() *cli.Command {
	return &cli.Command{
		Name:      "send-lead",
		Usage:     "send a lead to a lead integration, through the same intake as the HTTP API (no token needed here)",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "source", Usage: "the lead's source value (required; compared byte for byte)"},
			&cli.StringFlag{Name: "external-id", Usage: "the partner's lead ID (default: generated); a repeated one is a duplicate"},
			&cli.StringFlag{Name: "name", Usage: "contact name"},
			&cli.StringFlag{Name: "email", Usage: "contact email"},
			&cli.StringFlag{Name: "phone", Usage: "contact phone"},
			&cli.StringFlag{Name: "message", Usage: "the lead's message"},
		},
		Action: func(c *cli.Context) error {
			id, err := oneArg(c, "ID")
			if err != nil {
				return err
			}
			// An explicitly empty --source is wrong, but a source of spaces
			// is a legitimate (mismatching) value.
			if !c.IsSet("source") || c.String("source") == "" {
				return usagef("send-lead needs --source")
			}
			lead := starter.Lead{
				ExternalID: c.String("external-id"), Source: c.String("source"), Name: c.String("name"),
				Email: c.String("email"), Phone: c.String("phone"), Message: c.String("message"),
			}
			if lead.ExternalID == "" {
				lead.ExternalID = fmt.Sprintf("cli-%d", time.Now().UnixNano())
			}
			return withSession(c, true, func(ctx context.Context, s *session) error {
				out, err := s.starter.Intake(ctx, id, lead)
				if err != nil {
					return err
				}
				if jsonOutput(c) {
					return printJSON(c, struct {
						integration.View
						Lead starter.IntakeOutcome `json:"lead"`
					}{integration.NewView(out.State), out})
				}
				switch {
				case out.Duplicate:
					fmt.Fprintf(c.App.Writer, "duplicate of lead %d (external id %q): nothing stored\n", out.LeadID, lead.ExternalID)
				default:
					fmt.Fprintf(c.App.Writer, "lead %d accepted, queued for %d CRM integration(s)\n", out.LeadID, out.Routed)
				}
				printText(c.App.Writer, out.State)
				return nil
			})
		},
	}
}

// printSync shows a CRM integration's delivery health.
func printSync(w io.Writer, v integration.View) {
	if v.Sync == nil {
		return
	}
	sv := v.Sync
	if sv.Pending != nil {
		fmt.Fprintf(w, "  leads:     %d delivered, %d rejected, %d pending\n", *sv.Delivered, *sv.Rejected, *sv.Pending)
	}
	if sv.LastSuccessAt != nil {
		fmt.Fprintf(w, "  last sync: %s\n", sv.LastSuccessAt.UTC().Format(time.RFC3339))
	}
	if sv.ConsecutiveFailures > 0 {
		fmt.Fprintf(w, "  failing:   %d consecutive failure(s) since %s: %s\n", sv.ConsecutiveFailures, sv.FailingSince.UTC().Format(time.RFC3339), sv.LastError)
		if sv.NextAttemptAt != nil {
			fmt.Fprintf(w, "  retry at:  %s\n", sv.NextAttemptAt.UTC().Format(time.RFC3339))
		}
	}
}

// withSession opens a session with a command timeout and runs fn.
func withSession(c *cli.Context, withTemporal bool, fn func(ctx context.Context, s *session) error) error {
	ctx, cancel := context.WithTimeout(c.Context, commandTimeout)
	defer cancel()
	s, err := openSession(c, withTemporal)
	if err != nil {
		return err
	}
	defer s.close()
	return fn(ctx, s)
}

func printState(c *cli.Context, st integration.State) error {
	if jsonOutput(c) {
		return printJSON(c, integration.NewView(st))
	}
	printText(c.App.Writer, st)
	return nil
}

func printText(w io.Writer, s integration.State) {
	title := s.ID
	if s.Name != "" {
		title += " (" + s.Name + ")"
	}
	fmt.Fprintf(w, "%s\n", title)
	fmt.Fprintf(w, "  kind:      %s, %s, org %s\n", s.Kind, s.Provider, s.OrgID)
	status := string(s.Status)
	if s.Reason != "" {
		status += " (" + string(s.Reason) + ")"
	}
	if s.NeedsAttention {
		status += " [needs attention]"
	}
	if s.Abandoned {
		status += " [abandoned]"
	}
	fmt.Fprintf(w, "  status:    %s\n", status)
	fmt.Fprintf(w, "  version:   %d, updated %s\n", s.Version, s.UpdatedAt.UTC().Format(time.RFC3339))
	if s.Kind == integration.KindLead {
		last := s.LastReceivedSource
		if last == "" {
			last = "(none yet)"
		} else {
			last = fmt.Sprintf("%q", last)
		}
		fmt.Fprintf(w, "  source:    expected %q, last received %s\n", s.ExpectedSource, last)
	}
	fmt.Fprintf(w, "  setup:\n")
	for _, step := range s.Setup {
		mark, at := "[ ]", ""
		if step.Done {
			mark = "[x]"
			if step.At != nil {
				at = "  " + step.At.UTC().Format(time.RFC3339)
			}
		}
		fmt.Fprintf(w, "    %s %s%s\n", mark, step.Name, at)
	}
	if s.Validation != nil {
		at := ""
		if s.Validation.At != nil {
			at = " (since " + s.Validation.At.UTC().Format(time.RFC3339) + ")"
		}
		fmt.Fprintf(w, "  validation%s:\n", at)
		for _, ch := range s.Validation.Checks {
			if ch.OK {
				fmt.Fprintf(w, "    ok   %s\n", ch.Name)
				continue
			}
			code := ""
			if ch.Code != "" {
				code = " [" + string(ch.Code) + "]"
			}
			fmt.Fprintf(w, "    FAIL %s%s: %s\n", ch.Name, code, ch.Message)
			if ch.Remediation != "" {
				fmt.Fprintf(w, "         fix: %s\n", ch.Remediation)
			}
		}
	}
}

func printTable(w io.Writer, states []integration.State) {
	fmt.Fprintf(w, "%-24s %-5s %-12s %-12s %-18s %-26s %s\n", "ID", "KIND", "ORG", "PROVIDER", "STATUS", "REASON", "VERSION")
	for _, s := range states {
		fmt.Fprintf(w, "%-24s %-5s %-12s %-12s %-18s %-26s %d\n", s.ID, s.Kind, s.OrgID, s.Provider, s.Status, s.Reason, s.Version)
	}
	if len(states) == 0 {
		fmt.Fprintln(w, "(no integrations)")
	}
}

func printEvents(w io.Writer, changes []integration.Change) {
	for _, ch := range changes {
		from := "-"
		if ch.FromStatus != "" {
			from = statusText(ch.FromStatus, ch.FromReason)
		}
		line := fmt.Sprintf("v%-4d %s  %-20s %s -> %s", ch.Version, ch.At.UTC().Format(time.RFC3339), ch.Event, from, statusText(ch.ToStatus, ch.ToReason))
		if ch.Actor != "" {
			line += "  by " + ch.Actor
		}
		if ch.Note != "" {
			line += "  note: " + strings.ReplaceAll(ch.Note, "\n", " ")
		}
		fmt.Fprintln(w, line)
	}
}

func statusText(s integration.Status, r integration.Reason) string {
	if r == "" {
		return string(s)
	}
	return string(s) + "/" + string(r)
}
