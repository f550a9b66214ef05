package crmtest

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCheckPacing pins the checks the Pacing subtest makes on a fake's
// call timestamps: never over the limit (checkPacing), not far under it
// (checkDrainRate).
func TestCheckPacing(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		t0 time.Time
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		t.Parallel()
		return &testBundle{t0: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	}
	// calls returns calls answered 200 at the given offsets from t0.
	calls := func(b *testBundle, offsets ...time.Duration) []Call {
		out := make([]Call, len(offsets))
		for i, d := range offsets {
			out[i] = Call{At: b.t0.Add(d), Status: http.StatusOK}
		}
		return out
	}
	const ms = time.Millisecond

	t.Run("Paced", func(t *testing.T) {
		b := setup(t)
		// Two calls per second: call i+2 exactly one window after call i is allowed.
		require.NoError(t, checkPacing(calls(b, 0, 10*ms, 1000*ms, 1010*ms, 2000*ms, 2500*ms), 2, time.Second))
		require.NoError(t, checkPacing(nil, 2, time.Second))
		require.NoError(t, checkPacing(calls(b, 0, 0), 2, time.Second), "n calls at once are within the limit")
	})

	t.Run("Burst", func(t *testing.T) {
		b := setup(t)
		err := checkPacing(calls(b, 0, 10*ms, 999*ms), 2, time.Second)
		require.ErrorContains(t, err, "calls 0 to 2 fall within 999ms")

		// Out of order as recorded, still a burst.
		err = checkPacing(calls(b, 1500*ms, 0, 1000*ms, 1200*ms), 2, time.Second)
		require.ErrorContains(t, err, "calls 1 to 3 fall within 500ms")
	})

	t.Run("RateLimitAnswer", func(t *testing.T) {
		b := setup(t)
		c := calls(b, 0, 2000*ms)
		c[1].Status = http.StatusTooManyRequests
		require.ErrorContains(t, checkPacing(c, 2, time.Second), "call 1 at 2026-01-02T03:04:07Z was answered 429")
	})

	t.Run("NoLimit", func(t *testing.T) {
		b := setup(t)
		require.ErrorContains(t, checkPacing(calls(b, 0), 0, time.Second), "not a limit")
		require.ErrorContains(t, checkPacing(calls(b, 0), 1, 0), "not a limit")
		require.ErrorContains(t, checkDrainRate(calls(b, 0, ms), 0, time.Second, 0.5), "not a limit")
		require.ErrorContains(t, checkDrainRate(calls(b, 0, ms), 1, 0, 0.5), "not a limit")
	})

	t.Run("DrainRate", func(t *testing.T) {
		b := setup(t)
		// Two calls per second allowed; half of it is one call per second:
		// 5 calls may span 4 s.
		require.NoError(t, checkDrainRate(calls(b, 0, 500*ms, 1000*ms, 1500*ms, 2000*ms), 2, time.Second, 0.5), "the full rate")
		require.NoError(t, checkDrainRate(calls(b, 0, 1000*ms, 2000*ms, 3000*ms, 4000*ms), 2, time.Second, 0.5), "exactly half")
		require.NoError(t, checkDrainRate(calls(b, 4000*ms, 0, 2000*ms, 1000*ms, 3000*ms), 2, time.Second, 0.5), "recorded out of order")

		err := checkDrainRate(calls(b, 0, 1000*ms, 2000*ms, 3000*ms, 4010*ms), 2, time.Second, 0.5)
		require.ErrorContains(t, err, "5 calls took 4.01s, 49.9% of the allowed 2 per 1s; at least 50% would take at most 4s")
		// A pacer that waited a whole window before one call.
		require.Error(t, checkDrainRate(calls(b, 0, 500*ms, 1000*ms, 6000*ms), 2, time.Second, 0.5))
		require.ErrorContains(t, checkDrainRate(calls(b, 0), 2, time.Second, 0.5), "1 calls make no rate")
	})
}
