package hubspotfake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// defaultTimeout bounds every request when the caller passes no
// *http.Client of its own.
const defaultTimeout = 10 * time.Second

// maxControlResponseBytes bounds a control API response.
const maxControlResponseBytes = 64 << 20

// APIError is an error answer of the control API. Message never contains a
// token.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
}

// Error implements error.
func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("HubSpot fake answered HTTP %d", e.StatusCode)
	}
	return fmt.Sprintf("HubSpot fake answered HTTP %d: %s", e.StatusCode, e.Message)
}

// Client calls the fake's control API (and plays its consent page), for
// tests and the CLI. Its errors never contain a token.
type Client struct {
	baseURL    string
	httpClient *http.Client
}

// NewClient returns a control client for the fake at baseURL (e.g.
// http://127.0.0.1:8091). A nil httpClient means one with a 10s timeout.
func NewClient(baseURL string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: defaultTimeout}
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), httpClient: httpClient}
}

// CreateAccount creates an account: with a private-app token, or connected
// through OAuth with a fresh authorization code for req.RedirectURI.
func (c *Client) CreateAccount(ctx context.Context, req CreateAccountRequest) (Account, error) {
	var a Account
	if err := c.do(ctx, http.MethodPost, "/control/accounts", req, &a); err != nil {
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
	if err := c.do(ctx, http.MethodPost, accountPath(hub, "/properties"), in, &out); err != nil {
		return Property{}, fmt.Errorf("create HubSpot fake property: %w", err)
	}
	return out, nil
}

// DeleteProperty deletes one of the account's own contact properties.
func (c *Client) DeleteProperty(ctx context.Context, hub int64, name string) error {
	var out map[string]string
	if err := c.do(ctx, http.MethodDelete, accountPath(hub, "/properties/"+url.PathEscape(name)), nil, &out); err != nil {
		return fmt.Errorf("delete HubSpot fake property: %w", err)
	}
	return nil
}

// Faults returns the faults set on the account.
func (c *Client) Faults(ctx context.Context, hub int64) (Faults, error) {
	var f Faults
	if err := c.do(ctx, http.MethodGet, accountPath(hub, "/faults"), nil, &f); err != nil {
		return Faults{}, fmt.Errorf("read HubSpot fake faults: %w", err)
	}
	return f, nil
}

// UpdateFaults applies u to the account's faults and returns the result;
// invalid values change nothing.
func (c *Client) UpdateFaults(ctx context.Context, hub int64, u FaultsUpdate) (Faults, error) {
	var f Faults
	if err := c.do(ctx, http.MethodPost, accountPath(hub, "/faults"), u, &f); err != nil {
		return Faults{}, fmt.Errorf("set HubSpot fake faults: %w", err)
	}
	return f, nil
}

// ClearFaults removes every fault from the account.
func (c *Client) ClearFaults(ctx context.Context, hub int64) error {
	var f Faults
	if err := c.do(ctx, http.MethodDelete, accountPath(hub, "/faults"), nil, &f); err != nil {
		return fmt.Errorf("clear HubSpot fake faults: %w", err)
	}
	return nil
}

// Records reports the contacts the account holds and the upserts per key.
func (c *Client) Records(ctx context.Context, hub int64) (RecordStats, error) {
	var st RecordStats
	if err := c.do(ctx, http.MethodGet, accountPath(hub, "/records"), nil, &st); err != nil {
		return RecordStats{}, fmt.Errorf("read HubSpot fake records: %w", err)
	}
	return st, nil
}

// Contact returns what the account holds for the contact that holds key as
// the value of a unique property (such as the lead key) now, else for the
// one created by key.
func (c *Client) Contact(ctx context.Context, hub int64, key string) (Contact, error) {
	var ct Contact
	if err := c.do(ctx, http.MethodGet, accountPath(hub, "/contacts/"+url.PathEscape(key)), nil, &ct); err != nil {
		return Contact{}, fmt.Errorf("read HubSpot fake contact: %w", err)
	}
	return ct, nil
}

// Calls returns the account's last 1000 /crm/ API calls, oldest first.
func (c *Client) Calls(ctx context.Context, hub int64) ([]Call, error) {
	var calls []Call
	if err := c.do(ctx, http.MethodGet, accountPath(hub, "/calls"), nil, &calls); err != nil {
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
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("consent: reach the consent page: %w", withoutURL(err))
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
	noRedirect := *c.httpClient
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = noRedirect.Do(post)
	if err != nil {
		return nil, fmt.Errorf("consent: submit the consent form: %w", withoutURL(err))
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
	if err := c.do(ctx, method, accountPath(hub, suffix), body, &a); err != nil {
		return Account{}, fmt.Errorf("%s: %w", op, err)
	}
	return a, nil
}

// do sends one control request and decodes its answer into out.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, reader)
	if err != nil {
		return fmt.Errorf("invalid HubSpot fake URL %q: use e.g. http://127.0.0.1:8091", c.baseURL)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach the HubSpot fake at %s: %w", c.baseURL, withoutURL(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxControlResponseBytes))
	if err != nil {
		return fmt.Errorf("read the HubSpot fake's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e controlErrorBody
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			return &APIError{StatusCode: resp.StatusCode, Message: http.StatusText(resp.StatusCode) + " (not a control API answer: is the URL the HubSpot fake?)"}
		}
		return &APIError{StatusCode: resp.StatusCode, Code: e.Code, Message: e.Error}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the HubSpot fake's answer (HTTP %d) is not what the control API sends: is %s the HubSpot fake?", resp.StatusCode, c.baseURL)
	}
	return nil
}

// withoutURL strips the request URL from a transport error, keeping the
// cause.
func withoutURL(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	return err
}
