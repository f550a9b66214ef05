package crm

import (
	"context"
	"time"
)

// OAuth is implemented by connectors whose CRM authorizes an integration
// through OAuth 2.0's authorization-code flow (HubSpot, Salesforce): the
// customer consents on the CRM's page, which redirects to our callback
// with a code, which the connector exchanges for tokens. The connector
// holds the OAuth client ID and secret from configuration, never from a
// request.
type OAuth interface {
	// AuthCodeURL returns the CRM's consent page for an authorization
	// bound to req.State, redirecting back to req.RedirectURL. It fails
	// (saying which settings to configure) when the connector has no OAuth
	// client, or refuses an option its CRM does not have.
	AuthCodeURL(req AuthRequest) (string, error)
	// Exchange trades the code the CRM sent to req.RedirectURL for the
	// credentials document the connector's other methods take (tokens,
	// their expiry, where the account's API lives). Its error, an *Error
	// where it can classify it, holds neither the code nor the tokens.
	Exchange(ctx context.Context, req ExchangeRequest) ([]byte, error)
}

// AuthRequest is what a consent page is asked for.
type AuthRequest struct {
	// State is the single-use value the callback must bring back.
	State string
	// RedirectURL is our callback (GET /oauth/callback).
	RedirectURL string
	// Sandbox asks for the CRM's test environment where it has one
	// (Salesforce sandbox orgs log in at test.salesforce.com).
	Sandbox bool
}

// ExchangeRequest is a callback's code to exchange, with what its
// AuthRequest asked for.
type ExchangeRequest struct {
	Code        string
	RedirectURL string
	Sandbox     bool
}

// Expirer is implemented by connectors whose credentials documents know
// when their access token expires (HubSpot's expires_in). The caller
// refreshes (Refresher) ahead of that time rather than waiting for a 401,
// which some CRMs say is not a reliable sign of expiry.
type Expirer interface {
	// ExpiresAt returns when the access token in raw expires, and false
	// when raw carries no expiry (then only an auth error says so).
	ExpiresAt(raw []byte) (time.Time, bool)
}

// RefreshAhead is how long before its expiry an access token is
// refreshed.
const RefreshAhead = 5 * time.Minute

// ExpiresSoon reports whether raw's access token expires within
// RefreshAhead of now, for a connector that is an Expirer.
func ExpiresSoon(c Connector, raw []byte, now time.Time) bool {
	e, ok := c.(Expirer)
	if !ok {
		return false
	}
	at, ok := e.ExpiresAt(raw)
	return ok && !now.Add(RefreshAhead).Before(at)
}
