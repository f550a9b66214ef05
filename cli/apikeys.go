package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/apikey"
	"github.com/acme/integrations/app"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/store"
)

// apiKeyJSON is an API key as `api-key list --output json` prints it
// (never its hash); create adds the key itself, shown that once.
type apiKeyJSON struct {
	ID        string     `json:"id"`
	OrgID     string     `json:"org_id,omitempty"`
	Admin     bool       `json:"admin"`
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Key       string     `json:"key,omitempty"`
}

func toAPIKeyJSON(k store.APIKey) apiKeyJSON {
	return apiKeyJSON{ID: k.ID, OrgID: k.OrgID, Admin: k.Admin, Name: k.Name, CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
}

func apiKeyCommand() *cli.Command {
	return &cli.Command{
		Name:  "api-key",
		Usage: "issue, list and revoke the keys of the HTTP API (an org's, or an operator's with --admin)",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "issue a key for an org (--org) or an operator (--admin); it is printed once and stored only as a hash",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "org", Usage: "the org whose integrations the key sees and commands"},
					&cli.BoolFlag{Name: "admin", Usage: "an operator's key: every org"},
					&cli.StringFlag{Name: "name", Usage: "who holds the key (recorded as the actor of its commands; required)"},
				},
				Action: createAPIKey,
			},
			{
				Name:      "list",
				Usage:     "list the keys (revoked ones too), never the keys themselves",
				ArgsUsage: " ",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "org", Usage: "only this org's keys"}},
				Action:    listAPIKeys,
			},
			{
				Name:      "revoke",
				Usage:     "make a key stop working at once",
				ArgsUsage: "ID",
				Action:    revokeAPIKey,
			},
		},
	}
}

func createAPIKey(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("api-key create takes no arguments (got %q)", c.Args().First())
	}
	name, err := requireFlag(c, "name")
	if err != nil {
		return err
	}
	spec := apikey.Spec{OrgID: c.String("org"), Admin: c.Bool("admin"), Name: name}
	if err := spec.Validate(); err != nil {
		return usagef("%v", err)
	}
	return withService(c, func(ctx context.Context, svc *app.Service) error {
		k, key, err := apikey.Issue(ctx, svc.Store, spec, time.Now())
		if errors.Is(err, store.ErrNameInUse) {
			return usagef("%v: choose another --name, or revoke that key first (`integrations api-key list`)", err)
		}
		if err != nil {
			return err
		}
		if jsonOutput(c) {
			out := toAPIKeyJSON(k)
			out.Key = key
			return printJSON(c, out)
		}
		scope := "org " + k.OrgID
		if k.Admin {
			scope = "every org (admin)"
		}
		fmt.Fprintf(c.App.Writer, "API key %s for %s, name %s:\n  %s\n", k.ID, scope, k.Name, key)
		fmt.Fprintf(c.App.Writer, "(shown only now; send it as the header Authorization: Bearer <key>; `integrations api-key revoke %s` stops it)\n", k.ID)
		return nil
	})
}

func listAPIKeys(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("api-key list takes no arguments (got %q)", c.Args().First())
	}
	f := store.APIKeyFilter{OrgID: c.String("org")}
	if f.OrgID != "" {
		if err := integration.ValidateID("org id", f.OrgID); err != nil {
			return usagef("%v", err)
		}
	}
	return withService(c, func(ctx context.Context, svc *app.Service) error {
		keys, err := svc.Store.ListAPIKeys(ctx, f)
		if err != nil {
			return err
		}
		if jsonOutput(c) {
			out := make([]apiKeyJSON, 0, len(keys))
			for _, k := range keys {
				out = append(out, toAPIKeyJSON(k))
			}
			return printJSON(c, out)
		}
		tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tORG\tNAME\tCREATED\tREVOKED")
		for _, k := range keys {
			org, revoked := k.OrgID, "-"
			if k.Admin {
				org = "(admin)"
			}
			if k.RevokedAt != nil {
				revoked = k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, org, k.Name, k.CreatedAt.Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	})
}

func revokeAPIKey(c *cli.Context) error {
	id, err := oneArg(c, "ID")
	if err != nil {
		return err
	}
	return withService(c, func(ctx context.Context, svc *app.Service) error {
		k, err := svc.Store.RevokeAPIKey(ctx, id, time.Now())
		if errors.Is(err, store.ErrNotFound) {
			return usagef("no API key has ID %q: see `integrations api-key list`", id)
		}
		if err != nil {
			return err
		}
		if jsonOutput(c) {
			return printJSON(c, toAPIKeyJSON(k))
		}
		fmt.Fprintf(c.App.Writer, "API key %s (%s) is revoked since %s\n", k.ID, k.Name, k.RevokedAt.Format(time.RFC3339))
		return nil
	})
}
