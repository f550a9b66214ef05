package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"golang.org/x/oauth2"

	"github.com/acme/integrations/crm"
)

// oauthScopes are what the consent page asks for: the REST API, and a
// refresh token to keep the connection once the session times out.
var oauthScopes = []string{"api", "refresh_token"}

// errNoClient is the OAuth calls' error without a configured client.
var errNoClient = errors.New("the Salesforce connector has no OAuth client: set INTEGRATIONS_SALESFORCE_CLIENT_ID and INTEGRATIONS_SALESFORCE_CLIENT_SECRET to the consumer key and secret of your connected app")

// oauthCodePattern is what an OAuth error code looks like; anything else in
// its place is not quoted.
var oauthCodePattern = regexp.MustCompile(`^[a-z][a-z_]{1,63}$`)

// oauthConfig is the web-server flow of a login environment.
func (c *Connector) oauthConfig(sandbox bool, redirectURL string) (*oauth2.Config, error) {
	// A consent URL needs the client ID only (a CLI that hands one out
	// need not hold the secret); the exchange and refresh need both.
	if c.cfg.ClientID == "" {
		return nil, errNoClient
	}
	login := c.loginURL(sandbox)
	return &oauth2.Config{
		ClientID:     c.cfg.ClientID,
		ClientSecret: c.cfg.ClientSecret,
		Endpoint: oauth2.Endpoint{
			AuthURL:  login + "/services/oauth2/authorize",
			TokenURL: login + "/services/oauth2/token",
			// Salesforce documents the client credentials as form fields.
			AuthStyle: oauth2.AuthStyleInParams,
		},
		RedirectURL: redirectURL,
		Scopes:      oauthScopes,
	}, nil
}

// oauthContext makes x/oauth2 use the connector's HTTP client.
func (c *Connector) oauthContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.httpClient)
}

// AuthCodeURL returns Salesforce's consent page for an authorization bound
// to req.State, on the test login for a sandbox org (req.Sandbox). The page
// asks the customer to sign in (prompt=login) and to allow access, so the
// connection is made as the user they choose, not whoever is signed in.
func (c *Connector) AuthCodeURL(req crm.AuthRequest) (string, error) {
	cfg, err := c.oauthConfig(req.Sandbox, req.RedirectURL)
	if err != nil {
		return "", fmt.Errorf("salesforce consent: %w", err)
	}
	if req.State == "" {
		return "", errors.New("salesforce consent: the authorization needs a state to bind the callback to")
	}
	if u, err := url.Parse(req.RedirectURL); err != nil || !u.IsAbs() || u.Host == "" {
		return "", errors.New("salesforce consent: the redirect URL must be an absolute URL (our OAuth callback)")
	}
	return cfg.AuthCodeURL(req.State, oauth2.SetAuthURLParam("prompt", "login consent")), nil
}

// Exchange trades the code of the consent page's callback for the
// credentials document, at the login the consent was on (req.Sandbox). A
// code Salesforce refuses (used already, expired, from the other login) is
// crm.ClassAuth.
func (c *Connector) Exchange(ctx context.Context, req crm.ExchangeRequest) ([]byte, error) {
	const op = "code exchange"
	cfg, err := c.oauthConfig(req.Sandbox, req.RedirectURL)
	if err == nil && cfg.ClientSecret == "" {
		err = errNoClient
	}
	if err != nil {
		return nil, &crm.Error{Class: crm.ClassTransient, Err: fmt.Errorf("salesforce %s: %w", op, err)}
	}
	if req.Code == "" {
		return nil, &crm.Error{Class: crm.ClassAuth, Err: fmt.Errorf("salesforce %s: the callback brought no code: connect Salesforce again", op)}
	}
	tok, err := cfg.Exchange(c.oauthContext(ctx), req.Code)
	if err != nil {
		return nil, tokenError(op, err, "the authorization code was used already, has expired, or comes from the other login (production or sandbox): connect Salesforce again")
	}
	env := EnvironmentProduction
	if req.Sandbox {
		env = EnvironmentSandbox
	}
	creds, err := c.fromToken(op, tok, credentials{Environment: env})
	if err != nil {
		return nil, err
	}
	c.rememberIssuedOrg(tok)
	return json.Marshal(creds)
}

