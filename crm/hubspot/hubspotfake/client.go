package hubspotfake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/acme/integrations/crm/crmfake"
)

// APIError is an error answer of the control API. Message never contains a
// token.
type APIError = crmfake.APIError

// Client calls the fake's control API (and plays its consent page), for
// tests and the CLI. Its errors never contain a token.
type Client struct {
	control *crmfake.Client
}

// NewClient returns a control client for the fake at baseURL (e.g.
// http://127.0.0.1:8091). A nil httpClient means one with a 10s timeout.
func NewClient(baseURL string, httpClient *http.Client) *Client {
	return &Client{control: crmfake.NewClient(fake, baseURL, httpClient)}
}

// CreateAccount creates an account: with a private-app token, or connected
// through OAuth with a fresh authorization code for req.RedirectURI.
func (c *Client) CreateAccount(ctx context.Context, req CreateAccountRequest) (Account, error) {
	var a Account
	if err := c.control.Do(ctx, http.MethodPost, "/control/accounts", req, &a, "an account"); err != nil {
		return Account{}, fmt.Errorf("create HubSpot fake account: %w", err)
	}
	return a, nil
}

// Account returns the account with hub ID hub.
func (c *Client) Account(ctx context.Context, hub int64) (Account, error) {
	return c.account(ctx, "look up HubSpot fake account", http.MethodGet, hub, "", nil)
}

// Revoke makes the account's token stop working (private app) or
// uninstalls the OAuth app (access tokens and refresh refused).
func (c *Client) Revoke(ctx context.Context, hub int64) (Account, error) {
	return c.account(ctx, "revoke HubSpot fake account", http.MethodPost, hub, "/revoke", nil)
}

// Restore undoes Revoke.
func (c *Client) Restore(ctx context.Context, hub int64) (Account, error) {
	return c.account(ctx, "restore HubSpot fake account", http.MethodPost, hub, "/restore", nil)
}

// DropScope removes scope from the account's app; it fails if the app does
// not have it.
func (c *Client) DropScope(ctx context.Context, hub int64, scope string) (Account, error) {
	return c.account(ctx, "drop HubSpot fake scope", http.MethodPost, hub, "/drop-scope", scopeRequest{Scope: scope})
}

// AddScope grants scope to the account's app.
func (c *Client) AddScope(ctx context.Context, hub int64, scope string) (Account, error) {
	return c.account(ctx, "add HubSpot fake scope", http.MethodPost, hub, "/add-scope", scopeRequest{Scope: scope})
}

// ExpireTokens makes every OAuth access token of the account expire now;
// its refresh token keeps working.
func (c *Client) ExpireTokens(ctx context.Context, hub int64) error {
	_, err := c.account(ctx, "expire HubSpot fake tokens", http.MethodPost, hub, "/expire-tokens", nil)
	return err
}

// CreateProperty creates a contact property on the account, as its admin
// would in HubSpot's settings.
func (c *Client) CreateProperty(ctx context.Context, hub int64, p Property) (Property, error) {
	in := propertyInput{Name: p.Name, Label: p.Label, Type: p.Type, FieldType: p.FieldType, GroupName: p.GroupName,
		Description: p.Description, HasUniqueValue: p.HasUniqueValue}
	var out Property
	if err := c.control.Do(ctx, http.MethodPost, accountPath(hub, "/properties"), in, &out, "a property"); err != nil {
		return Property{}, fmt.Errorf("create HubSpot fake property: %w", err)
	}
	return out, nil
}

// DeleteProperty deletes one of the account's own contact properties.
func (c *Client) DeleteProperty(ctx context.Context, hub int64, name string) error {
	var out map[string]string
	if err := c.control.Do(ctx, http.MethodDelete, accountPath(hub, "/properties/"+url.PathEscape(name)), nil, &out, "an answer"); err != nil {
		return fmt.Errorf("delete HubSpot fake property: %w", err)
	}
	return nil
}

// Faults returns the faults set on the account.
func (c *Client) Faults(ctx context.Context, hub int64) (Faults, error) {
	var f Faults
	if err := c.control.Do(ctx, http.MethodGet, accountPath(hub, "/faults"), nil, &f, "faults"); err != nil {
		return Faults{}, fmt.Errorf("read HubSpot fake faults: %w", err)
	}
	return f, nil
}

