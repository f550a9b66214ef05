package activities

import (
	"context"
	"time"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/integration"
)

// freshen refreshes creds ahead of their expiry (crm.RefreshAhead) for a
// connector whose credentials say when they expire (HubSpot's OAuth
// tokens), so a call never goes out with a token about to lapse. A refresh
// that fails leaves creds as they are: the call then meets the CRM's auth
// error, which refreshes (or validates) as before.
func (a *Activities) freshen(ctx context.Context, id string, connector crm.Connector, creds openCredentials) openCredentials {
	if !crm.ExpiresSoon(connector, creds.raw, time.Now()) {
		return creds
	}
	if fresh, ok := a.refresh(ctx, id, connector, creds); ok {
		return fresh
	}
	return creds
}

// credentialsRejected reports whether checks fail the credentials check
// with expired credentials: for a refreshable grant, the sign to refresh
// and look again (Salesforce's tokens carry no expiry and simply stop
// working) before telling the rules the credentials expired.
func credentialsRejected(checks []integration.Check) bool {
	for _, c := range checks {
		if c.Name == crm.CheckCredentials && !c.OK && c.Code == integration.ReasonExpiredCredentials {
			return true
		}
	}
	return false
}
