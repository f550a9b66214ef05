package salesforce

import (
	"context"
	"time"

	"github.com/acme/integrations/crm"
)

// Which org a call is paced as (its holds, its allocation, the quota
// shown) is never taken from the credentials document: a document is
// whatever the caller of authorize sent, and its id could name another
// customer's org, which the caller's REQUEST_LIMIT_EXCEEDED would then hold
// for an hour. A token's calls are paced as the org Salesforce named for
// that access token: the identity URL of the token response to our
// exchange or refresh, or the identity service (userinfo, which Validate
// calls anyway and Push asks once for a token the connector has not seen).
// When Salesforce names none, the calls are paced per grant, by a hash of
// the refresh token (crm.TokenKey), which only its holder can share.

// orgTTL is how long the connector believes the org Salesforce named for
// an access token: a session lasts the org's session timeout, at most a
// day.
const orgTTL = 24 * time.Hour

// unknownOrgRetry is how long the connector paces a token per grant after
// the identity service could not name its org (an outage, a token without
// the identity scope, a refused token), before asking again.
const unknownOrgRetry = time.Minute

// orgKey is the pacing key of an org.
func orgKey(orgID string) string { return "org:" + orgID }

// grantKey is the pacing key of a grant whose org Salesforce has not
// named.
func grantKey(creds credentials) string { return crm.TokenKey(creds.RefreshToken) }

// rememberOrg records the org Salesforce named for an access token ("" for
// none, believed for unknownOrgRetry).
func (c *Connector) rememberOrg(token, orgID string) {
	now := c.now()
	if orgID == "" {
		c.orgIDs.Remember(token, "", now.Add(unknownOrgRetry), now)
		return
	}
	c.orgIDs.Remember(token, orgKey(orgID), now.Add(orgTTL), now)
}

// knownAccount is the pacing key of creds' calls as far as the connector
// knows without a call: the org Salesforce named for the access token, else
// the grant's. known is false for a token Salesforce has not been asked
// about.
func (c *Connector) knownAccount(creds credentials) (key string, known bool) {
	key, known = c.orgIDs.Lookup(creds.AccessToken, c.now())
	if key == "" {
		key = grantKey(creds)
	}
	return key, known
}

// account is the pacing key of creds' calls, asking the identity service
// which org the access token belongs to when the connector does not know
// yet. When it cannot say, the calls are paced per grant: a delivery does
// not fail for it.
func (c *Connector) account(ctx context.Context, creds credentials) string {
	if key, known := c.knownAccount(creds); known {
		return key
	}
	_, _ = c.userinfo(ctx, creds, "")
	key, _ := c.knownAccount(creds)
	return key
}
