package cli

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/api"
	"github.com/acme/integrations/app"
	"github.com/acme/integrations/crm/hubspot/hubspotfake"
)

// hubspotActions are the controls of the fake HubSpot, at the HubSpot
// connector's API URL (the dev stack's fake).
func hubspotActions() []fakeAction {
	client := func(cfg app.Config) *hubspotfake.Client { return hubspotfake.NewClient(cfg.HubSpot.APIURL, fakeHTTP) }
	hub := func(arg string) (int64, error) {
		n, err := strconv.ParseInt(arg, 10, 64)
		if err != nil || n <= 0 {
			return 0, usagef("%q is not a hub ID: give the number `fake hubspot create-portal` printed", arg)
		}
		return n, nil
	}
	onPortal := func(name, usage string, op func(ctx context.Context, hc *hubspotfake.Client, hub int64) (any, error)) fakeAction {
		return fakeAction{name: name, usage: usage, args: []string{"HUB"},
			run: func(ctx context.Context, _ *cli.Context, cfg app.Config, args []string) (any, error) {
				h, err := hub(args[0])
				if err != nil {
					return nil, err
				}
				return op(ctx, client(cfg), h)
			}}
	}
	onScope := func(name, usage string, op func(ctx context.Context, hc *hubspotfake.Client, hub int64, scope string) (hubspotfake.Account, error)) fakeAction {
		return fakeAction{name: name, usage: usage, args: []string{"HUB", "SCOPE"},
			run: func(ctx context.Context, _ *cli.Context, cfg app.Config, args []string) (any, error) {
				h, err := hub(args[0])
				if err != nil {
					return nil, err
				}
				return op(ctx, client(cfg), h, args[1])
			}}
	}
	return []fakeAction{
		{name: "create-portal", usage: "create a portal (account) with a private-app token, or one that connects through OAuth (--oauth); prints its hub ID",
			flags: []cli.Flag{
				&cli.StringFlag{Name: "scopes", Usage: "comma-separated scopes (default: contacts and contact properties, read and write)"},
				&cli.BoolFlag{Name: "oauth", Usage: "a portal that installs the app through the consent page (see consent --portal)"},
				&cli.StringFlag{Name: "credentials-out", Usage: `write {"access_token": "<the private-app token>"} to this file (mode 0600)`},
			},
			run: func(ctx context.Context, c *cli.Context, cfg app.Config, _ []string) (any, error) {
				var req hubspotfake.CreateAccountRequest
				if c.Bool("oauth") {
					if c.IsSet("credentials-out") {
						return nil, usagef("an OAuth portal has no private-app token: its credentials come from the consent (integrations authorize ID --oauth)")
					}
					if cfg.PublicURL == "" {
						return nil, usagef("no public URL for the OAuth callback: run this against the dev stack (its dev.json in --data-dir), or set INTEGRATIONS_PUBLIC_URL")
					}
					// The fake answers an OAuth portal with a code for this
					// callback; nothing exchanges it: the consent page
					// gives the integration its own.
					req.OAuth, req.RedirectURI = true, strings.TrimRight(cfg.PublicURL, "/")+api.OAuthCallbackPath
				}
				if c.IsSet("scopes") {
					req.Scopes = strings.FieldsFunc(c.String("scopes"), func(r rune) bool { return r == ',' })
				}
				acct, err := client(cfg).CreateAccount(ctx, req)
				if err != nil {
					return nil, err
				}
				if path := c.String("credentials-out"); path != "" {
					doc, _ := json.Marshal(map[string]string{"access_token": acct.PrivateAppToken})
					if err := os.WriteFile(path, doc, 0o600); err != nil {
						return nil, err
					}
				}
				if jsonOutput(c) {
					return acct, nil
				}
				return strconv.FormatInt(acct.HubID, 10), nil
			}},
		onPortal("show", "show a portal", func(ctx context.Context, hc *hubspotfake.Client, h int64) (any, error) { return hc.Account(ctx, h) }),
		{name: "consent", usage: "play the customer on HubSpot's consent page of `authorize --oauth` and follow it back to the callback",
			args:  []string{"URL"},
			flags: []cli.Flag{&cli.Int64Flag{Name: "portal", Usage: "consent for this portal (default: a new one)"}},
			run: func(ctx context.Context, c *cli.Context, cfg app.Config, args []string) (any, error) {
				redirect, err := client(cfg).Consent(ctx, args[0], c.Int64("portal"))
				if err != nil {
					return nil, err
				}
				return followCallback(ctx, redirect)
			}},
		onPortal("revoke", "uninstall the app / delete the token: its calls fail and refreshes are refused",
			func(ctx context.Context, hc *hubspotfake.Client, h int64) (any, error) { return hc.Revoke(ctx, h) }),
		onPortal("restore", "undo revoke", func(ctx context.Context, hc *hubspotfake.Client, h int64) (any, error) { return hc.Restore(ctx, h) }),
		onPortal("expire-tokens", "make the portal's OAuth access tokens expire now (the grant stays valid)",
			func(ctx context.Context, hc *hubspotfake.Client, h int64) (any, error) {
				return "access tokens expired", hc.ExpireTokens(ctx, h)
			}),
		onScope("drop-scope", "remove a scope from the portal's grant or token", func(ctx context.Context, hc *hubspotfake.Client, h int64, s string) (hubspotfake.Account, error) {
			return hc.DropScope(ctx, h, s)
		}),
		onScope("add-scope", "give the portal's grant or token a scope", func(ctx context.Context, hc *hubspotfake.Client, h int64, s string) (hubspotfake.Account, error) {
			return hc.AddScope(ctx, h, s)
		}),
		onPortal("records", "the contacts the portal holds, by our lead key", func(ctx context.Context, hc *hubspotfake.Client, h int64) (any, error) {
			return hc.Records(ctx, h)
		}),
	}
}
