package workflows_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/activities"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/workflows"
)

// validationTimes returns when Validate ran, as offsets from testStart.
func (b *testBundle) validationTimes() []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []time.Duration
	for _, at := range b.validatedAt {
		out = append(out, at.Sub(testStart))
	}
	return out
}

// TestUnitWorkerPolicyReachesRunningIntegrations changes the worker's
// policy while an integration runs (as restarting the workers with another
// INTEGRATIONS_VALIDATION_INTERVAL does): the timer of an integration
// without an override follows it at its next wake-up (the 5-minute safety
// sync here), the one with an override of its own keeps it.
func TestUnitWorkerPolicyReachesRunningIntegrations(t *testing.T) {
	t.Parallel()
	shorter := integration.DefaultPolicy()
	shorter.ValidationInterval = 10 * time.Minute

	for _, tc := range []struct {
		name   string
		config workflows.Config
		want   []time.Duration
	}{
		{
			name: "without an override", config: workflows.Config{},
			// Woken by the safety sync at 35m, three minutes after the
			// change: the next validation comes one new interval later.
			want: []time.Duration{45 * time.Minute, 55 * time.Minute, 65 * time.Minute, 75 * time.Minute, 85 * time.Minute},
		},
		{
			name: "with an override", config: workflows.Config{ValidationInterval: time.Hour},
			want: []time.Duration{time.Hour},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.at(32*time.Minute, func() { b.setPolicy(shorter) })
			var before, after workflows.Snapshot
			b.queryAt(t, 33*time.Minute, &before)
			b.queryAt(t, 36*time.Minute, &after)
			b.cancelAt(90 * time.Minute)

			b.env.ExecuteWorkflow(workflows.CRMIntegration, activeCRMInput(t, tc.config))
			b.requireCanceled(t)

			require.Equal(t, testStart.Add(time.Hour), *before.NextValidationAt, "nothing changes before the run wakes")
			require.Equal(t, tc.want, b.validationTimes())
			if tc.config.ValidationInterval == 0 {
				require.Equal(t, testStart.Add(45*time.Minute), *after.NextValidationAt)
			} else {
				require.Equal(t, testStart.Add(time.Hour), *after.NextValidationAt)
			}
		})
	}
}

// TestUnitAttentionThresholdFromTheWorkerPolicy: the attention threshold is
// the worker's policy too, not a value frozen into the run.
func TestUnitAttentionThresholdFromTheWorkerPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := integration.DefaultPolicy()
	p.Attention = integration.AttentionThreshold{Failures: 2, After: time.Second}
	b.setPolicy(p)
	b.deliverScript = []activities.DeliverResult{transient(), transient(), transient(), transient()}
	b.signalAt(time.Minute, workflows.SignalSync, workflows.Command{})
	var failing workflows.Snapshot
	b.queryAt(t, time.Minute+5*time.Second, &failing)
	b.cancelAt(time.Hour)

	b.env.ExecuteWorkflow(workflows.CRMIntegration, activeCRMInput(t, workflows.Config{}))
	b.requireCanceled(t)

	// Failures at +0s, +1s (2 failures over 1s: alert), +3s, +7s; the
	// round at +15s succeeds.
	require.True(t, failing.State.NeedsAttention)
	require.Equal(t, 3, failing.State.ConsecutiveFailures)
	require.Equal(t, []integration.EffectType{integration.EffectNeedsAttention, integration.EffectAttentionResolved}, b.effects(), "one alert, resolved by the success")
}

// TestUnitDefaultSyncSchedule pins the delivery timing at the default
// policy: retries back off 1s, 2s, 4s, ... up to 5 minutes, and after a
// success the safety sync looks again exactly 5 minutes later.
func TestUnitDefaultSyncSchedule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for range 11 {
		b.deliverScript = append(b.deliverScript, transient())
	}
	b.deliverScript = append(b.deliverScript, activities.DeliverResult{Delivered: 1})
	b.signalAt(time.Minute, workflows.SignalSync, workflows.Command{})
	b.cancelAt(2 * time.Hour)

	b.env.ExecuteWorkflow(workflows.CRMIntegration, activeCRMInput(t, workflows.Config{}))
	b.requireCanceled(t)

	calls := b.deliveries()
	require.GreaterOrEqual(t, len(calls), 14)
	var gaps []time.Duration
	for i := 1; i < 14; i++ {
		gaps = append(gaps, calls[i].Sub(calls[i-1]))
	}
	s := time.Second
	require.Equal(t, []time.Duration{
		1 * s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 64 * s, 128 * s, 256 * s, 5 * time.Minute, 5 * time.Minute, // backoff, capped
		5 * time.Minute, 5 * time.Minute, // the safety sync after the success
	}, gaps)
	require.Equal(t, testStart.Add(time.Minute), calls[0].UTC(), "the nudge delivers at once")
}
