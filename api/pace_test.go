package api_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/api"
	"github.com/acme/integrations/internal/testenv"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestIntakeRate: each intake token is paced; a lead over its rate gets
// 429 with Retry-After and is not stored; another token has a budget of
// its own; the budget refills with time.
func TestIntakeRate(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupIntake(t, db)
		clock := &fakeClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
		paced := &intakeBundle{testBundle: b.withHandlerOptions(t, api.WithIntakeRate(0.5, 2), api.WithClock(clock.Now)), ctx: b.ctx,
			org: b.org, lead: b.lead, token: b.token, crm: b.crm, crmKey: b.crmKey}
		other, otherToken := b.createLeadWithToken(t)

		paced.send(t, http.StatusAccepted, bearer(b.token), b.lead, leadJSON(t, "rate-1", "Z"))
		paced.send(t, http.StatusAccepted, bearer(b.token), b.lead, leadJSON(t, "rate-2", "Z"))
		leads, deliveries, snap := b.leadCount(t, b.lead), b.deliveries(t), b.snapshot(t, b.lead)
		for range 3 {
			r := paced.doWithHeader(t, http.MethodPost, leadPath(b.lead), leadJSON(t, "rate-3", "Z"), bearer(b.token))
			require.Equal(t, http.StatusTooManyRequests, r.code, r.body)
			require.Equal(t, "2", r.header.Get("Retry-After"), "one lead every 2 s")
			require.Contains(t, errorMessage(t, r), "too many leads")
		}
		require.Equal(t, leads, b.leadCount(t, b.lead), "a paced lead is not stored")
		require.Equal(t, deliveries, b.deliveries(t))
		b.requireUnchanged(t, b.lead, snap)

		// Another token's budget is its own; a wrong token spends none.
		for range 3 {
			r := paced.doWithHeader(t, http.MethodPost, leadPath(other), leadJSON(t, "wrong", "Z"), bearer(b.token))
			require.Equal(t, http.StatusUnauthorized, r.code, r.body)
		}
		paced.send(t, http.StatusAccepted, bearer(otherToken), other, leadJSON(t, "other-1", "Z"))
		paced.send(t, http.StatusAccepted, bearer(otherToken), other, leadJSON(t, "other-2", "Z"))

		clock.advance(time.Second)
		r := paced.doWithHeader(t, http.MethodPost, leadPath(b.lead), leadJSON(t, "rate-3", "Z"), bearer(b.token))
		require.Equal(t, http.StatusTooManyRequests, r.code, r.body)
		require.Equal(t, "1", r.header.Get("Retry-After"))
		clock.advance(time.Second)
		paced.send(t, http.StatusAccepted, bearer(b.token), b.lead, leadJSON(t, "rate-3", "Z"))
		require.Equal(t, leads+1, b.leadCount(t, b.lead))
		paced.requireNoPII(t)
	})
}
