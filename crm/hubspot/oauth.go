package hubspot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/acme/integrations/crm"
)

// defaultTokenLifetime is what an access token is assumed to live when the
// token endpoint gives no expires_in: HubSpot's documented 30 minutes.
const defaultTokenLifetime = 30 * time.Minute

// errOAuthNotConfigured is returned when the OAuth client is missing.
var errOAuthNotConfigured = errors.New("HubSpot OAuth is not configured: set INTEGRATIONS_HUBSPOT_CLIENT_ID and INTEGRATIONS_HUBSPOT_CLIENT_SECRET to your HubSpot app's client ID and secret, or connect with a private app token")

// errNoSandboxLogin refuses crm.AuthRequest.Sandbox.
var errNoSandboxLogin = errors.New("HubSpot has no separate sandbox login: connect a HubSpot sandbox account through the normal consent page, choosing that account there")

// oauthScopes are the scopes the consent page asks for, and
// oauthOptionalScopes those the customer may decline (then they create our
// contact properties themselves). Our HubSpot app's settings must list the
// same.
//
// crm.objects.contacts.read is not asked for: the connector reads no
// contact, only our two contact properties' definitions, and HubSpot's
// Properties API specification (PublicApiSpecs/CRM/Properties, GET
// /crm/v3/properties/{objectType}/{propertyName}) lists
// crm.objects.contacts.write among the scopes any one of which may read
// them; the batch upsert needs crm.objects.contacts.write alone
// (PublicApiSpecs/CRM/Contacts, batch/upsert).
var (
	oauthScopes         = []string{scopeOAuth, ScopeContactsWrite}
	oauthOptionalScopes = []string{ScopeSchemasContactsWrite}
)

// AuthCodeURL returns HubSpot's consent page for our app, asking for
// oauth and crm.objects.contacts.write, and optionally
// crm.schemas.contacts.write, bound to req.State.
func (c *Connector) AuthCodeURL(req crm.AuthRequest) (string, error) {
	// The consent URL needs the client ID only: a CLI that hands it out
	// need not hold the secret, which the exchange at the callback uses.
	if c.clientID == "" {
		return "", errOAuthNotConfigured
	}
	if req.Sandbox {
		return "", errNoSandboxLogin
	}
	if req.State == "" || req.RedirectURL == "" {
		return "", errors.New("HubSpot consent URL: a state and a redirect URL are required")
	}
	u, err := url.Parse(c.authURL)
	if err != nil || u.Host == "" {
		return "", errors.New("HubSpot consent URL: INTEGRATIONS_HUBSPOT_AUTH_URL is not a valid URL, e.g. " + DefaultAuthURL)
	}
	q := u.Query()
	q.Set("client_id", c.clientID)
	q.Set("redirect_uri", req.RedirectURL)
	q.Set("scope", strings.Join(oauthScopes, " "))
	q.Set("optional_scope", strings.Join(oauthOptionalScopes, " "))
	q.Set("state", req.State)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Exchange trades the code HubSpot sent to req.RedirectURL for an OAuth
// credentials document. A spent, expired or unknown code is crm.ClassAuth
// (ask for consent again).
func (c *Connector) Exchange(ctx context.Context, req crm.ExchangeRequest) ([]byte, error) {
	if c.clientID == "" || c.clientSecret == "" {
		return nil, errOAuthNotConfigured
	}
	if req.Sandbox {
		return nil, errNoSandboxLogin
	}
	if req.Code == "" {
		return nil, &crm.Error{Class: crm.ClassAuth, Err: errors.New("hubspot exchange: the callback brought no code: connect again")}
	}
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"client_id":     {c.clientID},
		"client_secret": {c.clientSecret},
		"redirect_uri":  {req.RedirectURL},
		"code":          {req.Code},
	}
	creds, err := c.token(ctx, form, credentials{}, "the authorization code exchange")
	if err != nil {
		return nil, fmt.Errorf("hubspot exchange: %w", err)
	}
	if creds.hubID <= 0 {
		// The token answer is documented to carry hub_id; ask the
		// introspection when it does not (which records it for pacing).
		hub, err := c.tokenHubID(ctx, creds.accessToken)
		if err != nil {
			return nil, fmt.Errorf("hubspot exchange: %w", err)
		}
		creds.hubID = hub
	}
	return creds.document(), nil
}

// Refresh trades the document's refresh token for a new access token and
// returns the new document (the same refresh token, unless HubSpot sends a
// new one). A refused refresh token (the app was uninstalled, access
// removed) is crm.ClassAuth; so is a static token, which cannot be
// refreshed.
func (c *Connector) Refresh(ctx context.Context, raw []byte) ([]byte, error) {
	creds, err := parseCredentials(raw)
	if err != nil {
		return nil, &crm.Error{Class: crm.ClassAuth, Err: errors.New("hubspot refresh: the stored credentials are unusable: validate the integration and authorize it again")}
	}
	fresh, err := c.refresh(ctx, creds)
	if err != nil {
		return nil, fmt.Errorf("hubspot refresh: %w", err)
	}
	return fresh.document(), nil
}

// refresh returns creds with a new access token.
func (c *Connector) refresh(ctx context.Context, creds credentials) (credentials, error) {
	if !creds.oauth() {
		return credentials{}, &crm.Error{Class: crm.ClassAuth, Err: errors.New("a private app or service key token cannot be refreshed: authorize the integration again with a valid token")}
	}
	if c.clientID == "" || c.clientSecret == "" {
		return credentials{}, &crm.Error{Class: crm.ClassTransient, Err: errOAuthNotConfigured}
	}
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {c.clientID},
		"client_secret": {c.clientSecret},
		"refresh_token": {creds.refreshToken},
	}
	return c.token(ctx, form, creds, "the OAuth token refresh")
}