// Refresh renews the access token with the refresh token, at the login
// that issued it, and returns the document with the new access token (and
// the new refresh token when Salesforce rotates them). A refresh
// Salesforce refuses (invalid_grant: the connection was revoked or its
// refresh token expired) is crm.ClassAuth; a misconfigured OAuth client,
// 5xx and no answer are crm.ClassTransient.
func (c *Connector) Refresh(ctx context.Context, raw []byte) ([]byte, error) {
	const op = "token refresh"
	creds, err := c.parseCredentials(raw)
	if err != nil {
		return nil, &crm.Error{Class: crm.ClassAuth, Err: fmt.Errorf("salesforce %s: the stored credentials are unusable: connect Salesforce again", op)}
	}
	cfg, err := c.oauthConfig(creds.sandbox(), "")
	if err == nil && cfg.ClientSecret == "" {
		err = errNoClient
	}
	if err != nil {
		return nil, &crm.Error{Class: crm.ClassTransient, Err: fmt.Errorf("salesforce %s: %w", op, err)}
	}
	tok, err := cfg.TokenSource(c.oauthContext(ctx), &oauth2.Token{RefreshToken: creds.RefreshToken}).Token()
	if err != nil {
		return nil, tokenError(op, err, "the connection was revoked or its refresh token expired: connect Salesforce again")
	}
	fresh, err := c.fromToken(op, tok, creds)
	if err != nil {
		return nil, err
	}
	if fresh == creds {
		return nil, &crm.Error{Class: crm.ClassTransient,
			Err: fmt.Errorf("salesforce %s: Salesforce answered the same access token it refused", op)}
	}
	c.rememberIssuedOrg(tok)
	return json.Marshal(fresh)
}

// rememberIssuedOrg records the org of a token response's access token, as
// the response's own identity URL names it: Salesforce's answer at our
// configured login to our OAuth client, unlike the id of a document
// (which a refresh answer without one would leave as the document had it).
func (c *Connector) rememberIssuedOrg(tok *oauth2.Token) {
	id, _ := tok.Extra("id").(string)
	if org := orgIDOf(id); org != "" {
		c.rememberOrg(tok.AccessToken, org)
	}
}

// fromToken is base with what a token response says: the access token,
// and the refresh token, instance URL, identity URL and issue time where
// it gives them. A response without a refresh token (an exchange's) or a
// usable instance URL is refused.
func (c *Connector) fromToken(op string, tok *oauth2.Token, base credentials) (credentials, error) {
	bad := func(why string) error {
		return &crm.Error{Class: crm.ClassTransient, Err: fmt.Errorf("salesforce %s: the token response %s", op, why)}
	}
	creds := base
	creds.AccessToken = tok.AccessToken
	if tok.RefreshToken != "" {
		creds.RefreshToken = tok.RefreshToken
	}
	extra := func(name string) string {
		s, _ := tok.Extra(name).(string)
		return s
	}
	if v := extra("instance_url"); v != "" {
		creds.InstanceURL = v
	}
	if v := extra("id"); v != "" {
		creds.ID = v
	}
	if v := extra("issued_at"); v != "" {
		creds.IssuedAt = v
	}
	if creds.RefreshToken == "" {
		return credentials{}, &crm.Error{Class: crm.ClassAuth, Err: fmt.Errorf("salesforce %s: Salesforce issued no refresh token: add the OAuth scope \"Perform requests at any time (refresh_token, offline_access)\" to the connected app, then connect again", op)}
	}
	raw, err := json.Marshal(creds)
	if err != nil {
		return credentials{}, bad("could not be stored")
	}
	if _, err := c.parseCredentials(raw); err != nil {
		// The error names the field at fault, never its value.
		return credentials{}, bad("is not usable: " + strings.TrimPrefix(err.Error(), "salesforce credentials: "))
	}
	return creds, nil
}

// tokenError classifies a failed call of the token endpoint; refused is
// what an invalid_grant means for this call. Only the OAuth error code is
// quoted: the description and body could echo the request.
func tokenError(op string, err error, refused string) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		if strings.HasPrefix(err.Error(), "oauth2: ") {
			// x/oauth2 read an answer it could not use (no access token, bad
			// JSON): not Salesforce's.
			return &crm.Error{Class: crm.ClassTransient, Err: fmt.Errorf("salesforce %s: the token endpoint's answer is not a token response", op)}
		}
		return transportError(op, err)
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	code := re.ErrorCode
	if !oauthCodePattern.MatchString(code) {
		code = ""
	}
	e := &crm.Error{StatusCode: status, Code: code}
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
		e.Class, e.Err = crm.ClassTransient, fmt.Errorf("salesforce %s: the token endpoint answered HTTP %d", op, status)
	case code == "invalid_client_id", code == "invalid_client", code == "unauthorized_client", code == "redirect_uri_mismatch":
		// Our configuration, not the customer's connection: an operator
		// must fix it, and nothing the customer does would help.
		e.Class, e.Err = crm.ClassTransient, fmt.Errorf("salesforce %s: Salesforce refused the connector's OAuth client (%s): check INTEGRATIONS_SALESFORCE_CLIENT_ID, INTEGRATIONS_SALESFORCE_CLIENT_SECRET and the connected app's callback URL", op, code)
	case code == "invalid_grant":
		e.Class, e.Err = crm.ClassAuth, fmt.Errorf("salesforce %s: %s", op, refused)
	default:
		e.Class, e.Err = crm.ClassAuth, fmt.Errorf("salesforce %s: Salesforce refused it (%s): connect Salesforce again", op, cmpOr(code, fmt.Sprintf("HTTP %d", status)))
	}
	return e
}
