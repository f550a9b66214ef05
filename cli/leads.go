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
			&cli.StringFlag{Name: "name", Usage: "contact name (split into first and last name unless --first-name or --last-name is given)"},
			&cli.StringFlag{Name: "first-name", Usage: "contact first name"},
			&cli.StringFlag{Name: "last-name", Usage: "contact last name"},
			&cli.StringFlag{Name: "company", Usage: "contact company"},
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
				ExternalID: c.String("external-id"), Source: c.String("source"),
				Name: c.String("name"), FirstName: c.String("first-name"), LastName: c.String("last-name"), Company: c.String("company"),
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
						Lead sentLead `json:"lead"`
					}{integration.NewView(out.State), sentLead{out, out.Routed}})
				}
				switch {
				case out.Duplicate:
					fmt.Fprintf(c.App.Writer, "duplicate of lead %s (external id %q): nothing stored\n", out.LeadID, lead.ExternalID)
				default:
					fmt.Fprintf(c.App.Writer, "lead %s accepted, queued for %d CRM integration(s)\n", out.LeadID, out.Routed)
				}
				printText(c.App.Writer, out.State)
				return nil
			}, app.WithTemporal())
		},
	}
}

// sentLead is send-lead's JSON of the lead: what a partner is answered,
// and for the operator how many CRM integrations it was queued for.
type sentLead struct {
	starter.IntakeOutcome
	Routed int `json:"routed"`
}