// tokenAnswer is the token endpoint's answer.
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
	HubID        int64  `json:"hub_id"`
}

// tokenError is the token endpoint's error: HubSpot's {"status": "BAD_...",
// "message"} or OAuth's {"error": "invalid_grant"}.
type tokenError struct {
	Status string `json:"status"`
	Error  string `json:"error"`
}

// oauthClientCodes are the token endpoint's codes for a problem with our
// OAuth client rather than with the customer's grant: the operator fixes
// them, so they are transient (retried, shown as a sync failure), not a
// reason to ask the customer to reconnect.
var oauthClientCodes = []string{"BAD_CLIENT_ID", "BAD_CLIENT_SECRET", "INVALID_CLIENT", "invalid_client", "unauthorized_client", "BAD_REDIRECT_URI"}

// token calls the token endpoint with form and returns prev updated with
// the new tokens. Not paced: the token endpoint is not a CRM API call.
func (c *Connector) token(ctx context.Context, form url.Values, prev credentials, what string) (credentials, error) {
	a, err := c.send(ctx, request{method: http.MethodPost, path: pathToken, what: what,
		body: []byte(form.Encode()), contentType: "application/x-www-form-urlencoded"})
	if err != nil {
		return credentials{}, err
	}
	switch {
	case a.status == http.StatusOK:
	case a.status == http.StatusTooManyRequests, a.status == http.StatusRequestTimeout, a.status >= 500:
		return credentials{}, c.classify(request{what: what}, a)
	default:
		var te tokenError
		_ = json.Unmarshal(a.body, &te)
		code := quotableCode(te.Status)
		if code == "" || code == "error" {
			code = quotableCode(te.Error)
		}
		if slices.Contains(oauthClientCodes, code) {
			return credentials{}, &crm.Error{Class: crm.ClassTransient, StatusCode: a.status, Code: code,
				Err: fmt.Errorf("HubSpot refused our OAuth client at %s: check INTEGRATIONS_HUBSPOT_CLIENT_ID, INTEGRATIONS_HUBSPOT_CLIENT_SECRET and the redirect URL in the HubSpot app's settings", what)}
		}
		return credentials{}, &crm.Error{Class: crm.ClassAuth, StatusCode: a.status, Code: code,
			Err: fmt.Errorf("HubSpot refused %s: the connection was revoked, or the code was used or expired; connect again", what)}
	}
	var t tokenAnswer
	if err := json.Unmarshal(a.body, &t); err != nil || checkToken("access_token", t.AccessToken) != nil {
		return credentials{}, &crm.Error{Class: crm.ClassTransient, StatusCode: a.status,
			Err: fmt.Errorf("HubSpot's answer to %s holds no usable access token", what)}
	}
	next := prev
	next.accessToken = t.AccessToken
	if t.RefreshToken != "" {
		next.refreshToken = t.RefreshToken
	}
	if checkToken("refresh_token", next.refreshToken) != nil {
		return credentials{}, &crm.Error{Class: crm.ClassTransient, StatusCode: a.status,
			Err: fmt.Errorf("HubSpot's answer to %s holds no usable refresh token", what)}
	}
	lifetime := time.Duration(t.ExpiresIn) * time.Second
	if t.ExpiresIn <= 0 {
		lifetime = defaultTokenLifetime
	}
	// Whole seconds: the document stores RFC 3339 times.
	next.expiresAt = c.now().Add(lifetime).UTC().Truncate(time.Second)
	if t.HubID > 0 {
		next.hubID = t.HubID
		// HubSpot's own answer to our client: the new token's account,
		// which its calls are paced as.
		c.rememberHub(next.accessToken, t.HubID, c.now().Add(lifetime))
	}
	return next, nil
}

// tokenHubID asks the OAuth introspection which account an access token
// belongs to.
func (c *Connector) tokenHubID(ctx context.Context, token string) (int64, error) {
	info, err := c.introspectHub(ctx, token)
	if err != nil {
		return 0, err
	}
	if info == nil || info.HubID <= 0 {
		return 0, &crm.Error{Class: crm.ClassTransient, Err: errors.New("HubSpot's token introspection did not say which account the new connection belongs to")}
	}
	return info.HubID, nil
}

// tokenInfo is what an introspection says about a token.
type tokenInfo struct {
	HubID     int64    `json:"hub_id"`
	Scopes    []string `json:"scopes"`
	ExpiresIn int64    `json:"expires_in"`
}

// oauthTokenInfo calls GET /oauth/v1/access-tokens/{token}: nil info (and
// no error) when HubSpot does not accept the token there (expired, revoked,
// unknown); an error when the call could not be made or answered 429/5xx.
// Not paced: like the token endpoint it is HubSpot's OAuth service, not a
// CRM API call, and it is what names the account the calls are paced as.
func (c *Connector) oauthTokenInfo(ctx context.Context, token string) (*tokenInfo, error) {
	r := request{method: http.MethodGet, path: pathAccessTokenInfo + url.PathEscape(token), what: "HubSpot's token introspection"}
	a, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	switch {
	case a.status == http.StatusOK:
		var info tokenInfo
		if json.Unmarshal(a.body, &info) != nil || info.ExpiresIn <= 0 {
			return nil, nil
		}
		return &info, nil
	case a.status == http.StatusTooManyRequests, a.status == http.StatusRequestTimeout, a.status >= 500:
		return nil, c.classify(r, a)
	}
	return nil, nil
}
