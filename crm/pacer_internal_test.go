package crm

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// pacerBundle is a Pacer on a fake clock.
type pacerBundle struct {
	pacer *Pacer
	now   time.Time
}

func setupPacer(t *testing.T, published Limit) *pacerBundle {
	t.Helper()
	b := &pacerBundle{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	b.pacer = NewPacer(published)
	b.pacer.now = func() time.Time { return b.now }
	return b
}

func TestPacerPacesUnderThePublishedLimitThenTheReportedOne(t *testing.T) {
	t.Parallel()
	b := setupPacer(t, Limit{Calls: 100, Per: 10 * time.Second})
	require.Equal(t, rate.Limit(9.5), b.pacer.account("portal-1").limiter.Limit(), "95% of 100 per 10s")
	require.Equal(t, 1, b.pacer.account("portal-1").limiter.Burst(), "evenly spaced")

	b.pacer.Observe("portal-1", Quota{Remaining: 150, Limit: 190, Window: "10s"}, Limit{Calls: 190, Per: 10 * time.Second}, 0)
	require.InDelta(t, 18.05, float64(b.pacer.account("portal-1").limiter.Limit()), 1e-9, "the limit the CRM reports wins")
	require.Equal(t, rate.Limit(9.5), b.pacer.account("portal-2").limiter.Limit(), "per account")

	q, ok := b.pacer.Quota("portal-1")
	require.True(t, ok)
	require.Equal(t, Quota{Remaining: 150, Limit: 190, Window: "10s", ObservedAt: b.now}, q)
	_, ok = b.pacer.Quota("portal-3")
	require.False(t, ok, "no quota before the CRM reported one")
}

func TestPacerLeavesAShortWindowAnAbsoluteMargin(t *testing.T) {
	t.Parallel()
	// 5% of 2 s is 100 ms, less than the delay between the limiter and
	// the CRM's count can vary: 3 calls go per 2.25 s, not per 2.1 s.
	b := setupPacer(t, Limit{Calls: 3, Per: 2 * time.Second})
	require.InDelta(t, 3/2.25, float64(b.pacer.account("a").limiter.Limit()), 1e-9)
	// A long window keeps its 95%: 5% of it is more than the margin.
	b = setupPacer(t, Limit{Calls: 250, Per: 10 * time.Second})
	require.InDelta(t, 23.75, float64(b.pacer.account("a").limiter.Limit()), 1e-9)
}

func TestPacerHoldsAnAccountWhoseWindowIsSpent(t *testing.T) {
	t.Parallel()
	b := setupPacer(t, Limit{Calls: 10, Per: 10 * time.Second})
	b.pacer.Observe("acct", Quota{Remaining: 0, Limit: 10, Window: "10s"}, Limit{}, 3*time.Second)
	require.Equal(t, b.now.Add(3*time.Second), b.pacer.account("acct").holdUntil)

	b.pacer.Observe("other", Quota{Remaining: 0, Limit: 10, Window: "10s"}, Limit{}, 0)
	require.Equal(t, b.now.Add(time.Second), b.pacer.account("other").holdUntil, "one call's share of the window when the CRM does not say")

	b.pacer.Hold("acct", b.now.Add(time.Second))
	require.Equal(t, b.now.Add(3*time.Second), b.pacer.account("acct").holdUntil, "a hold is never shortened")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, b.pacer.Wait(ctx, "acct"), context.Canceled, "a held account waits, and the wait ends with its context")
}
