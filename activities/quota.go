package activities

import (
	"context"

	"github.com/acme/integrations/crm"
	"github.com/acme/integrations/store"
)

// saveQuota stores the API quota the CRM last reported for the
// integration's account, for status, when the connector reads its CRM's
// limit headers and a round used the credentials. It is best effort: a
// quota that is not stored only makes status show an older one.
func (a *Activities) saveQuota(ctx context.Context, id string, connector crm.Connector, creds *openCredentials) {
	reporter, ok := connector.(crm.QuotaReporter)
	if !ok || creds == nil {
		return
	}
	q, ok := reporter.Quota(creds.raw)
	if !ok {
		return
	}
	if err := a.Store.SaveQuota(ctx, id, store.Quota{Remaining: q.Remaining, Limit: q.Limit, Window: q.Window, ObservedAt: q.ObservedAt}); err != nil {
		a.logger().Warn("CRM quota not stored", "integration", id, "error", err.Error())
	}
}