// UpdateFaults applies u to the account's faults and returns the result;
// invalid values change nothing.
func (c *Client) UpdateFaults(ctx context.Context, hub int64, u FaultsUpdate) (Faults, error) {
	var f Faults
	if err := c.control.Do(ctx, http.MethodPost, accountPath(hub, "/faults"), u, &f, "faults"); err != nil {
		return Faults{}, fmt.Errorf("set HubSpot fake faults: %w", err)
	}
	return f, nil
}

// ClearFaults removes every fault from the account.
func (c *Client) ClearFaults(ctx context.Context, hub int64) error {
	var f Faults
	if err := c.control.Do(ctx, http.MethodDelete, accountPath(hub, "/faults"), nil, &f, "faults"); err != nil {
		return fmt.Errorf("clear HubSpot fake faults: %w", err)
	}
	return nil
}

// Records reports the contacts the account holds and the upserts per key.
func (c *Client) Records(ctx context.Context, hub int64) (RecordStats, error) {
	var st RecordStats
	if err := c.control.Do(ctx, http.MethodGet, accountPath(hub, "/records"), nil, &st, "record counts"); err != nil {
		return RecordStats{}, fmt.Errorf("read HubSpot fake records: %w", err)
	}
	return st, nil
}

// Contact returns what the account holds for the contact that holds key as
// the value of a unique property (such as the lead key) now, else for the
// one created by key.
func (c *Client) Contact(ctx context.Context, hub int64, key string) (Contact, error) {
	var ct Contact
	if err := c.control.Do(ctx, http.MethodGet, accountPath(hub, "/contacts/"+url.PathEscape(key)), nil, &ct, "a contact"); err != nil {
		return Contact{}, fmt.Errorf("read HubSpot fake contact: %w", err)
	}
	return ct, nil
}

// Calls returns the account's last 1000 /crm/ API calls, oldest first.
func (c *Client) Calls(ctx context.Context, hub int64) ([]Call, error) {
	var calls []Call
	if err := c.control.Do(ctx, http.MethodGet, accountPath(hub, "/calls"), nil, &calls, "a call log"); err != nil {
		return nil, fmt.Errorf("read HubSpot fake calls: %w", err)
	}
	return calls, nil
}

// hiddenInput matches the consent form's hidden fields.
var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// Consent plays the customer on the consent page at consentURL without a
// browser: it reads the page's form and allows it, on the account hub (0:
// a new account), and returns where the page redirects to (the callback,
// with the code and the state, or an error).
func (c *Client) Consent(ctx context.Context, consentURL string, hub int64) (*url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, consentURL, nil)
	if err != nil {
		return nil, errors.New("consent: the consent URL is not a valid URL")
	}
	resp, err := c.control.HTTPClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("consent: reach the consent page: %w", crmfake.WithoutURL(err))
	}
	page, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("consent: read the consent page: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("consent: the consent page answered HTTP %d", resp.StatusCode)
	}
	form := url.Values{}
	for _, m := range hiddenInput.FindAllSubmatch(page, -1) {
		form.Set(string(m[1]), html.UnescapeString(string(m[2])))
	}
	if form.Get("client_id") == "" || !bytes.Contains(page, []byte(`value="allow"`)) {
		return nil, errors.New("consent: the page has no consent form with an Allow button")
	}
	form.Set("decision", "allow")
	if hub != 0 {
		form.Set("hub_id", strconv.FormatInt(hub, 10))
	}
	action, err := url.Parse(consentURL)
	if err != nil {
		return nil, errors.New("consent: the consent URL is not a valid URL")
	}
	action.RawQuery = ""
	post, err := http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, errors.New("consent: the consent URL is not a valid URL")
	}
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	noRedirect := *c.control.HTTPClient()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = noRedirect.Do(post)
	if err != nil {
		return nil, fmt.Errorf("consent: submit the consent form: %w", crmfake.WithoutURL(err))
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("consent: the consent form answered HTTP %d, not a redirect", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return nil, errors.New("consent: the consent page redirected to an invalid URL")
	}
	return loc, nil
}

func accountPath(hub int64, suffix string) string {
	return "/control/accounts/" + strconv.FormatInt(hub, 10) + suffix
}

func (c *Client) account(ctx context.Context, op, method string, hub int64, suffix string, body any) (Account, error) {
	var a Account
	if err := c.control.Do(ctx, method, accountPath(hub, suffix), body, &a, "an account"); err != nil {
		return Account{}, fmt.Errorf("%s: %w", op, err)
	}
	return a, nil
}
