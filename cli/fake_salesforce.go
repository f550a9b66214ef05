package cli

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/crm/salesforce/salesforcefake"
)

// salesforceActions are the controls of the fake Salesforce, at the
// Salesforce connector's login URL (the dev stack's fake).
func salesforceActions() []fakeAction {
	client := func(cfg app.Config) *salesforcefake.Client {
		return salesforcefake.NewClient(cfg.Salesforce.LoginURL, fakeHTTP)
	}
	onOrg := func(name, usage string, op func(ctx context.Context, sc *salesforcefake.Client, org string) (any, error)) fakeAction {
		return fakeAction{name: name, usage: usage, args: []string{"ORG"},
			run: func(ctx context.Context, _ *cli.Context, cfg app.Config, args []string) (any, error) {
				return op(ctx, client(cfg), args[0])
			}}
	}
	onPermission := func(name, usage string, op func(ctx context.Context, sc *salesforcefake.Client, org, perm string) (salesforcefake.Org, error)) fakeAction {
		return fakeAction{name: name, usage: usage, args: []string{"ORG", "PERMISSION"},
			run: func(ctx context.Context, _ *cli.Context, cfg app.Config, args []string) (any, error) {
				return op(ctx, client(cfg), args[0], args[1])
			}}
	}
	return []fakeAction{
		{name: "create-org", usage: "create an org, with a user whose grants the consent page gives; prints its org ID",
			flags: []cli.Flag{&cli.BoolFlag{Name: "sandbox", Usage: "a sandbox org (logs in at the test login URL)"}},
			run: func(ctx context.Context, c *cli.Context, cfg app.Config, _ []string) (any, error) {
				sandbox := c.Bool("sandbox")
				org, err := client(cfg).CreateOrg(ctx, salesforcefake.OrgUpdate{Sandbox: &sandbox})
				if err != nil {
					return nil, err
				}
				if jsonOutput(c) {
					return org, nil
				}
				return org.ID, nil
			}},
		onOrg("show", "show an org", func(ctx context.Context, sc *salesforcefake.Client, org string) (any, error) { return sc.Org(ctx, org) }),
		{name: "consent", usage: "play the org's user on Salesforce's consent page of `authorize --oauth` and follow it back to the callback",
			args:  []string{"URL"},
			flags: []cli.Flag{&cli.StringFlag{Name: "org", Usage: "consent as this org's user (default: a new org)"}},
			run: func(ctx context.Context, c *cli.Context, cfg app.Config, args []string) (any, error) {
				redirect, err := client(cfg).Consent(ctx, args[0], c.String("org"))
				if err != nil {
					return nil, err
				}
				return followCallback(ctx, redirect)
			}},
		onOrg("revoke", "revoke every grant of the org: tokens stop working, refreshes are refused",
			func(ctx context.Context, sc *salesforcefake.Client, org string) (any, error) {
				return sc.Revoke(ctx, org)
			}),
		onOrg("restore", "undo revoke", func(ctx context.Context, sc *salesforcefake.Client, org string) (any, error) {
			return sc.Restore(ctx, org)
		}),
		onOrg("expire-tokens", "end the org's sessions (access tokens; the grants stay valid)",
			func(ctx context.Context, sc *salesforcefake.Client, org string) (any, error) {
				n, err := sc.ExpireTokens(ctx, org)
				return map[string]int{"expired": n}, err
			}),
		onPermission("drop-permission", "take a Lead permission (Read, Create, Edit) from the org's user",
			func(ctx context.Context, sc *salesforcefake.Client, org, perm string) (salesforcefake.Org, error) {
				return sc.DropPermission(ctx, org, perm)
			}),
		onPermission("add-permission", "give the org's user a Lead permission back",
			func(ctx context.Context, sc *salesforcefake.Client, org, perm string) (salesforcefake.Org, error) {
				return sc.AddPermission(ctx, org, perm)
			}),
		onOrg("disable-api", "turn the org's API off (API_DISABLED_FOR_ORG)",
			func(ctx context.Context, sc *salesforcefake.Client, org string) (any, error) {
				return sc.DisableAPI(ctx, org, true)
			}),
		onOrg("enable-api", "turn the org's API back on",
			func(ctx context.Context, sc *salesforcefake.Client, org string) (any, error) {
				return sc.DisableAPI(ctx, org, false)
			}),
		onOrg("records", "the Leads the org holds, by our lead key", func(ctx context.Context, sc *salesforcefake.Client, org string) (any, error) {
			return sc.Leads(ctx, org)
		}),
	}
}
