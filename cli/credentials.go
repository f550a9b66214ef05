package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/credential"
	"github.com/acme/integrations/starter"
)

func credentialsCommand() *cli.Command {
	return &cli.Command{
		Name:  "credentials",
		Usage: "manage the stored CRM credentials as a whole",
		Subcommands: []*cli.Command{{
			Name: "rewrap",
			Usage: "re-seal every stored credential with the active key (" + credential.KeyEnv + "), opening them with it or the keys in " +
				credential.OldKeysEnv + "; afterwards the old keys can go. Safe to run again",
			Action: func(c *cli.Context) error {
				if c.NArg() > 0 {
					return usagef("credentials rewrap takes no arguments")
				}
				return withService(c, func(ctx context.Context, svc *app.Service) error {
					report, err := svc.Starter.RewrapCredentials(ctx)
					if err != nil && !errors.Is(err, starter.ErrRewrapIncomplete) {
						return err
					}
					if jsonOutput(c) {
						if perr := printJSON(c, report); perr != nil {
							return perr
						}
					} else {
						printRewrap(c, report)
					}
					return err
				}, app.WithKeyring())
			},
		}},
	}
}

// printRewrap prints a rewrap report as text: counts and names, never a
// secret.
func printRewrap(c *cli.Context, r starter.RewrapReport) {
	w := c.App.Writer
	fmt.Fprintf(w, "active key %s\nresealed         %d\nalready current  %d\nfailed           %d\n", r.KeyID, r.Resealed, r.AlreadyCurrent, r.Failed)
	if r.Skipped > 0 {
		fmt.Fprintf(w, "changed meanwhile, left alone  %d\n", r.Skipped)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  %s version %d: %s\n", f.IntegrationID, f.Version, f.Error)
	}
}
