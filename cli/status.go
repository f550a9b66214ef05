package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/store"
)

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
			var opts []app.Option
			if live {
				opts = append(opts, app.WithTemporal())
			}
			return withService(c, func(ctx context.Context, svc *app.Service) error {
				if !live {
					st, err := svc.Starter.Status(ctx, id)
					if err != nil {
						return err
					}
					v, err := svc.Starter.ViewOf(ctx, st)
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
				snap, err := svc.Starter.Live(ctx, id)
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
			}, opts...)
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
			return withService(c, func(ctx context.Context, svc *app.Service) error {
				states, err := svc.Store.List(ctx, f)
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
		Usage:     "show an integration's transition history, a page at a time",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.Int64Flag{Name: "after", Usage: "start after this version (0: from the first)"},
			&cli.IntFlag{Name: "limit", Value: store.DefaultEventLimit, Usage: fmt.Sprintf("at most this many (1-%d)", store.MaxEventLimit)},
		},
		Action: func(c *cli.Context) error {
			f := store.EventFilter{After: c.Int64("after"), Limit: c.Int("limit")}
			if f.After < 0 {
				return usagef("--after must be a version, 0 or more")
			}
			if f.Limit < 1 || f.Limit > store.MaxEventLimit {
				return usagef("--limit must be between 1 and %d", store.MaxEventLimit)
			}
			return withIntegration(c, func(ctx context.Context, svc *app.Service, id string) error {
				if _, err := svc.Starter.Status(ctx, id); err != nil {
					return err
				}
				changes, more, err := svc.Store.EventPage(ctx, id, f)
				if err != nil {
					return fmt.Errorf("events of %s: %w", id, err)
				}
				if jsonOutput(c) {
					return printJSON(c, changes)
				}
				printEvents(c.App.Writer, changes)
				if more {
					fmt.Fprintf(c.App.Writer, "(more: integrations events %s --after %d)\n", id, changes[len(changes)-1].Version)
				}
				return nil
			})
		},
	}
}
