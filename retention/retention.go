// Package retention is the retention job of lead PII: it removes the
// payload of every lead (the name and its parts, company, email, phone,
// message and attributes, and the texts its deliveries keep from the CRM)
// once the lead is older than the retention period and none of its
// deliveries is pending any more (delivered, rejected, set aside and
// cancelled deliveries are done with it; a lead routed to no CRM has
// none). The lead's keys, source, integration, org, times and its
// deliveries' statuses and counts stay, so status, events and the
// benchmark's figures do not change.
//
// The retention period runs from intake; a lead that waits longer than
// that for a CRM (one paused for weeks) keeps its payload until its last
// delivery completes, and loses it at the next run after that.
//
// Every worker process runs a Purger: it purges once when it starts and
// then at every interval, in batches of a bounded size, and logs counts
// only. Several workers may run it at once: a lead is purged once.
// `integrations leads purge` runs the same pass by hand.
//
// The same runs delete the OAuth consents (oauth_states) used or expired
// more than OAuthStateRetention ago: a spent state opens nothing, and
// would otherwise stay until its integration is deleted.
package retention

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/acme/integrations/store"
)

// Defaults of the job's settings.
const (
	// DefaultRetention is how long a lead's payload is kept after intake.
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultInterval is how often the job runs.
	DefaultInterval = time.Hour
	// DefaultBatch is how many leads one statement purges: small enough
	// that a run never holds locks for long beside intake and delivery.
	DefaultBatch = 500
	// OAuthStateRetention is how long a used or expired OAuth consent is
	// kept: long enough to tell why a callback was refused.
	OAuthStateRetention = 24 * time.Hour
)

// Purger purges the payloads of leads past their retention.
type Purger struct {
	Store *store.Store
	// Retention is how long a lead's payload is kept after intake
	// (DefaultRetention when zero).
	Retention time.Duration
	// Interval is how often Run purges (DefaultInterval when zero).
	Interval time.Duration
	// Batch is how many leads one statement purges (DefaultBatch when
	// zero; at most store.MaxPurgeBatch).
	Batch int
	// Logger gets one line per run that purged something, and errors
	// (nil: nowhere). Counts only: never a lead's data.
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

func (p *Purger) retention() time.Duration { return or(p.Retention, DefaultRetention) }

func (p *Purger) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Purger) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// RunOnce purges every lead due now, batch by batch, and returns how much
// it purged. Leads that arrive while it runs are younger than its cutoff,
// so it ends.
func (p *Purger) RunOnce(ctx context.Context) (store.Purged, error) {
	batch := min(or(p.Batch, DefaultBatch), store.MaxPurgeBatch)
	now := p.now()
	cutoff := now.Add(-p.retention())
	var total store.Purged
	for {
		purged, err := p.Store.PurgeLeads(ctx, cutoff, batch, now)
		total.Leads += purged.Leads
		total.Deliveries += purged.Deliveries
		if err != nil {
			return total, fmt.Errorf("lead retention (%s): %w", p.retention(), err)
		}
		if purged.Leads < int64(batch) {
			return total, nil
		}
	}
}

// PurgeOAuthStates deletes the OAuth consents used or expired more than
// OAuthStateRetention ago, and counts them.
func (p *Purger) PurgeOAuthStates(ctx context.Context) (int64, error) {
	n, err := p.Store.PurgeOAuthStates(ctx, p.now().Add(-OAuthStateRetention))
	if err != nil {
		return 0, fmt.Errorf("OAuth state retention (%s): %w", OAuthStateRetention, err)
	}
	return n, nil
}

// Run purges at once and then every Interval, until ctx ends: lead
// payloads, then spent OAuth consents. A failed run is logged and tried
// again at the next interval.
func (p *Purger) Run(ctx context.Context) {
	ticker := time.NewTicker(or(p.Interval, DefaultInterval))
	defer ticker.Stop()
	for {
		purged, err := p.RunOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			p.logger().Error("lead retention run failed; the next run tries again", "error", err.Error(),
				"leads", purged.Leads, "lead_deliveries", purged.Deliveries)
		case purged.Leads > 0:
			p.logger().Info("lead payloads purged", "leads", purged.Leads, "lead_deliveries", purged.Deliveries,
				"retention", p.retention().String())
		}
		states, err := p.PurgeOAuthStates(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			p.logger().Error("OAuth state retention run failed; the next run tries again", "error", err.Error())
		case states > 0:
			p.logger().Info("spent OAuth states purged", "oauth_states", states, "retention", OAuthStateRetention.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
