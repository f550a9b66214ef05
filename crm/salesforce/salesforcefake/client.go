package salesforcefake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/acme/integrations/crm/crmfake"
)

// APIError is an error answer of the fake's control API. Message is the
// fake's explanation, which never contains a token.
type APIError = crmfake.APIError

// Client calls the fake's control API (and plays the customer on its
// consent page), for tests, the dev stack and the CLI. Its errors never
// contain a token or a code.
type Client struct {
	control *crmfake.Client
}

// NewClient returns a control client for the fake at baseURL (e.g.
// http://127.0.0.1:8092). A nil httpClient means one with a 10s timeout.
func NewClient(baseURL string, httpClient *http.Client) *Client {
	return &Client{control: crmfake.NewClient(fake, baseURL, httpClient)}
}

// LoginURL is the fake's production login, a connector's login URL.
func (c *Client) LoginURL() string { return c.control.BaseURL() }

// TestLoginURL is the fake's sandbox login, a connector's test login URL.
func (c *Client) TestLoginURL() string { return c.control.BaseURL() + TestLoginPath }

// RegisterApp registers a connected app: from then on the fake accepts
// registered clients only.
func (c *Client) RegisterApp(ctx context.Context, app App) (App, error) {
	var out App
	if err := c.control.Do(ctx, http.MethodPost, "/control/apps", app, &out, "an app"); err != nil {
		return App{}, fmt.Errorf("register fake Salesforce app: %w", err)
	}
	return out, nil
}

// CreateOrg creates an org with the defaults changed by u (the zero
// OrgUpdate: a production org with every permission).
func (c *Client) CreateOrg(ctx context.Context, u OrgUpdate) (Org, error) {
	var o Org
	if err := c.control.Do(ctx, http.MethodPost, "/control/orgs", u, &o, "an org"); err != nil {
		return Org{}, fmt.Errorf("create fake Salesforce org: %w", err)
	}
	return o, nil
}

// Org returns the org with ID id.
func (c *Client) Org(ctx context.Context, id string) (Org, error) {
	var o Org
	err := c.orgDo(ctx, "look up fake Salesforce org", http.MethodGet, id, "", nil, &o, "an org")
	return o, err
}

// UpdateOrg applies u to the org (nil fields keep their value).
func (c *Client) UpdateOrg(ctx context.Context, id string, u OrgUpdate) (Org, error) {
	var o Org
	err := c.orgDo(ctx, "update fake Salesforce org", http.MethodPost, id, "", u, &o, "an org")
	return o, err
}

// Revoke revokes every grant the org has: its access tokens stop working
// and its refresh tokens are refused, until Restore.
func (c *Client) Revoke(ctx context.Context, id string) (Org, error) {
	return c.UpdateOrg(ctx, id, OrgUpdate{Revoked: ptr(true)})
}

// Restore undoes Revoke: the same tokens work again.
func (c *Client) Restore(ctx context.Context, id string) (Org, error) {
	return c.UpdateOrg(ctx, id, OrgUpdate{Revoked: ptr(false)})
}

// DropPermission removes a Lead object permission (PermissionRead,
// PermissionCreate, PermissionEdit) from the org's user.
func (c *Client) DropPermission(ctx context.Context, id, permission string) (Org, error) {
	o, err := c.Org(ctx, id)
	if err != nil {
		return Org{}, err
	}
	perms := slices.DeleteFunc(slices.Clone(o.LeadPermissions), func(p string) bool { return p == permission })
	return c.UpdateOrg(ctx, id, OrgUpdate{LeadPermissions: &perms})
}

// AddPermission gives the org's user a Lead object permission.
func (c *Client) AddPermission(ctx context.Context, id, permission string) (Org, error) {
	o, err := c.Org(ctx, id)
	if err != nil {
		return Org{}, err
	}
	perms := append(slices.Clone(o.LeadPermissions), permission)
	return c.UpdateOrg(ctx, id, OrgUpdate{LeadPermissions: &perms})
}

// DisableAPI turns the org's API off, as an edition without API access
// (API_DISABLED_FOR_ORG); disabled false turns it back on.
func (c *Client) DisableAPI(ctx context.Context, id string, disabled bool) (Org, error) {
	return c.UpdateOrg(ctx, id, OrgUpdate{APIEnabled: ptr(!disabled)})
}

// DisableUserAPI takes "API Enabled" off the user's profile
// (API_CURRENTLY_DISABLED), or puts it back.
func (c *Client) DisableUserAPI(ctx context.Context, id string, disabled bool) (Org, error) {
	return c.UpdateOrg(ctx, id, OrgUpdate{UserAPIEnabled: ptr(!disabled)})
}

// SetLimit sets the org's API allocation: limit calls per window.
func (c *Client) SetLimit(ctx context.Context, id string, limit int, window time.Duration) (Org, error) {
	ms := window.Milliseconds()
	return c.UpdateOrg(ctx, id, OrgUpdate{APILimit: &limit, APIWindowMS: &ms})
}

