package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/app"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/starter"
	"github.com/acme/integrations/store"
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

func leadsCommand() *cli.Command {
	return &cli.Command{
		Name:  "leads",
		Usage: "the lifecycle of lead PII: erase a person's data, purge what is past its retention",
		Subcommands: []*cli.Command{
			{
				Name: "erase",
				Usage: "erase a person's lead data from every table (leads, their deliveries' texts); pending deliveries of " +
					"their leads are cancelled so no CRM receives an emptied record",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "email", Usage: "the person's email (case of ASCII letters and surrounding spaces ignored)"},
					&cli.StringFlag{Name: "phone", Usage: "the person's phone (matched by its digits: give the country code as the partner sent it)"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usagef("leads erase takes no arguments: give --email E or --phone P")
					}
					if c.IsSet("email") == c.IsSet("phone") {
						return usagef("leads erase needs exactly one of --email E or --phone P: erase each of a person's emails and phones separately")
					}
					contact := store.Contact{Email: c.String("email"), Phone: c.String("phone")}
					return withService(c, func(ctx context.Context, svc *app.Service) error {
						erased, err := svc.Store.EraseContact(ctx, contact, time.Now())
						if errors.Is(err, store.ErrInvalidContact) {
							return usagef("%v", err)
						}
						if err != nil {
							return err
						}
						if jsonOutput(c) {
							return printJSON(c, erased)
						}
						w := c.App.Writer
						fmt.Fprintf(w, "erased the lead data of %d lead(s)\n", erased.Leads)
						fmt.Fprintf(w, "  leads:           %d\n", erased.Leads)
						fmt.Fprintf(w, "  lead_deliveries: %d (%d pending cancelled)\n", erased.Deliveries, erased.Cancelled)
						if erased.InCRMs > 0 {
							fmt.Fprintf(w, "%d delivery(ies) had reached a CRM before: erase those records in the CRM too\n", erased.InCRMs)
						}
						return nil
					})
				},
			},
			{
				Name: "purge",
				Usage: "purge now, as the workers do every INTEGRATIONS_LEAD_PURGE_INTERVAL, the data of leads older than " +
					"INTEGRATIONS_LEAD_RETENTION whose deliveries are all completed",
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usagef("leads purge takes no arguments")
					}
					return withService(c, func(ctx context.Context, svc *app.Service) error {
						purged, err := svc.Purger.RunOnce(ctx)
						if err != nil {
							return err
						}
						if jsonOutput(c) {
							return printJSON(c, purged)
						}
						fmt.Fprintf(c.App.Writer, "purged the lead data of %d lead(s) past the retention of %s; %d delivery text(s) cleared\n",
							purged.Leads, svc.Config.Retention.Leads.String(), purged.Deliveries)
						return nil
					})
				},
			},
		},
	}
}
