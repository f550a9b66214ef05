package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/starter"
)

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
			return withService(c, func(ctx context.Context, svc *app.Service) error {
				out, err := svc.Starter.Intake(ctx, id, lead)
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
			}, app.WithTemporal())
		},
	}
}
