package cli

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/integrations/app"
)

// fakeAction is one control of a fake CRM: `integrations fake CRM NAME ARGS`.
type fakeAction struct {
	name, usage string
	// args names the positional arguments, in order.
	args  []string
	flags []cli.Flag
	// run performs the action and returns what to print (JSON with -o
	// json, else its text form: a string as is, anything else as JSON).
	run func(ctx context.Context, c *cli.Context, cfg app.Config, args []string) (any, error)
}

// fakesCommand is `integrations fake`: the controls of the fake HubSpot,
// Salesforce and Follow Up Boss that `integrations dev` runs (accounts,
// consents, revoked grants, missing permissions, records), so a newcomer
// can take an integration of each through its whole lifecycle without a
// CRM account.
func fakesCommand() *cli.Command {
	return &cli.Command{
		Name:  "fake",
		Usage: "drive the fake CRMs `integrations dev` runs (HubSpot, Salesforce, Follow Up Boss)",
		Subcommands: []*cli.Command{
			fakeCRMCommand("hubspot", "the fake HubSpot (portals by hub ID)", hubspotActions()),
			fakeCRMCommand("salesforce", "the fake Salesforce (orgs by org ID)", salesforceActions()),
			fakeCRMCommand("followupboss", "the fake Follow Up Boss (accounts by API key)", followUpBossActions()),
		},
	}
}

func fakeCRMCommand(name, usage string, actions []fakeAction) *cli.Command {
	cmd := &cli.Command{Name: name, Usage: usage}
	for _, a := range actions {
		cmd.Subcommands = append(cmd.Subcommands, &cli.Command{
			Name: a.name, Usage: a.usage, ArgsUsage: strings.Join(a.args, " "), Flags: a.flags,
			Action: func(c *cli.Context) error {
				if c.NArg() != len(a.args) {
					return usagef("%s takes %d argument(s), %s (got %d)", c.Command.FullName(), len(a.args), strings.Join(a.args, " "), c.NArg())
				}
				cfg, err := loadConfig(c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
				defer cancel()
				out, err := a.run(ctx, c, cfg, c.Args().Slice())
				if err != nil {
					return err
				}
				if s, ok := out.(string); ok && !jsonOutput(c) {
					fmt.Fprintln(c.App.Writer, s)
					return nil
				}
				return printJSON(c, out)
			},
		})
	}
	return cmd
}

// fakeHTTP is the fakes' control clients' HTTP client.
var fakeHTTP = &http.Client{Timeout: 20 * time.Second}

// followCallback opens the URL a fake consent page redirected to (our
// OAuth callback, as the customer's browser would) and returns what the
// page says, as one line of text; a page that says the connect failed is
// an error.
func followCallback(ctx context.Context, redirect *url.URL) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, redirect.String(), nil)
	if err != nil {
		return "", fmt.Errorf("the consent page redirected to an invalid URL: %w", err)
	}
	resp, err := fakeHTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("open the OAuth callback %s://%s%s: %w (is the HTTP API of `integrations dev` up?)", redirect.Scheme, redirect.Host, redirect.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("read the OAuth callback's page: %w", err)
	}
	text := pageText(string(body))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the OAuth callback answered %s: %s", resp.Status, text)
	}
	return text, nil
}

var (
	tagPattern   = regexp.MustCompile(`(?s)<[^>]*>`)
	spacePattern = regexp.MustCompile(`\s+`)
)

// pageText is the visible text of a small HTML page, on one line.
func pageText(page string) string {
	if i := strings.Index(page, "<body>"); i >= 0 {
		page = page[i:]
	}
	// A heading ends like a sentence, so it does not run into the text.
	page = strings.ReplaceAll(page, "</h1>", ":</h1>")
	text := html.UnescapeString(tagPattern.ReplaceAllString(page, " "))
	return strings.TrimSpace(spacePattern.ReplaceAllString(text, " "))
}
