package cli

import (
	"context"
	"encoding/json"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/crm/followupboss/followupbossfake"
)

// followUpBossActions are the controls of the fake Follow Up Boss, at the
// Follow Up Boss connector's API URL (the dev stack's fake).
func followUpBossActions() []fakeAction {
	client := func(cfg app.Config) *followupbossfake.Client {
		return followupbossfake.NewClient(cfg.FollowUpBoss.APIURL, fakeHTTP)
	}
	onKey := func(name, usage string, op func(ctx context.Context, fc *followupbossfake.Client, key string) (any, error)) fakeAction {
		return fakeAction{name: name, usage: usage, args: []string{"KEY"},
			run: func(ctx context.Context, _ *cli.Context, cfg app.Config, args []string) (any, error) {
				return op(ctx, client(cfg), args[0])
			}}
	}
	return []fakeAction{
		{name: "create-account", usage: "create an account; prints its owner's API key",
			flags: []cli.Flag{&cli.StringFlag{Name: "credentials-out", Usage: `write {"api_key": "<the key>"} to this file (mode 0600)`}},
			run: func(ctx context.Context, c *cli.Context, cfg app.Config, _ []string) (any, error) {
				acct, err := client(cfg).CreateAccount(ctx)
				if err != nil {
					return nil, err
				}
				if path := c.String("credentials-out"); path != "" {
					doc, _ := json.Marshal(map[string]string{"api_key": acct.APIKey})
					if err := os.WriteFile(path, doc, 0o600); err != nil {
						return nil, err
					}
				}
				if jsonOutput(c) {
					return acct, nil
				}
				return acct.APIKey, nil
			}},
		onKey("show", "show an account", func(ctx context.Context, fc *followupbossfake.Client, key string) (any, error) {
			return fc.Account(ctx, key)
		}),
		onKey("revoke", "delete the API key: its calls answer 401", func(ctx context.Context, fc *followupbossfake.Client, key string) (any, error) {
			return fc.Revoke(ctx, key)
		}),
		onKey("restore", "undo revoke", func(ctx context.Context, fc *followupbossfake.Client, key string) (any, error) {
			return fc.Restore(ctx, key)
		}),
		onKey("lock", "lock the account (its calls answer 403)", func(ctx context.Context, fc *followupbossfake.Client, key string) (any, error) {
			return fc.Lock(ctx, key)
		}),
		onKey("expire", "let the account's subscription expire", func(ctx context.Context, fc *followupbossfake.Client, key string) (any, error) {
			return fc.Expire(ctx, key)
		}),
		onKey("reactivate", "undo lock or expire", func(ctx context.Context, fc *followupbossfake.Client, key string) (any, error) {
			return fc.Reactivate(ctx, key)
		}),
		onKey("records", "the people and events the account holds, by our lead key", func(ctx context.Context, fc *followupbossfake.Client, key string) (any, error) {
			return fc.Records(ctx, key)
		}),
	}
}
