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

func TestPacerFailsALongHoldAtOnce(t *testing.T) {
	t.Parallel()
	limited := func(t *testing.T, err error) *Error {
		t.Helper()
		var crmErr *Error
		require.ErrorAs(t, err, &crmErr)
		require.Equal(t, ClassRateLimited, crmErr.Class, "%v", err)
		return crmErr
	}

	t.Run("LongerThanTheMaxWait", func(t *testing.T) {
		t.Parallel()
		b := setupPacer(t, Limit{Calls: 100, Per: 10 * time.Second})
		// The context has a minute: a pacer that slept the 3 s hold out
		// would answer nil.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b.pacer.Hold("acct", b.now.Add(3*time.Second))
		err := limited(t, b.pacer.Wait(ctx, "acct"))
		require.Equal(t, 3*time.Second, err.RetryAfter, "the hold's remaining time")
		require.Equal(t, "crm rate_limited, retry after 3s: the CRM's rate limit holds the account's calls for another 3s", err.Error())

		b.now = b.now.Add(1500 * time.Millisecond)
		require.Equal(t, 1500*time.Millisecond, limited(t, b.pacer.Wait(ctx, "acct")).RetryAfter, "what is left of it")
		require.NoError(t, b.pacer.Wait(ctx, "another"), "another account is not held")
	})

	t.Run("LongerThanTheContextHasLeft", func(t *testing.T) {
		t.Parallel()
		b := setupPacer(t, Limit{Calls: 100, Per: 10 * time.Second})
		b.pacer.Hold("acct", b.now.Add(800*time.Millisecond))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		// A pacer that slept until the deadline would answer
		// context.DeadlineExceeded instead.
		err := limited(t, b.pacer.Wait(ctx, "acct"))
		require.Equal(t, 800*time.Millisecond, err.RetryAfter)
	})

	t.Run("AShortHoldIsSleptOut", func(t *testing.T) {
		t.Parallel()
		b := setupPacer(t, Limit{Calls: 100, Per: 10 * time.Second})
		b.pacer.Hold("acct", b.now.Add(20*time.Millisecond))
		require.NoError(t, b.pacer.Wait(context.Background(), "acct"))
	})

	t.Run("WithMaxHoldWait", func(t *testing.T) {
		t.Parallel()
		b := setupPacer(t, Limit{Calls: 100, Per: 10 * time.Second})
		b.pacer = NewPacer(Limit{Calls: 100, Per: 10 * time.Second}, WithMaxHoldWait(time.Minute))
		b.pacer.now = func() time.Time { return b.now }
		short := NewPacer(Limit{Calls: 100, Per: 10 * time.Second}, WithMaxHoldWait(10*time.Millisecond))
		short.now = b.pacer.now
		short.Hold("acct", b.now.Add(50*time.Millisecond))
		require.Equal(t, 50*time.Millisecond, limited(t, short.Wait(context.Background(), "acct")).RetryAfter,
			"a hold the default would sleep out is longer than this pacer's")

		b.pacer.Hold("acct", b.now.Add(2*time.Minute))
		long, cancelLong := context.WithTimeout(context.Background(), time.Hour)
		defer cancelLong()
		require.Equal(t, 2*time.Minute, limited(t, b.pacer.Wait(long, "acct")).RetryAfter)

		// 30 s is within the minute, but not within the context's time.
		b.pacer.Hold("other", b.now.Add(30*time.Second))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		require.Equal(t, 30*time.Second, limited(t, b.pacer.Wait(ctx, "other")).RetryAfter)
	})

	t.Run("TheBucketsTurnPastTheDeadline", func(t *testing.T) {
		t.Parallel()
		// One call per hour: the second call's turn is an hour away.
		b := setupPacer(t, Limit{Calls: 1, Per: time.Hour})
		require.NoError(t, b.pacer.Wait(context.Background(), "acct"))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := limited(t, b.pacer.Wait(ctx, "acct"))
		require.Greater(t, err.RetryAfter, time.Hour, "one interval of the paced rate")
	})
}
