package hubspot

import (
	"context"
	"strconv"
	"time"

	"github.com/acme/integrations/crm"
)

// Which account a call is paced as (and whose quota it reports) is never
// taken from the credentials document: a document is whatever the caller
// of authorize sent, and a hub_id in it could name another customer's
// account, whose pacing its 429s would then hold and its rate-limit
// headers re-pace. An OAuth access token's calls are paced by the hub ID
// HubSpot itself gave for that token (the token endpoint's answer to an
// exchange or refresh, or the token introspection), kept per token; a
// token HubSpot named no account for, and every private-app or service-key
// token (limited per app), by a hash of the token (crm.TokenKey), which
// only its holder can share.

// unknownHubRetry is how long the connector keeps to a token's own key
// after the introspection could not name the token's account (an outage, a
// withdrawn endpoint, a token it does not know), before asking again.
const unknownHubRetry = time.Minute

// hubKey is the pacing key of a HubSpot account.
func hubKey(hubID int64) string { return "hub:" + strconv.FormatInt(hubID, 10) }

// rememberHub records the account HubSpot named for an access token (0 for
// none), believed until until.
func (c *Connector) rememberHub(token string, hubID int64, until time.Time) {
	key := ""
	if hubID > 0 {
		key = hubKey(hubID)
	}
	c.hubs.Remember(token, key, until, c.now())
}

// knownPaceKey is the pacing key of creds' calls as far as the connector
// knows without a call: the hub HubSpot named for an OAuth access token,
// else the token's own key. known is false for an OAuth token HubSpot has
// not been asked about.
func (c *Connector) knownPaceKey(creds credentials) (key string, known bool) {
	if !creds.oauth() {
		return crm.TokenKey(creds.accessToken), true
	}
	key, known = c.hubs.Lookup(creds.accessToken, c.now())
	if key == "" {
		key = crm.TokenKey(creds.accessToken)
	}
	return key, known
}

// paceKey is the pacing key of creds' calls, asking HubSpot's token
// introspection which account an OAuth access token belongs to when the
// connector does not know yet (once per token). When the introspection
// cannot say, the calls are paced as the token's own: a delivery does not
// fail for it.
func (c *Connector) paceKey(ctx context.Context, creds credentials) string {
	if key, known := c.knownPaceKey(creds); known {
		return key
	}
	_, _ = c.introspectHub(ctx, creds.accessToken)
	key, _ := c.knownPaceKey(creds)
	return key
}

// introspectHub calls the OAuth token introspection for token and records
// the account it names (or, for unknownHubRetry, that it named none); its
// answer and error are oauthTokenInfo's.
func (c *Connector) introspectHub(ctx context.Context, token string) (*tokenInfo, error) {
	info, err := c.oauthTokenInfo(ctx, token)
	if err == nil && info != nil && info.HubID > 0 {
		c.rememberHub(token, info.HubID, c.now().Add(time.Duration(info.ExpiresIn)*time.Second))
		return info, nil
	}
	c.rememberHub(token, 0, c.now().Add(unknownHubRetry))
	return info, err
}