// IssueTokens makes a new grant for the org's user, as the consent page
// would, and returns the token response.
func (c *Client) IssueTokens(ctx context.Context, id string) (TokenResponse, error) {
	var t TokenResponse
	err := c.orgDo(ctx, "issue fake Salesforce tokens", http.MethodPost, id, "/tokens", nil, &t, "a token response")
	return t, err
}

// ExpireTokens makes every access token of the org expire now; the grants
// stay valid, so a refresh renews them. It returns how many expired.
func (c *Client) ExpireTokens(ctx context.Context, id string) (int, error) {
	var out expiredTokens
	err := c.orgDo(ctx, "expire fake Salesforce tokens", http.MethodPost, id, "/expire-tokens", nil, &out, "a count")
	return out.Expired, err
}

// Faults returns the org's faults.
func (c *Client) Faults(ctx context.Context, id string) (Faults, error) {
	var f Faults
	err := c.orgDo(ctx, "read fake Salesforce faults", http.MethodGet, id, "/faults", nil, &f, "faults")
	return f, err
}

// UpdateFaults applies u to the org's faults (nil fields keep their value)
// and returns the result. Invalid values change nothing.
func (c *Client) UpdateFaults(ctx context.Context, id string, u FaultsUpdate) (Faults, error) {
	var f Faults
	err := c.orgDo(ctx, "set fake Salesforce faults", http.MethodPost, id, "/faults", u, &f, "faults")
	return f, err
}

// ClearFaults removes every fault of the org.
func (c *Client) ClearFaults(ctx context.Context, id string) error {
	return c.orgDo(ctx, "clear fake Salesforce faults", http.MethodDelete, id, "/faults", nil, &Faults{}, "faults")
}

// Leads returns the leads the org holds, by external ID.
func (c *Client) Leads(ctx context.Context, id string) (Leads, error) {
	var l Leads
	err := c.orgDo(ctx, "read fake Salesforce leads", http.MethodGet, id, "/leads", nil, &l, "leads")
	return l, err
}

// Calls returns the org's last 1000 API calls, oldest first.
func (c *Client) Calls(ctx context.Context, id string) ([]Call, error) {
	var calls []Call
	err := c.orgDo(ctx, "read fake Salesforce calls", http.MethodGet, id, "/calls", nil, &calls, "a call log")
	return calls, err
}

// Consent plays the customer on the consent page at consentURL (a
// connector's AuthCodeURL pointing at this fake): it opens the page, and
// presses Allow for the org orgID ("" makes a new org with every
// permission). It returns where the fake redirects the browser: the
// callback, with the code and the state (or the error).
func (c *Client) Consent(ctx context.Context, consentURL, orgID string) (*url.URL, error) {
	page, err := url.Parse(consentURL)
	if err != nil || page.Scheme == "" || page.Host == "" {
		return nil, errors.New("consent on fake Salesforce: the consent URL is not an absolute URL")
	}
	noRedirect := *c.control.HTTPClient()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	get, err := http.NewRequestWithContext(ctx, http.MethodGet, page.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("consent on fake Salesforce: %w", err)
	}
	resp, err := noRedirect.Do(get)
	if err != nil {
		return nil, fmt.Errorf("consent on fake Salesforce: open the consent page: %w", crmfake.WithoutURL(err))
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("consent on fake Salesforce: the consent page answered HTTP %d: %s", resp.StatusCode, pageMessage(body))
	}

	form := page.Query()
	form.Set("action", "allow")
	form.Set("org_id", orgID)
	post, err := http.NewRequestWithContext(ctx, http.MethodPost, (&url.URL{Scheme: page.Scheme, Host: page.Host, Path: page.Path}).String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("consent on fake Salesforce: %w", err)
	}
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = noRedirect.Do(post)
	if err != nil {
		return nil, fmt.Errorf("consent on fake Salesforce: press Allow: %w", crmfake.WithoutURL(err))
	}
	body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("consent on fake Salesforce: Allow answered HTTP %d: %s", resp.StatusCode, pageMessage(body))
	}
	redirect, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return nil, errors.New("consent on fake Salesforce: the redirect is not a URL")
	}
	return redirect, nil
}

// pageMessage is the text of the fake's error page, short.
func pageMessage(body []byte) string {
	text := string(body)
	if start := strings.Index(text, "<p>"); start >= 0 {
		if end := strings.Index(text[start:], "</p>"); end > 0 {
			return text[start+3 : start+end]
		}
	}
	return "not the fake's consent page"
}

func ptr[T any](v T) *T { return &v }

// orgDo calls /control/orgs/{id}+suffix and decodes the answer into out,
// which what names in errors.
func (c *Client) orgDo(ctx context.Context, op, method, id, suffix string, body, out any, what string) error {
	return c.control.DoOn(ctx, op, method, "/control/orgs/", id, suffix, errNoOrgID, body, out, what)
}

var errNoOrgID = errors.New("the org ID is empty: pass the org_id of a fake org")
