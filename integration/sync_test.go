package integration_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
)

type syncBundle struct {
	t0 time.Time
}

func setupSync(t *testing.T) *syncBundle {
	t.Helper()
	return &syncBundle{t0: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

// activeCRM replays create, authorize and complete-setup.
func (b *syncBundle) activeCRM(t *testing.T) integration.State {
	t.Helper()
	s, err := integration.New(integration.Spec{ID: "crm-1", OrgID: "org", Kind: integration.KindCRM, Provider: "sandbox"}, b.t0)
	require.NoError(t, err)
	for _, ev := range []integration.Event{
		{Type: integration.EventAuthorize, Checks: []integration.Check{{Name: "credentials", OK: true}}, At: b.t0},
		{Type: integration.EventCompleteSetup, At: b.t0},
	} {
		tr, err := s.Apply(ev)
		require.NoError(t, err)
		s = tr.State
	}
	require.Equal(t, integration.StatusActive, s.Status)
	return s
}

func (b *syncBundle) fail(t *testing.T, s integration.State, at time.Time, threshold integration.AttentionThreshold) integration.Transition {
	t.Helper()
	next := at.Add(time.Minute)
	rules := integration.Rules{Attention: threshold, Revision: integration.LatestRevision}
	tr, err := s.ApplyRules(integration.Event{Type: integration.EventSyncFailed, Actor: "system", Error: "HTTP 503 (transient)", NextAttempt: &next, At: at}, rules)
	require.NoError(t, err)
	return tr
}

func TestSyncFailureAndRecovery(t *testing.T) {
	t.Parallel()
	b := setupSync(t)
	s := b.activeCRM(t)

	tr := b.fail(t, s, b.t0.Add(time.Second), integration.AttentionThreshold{})
	require.True(t, tr.Changed)
	require.Equal(t, s.Version+1, tr.State.Version)
	require.Equal(t, integration.StatusFailedSync, tr.State.Status)
	require.Equal(t, integration.ReasonSyncError, tr.State.Reason)
	require.Equal(t, 1, tr.State.ConsecutiveFailures)
	require.Equal(t, "HTTP 503 (transient)", tr.State.LastSyncError)
	require.Equal(t, b.t0.Add(time.Second), *tr.State.FailingSince)
	require.Equal(t, b.t0.Add(time.Second+time.Minute), *tr.State.NextAttemptAt)
	require.Equal(t, integration.EventSyncFailed, tr.Change.Event)
	require.Empty(t, tr.Effects)

	second := b.fail(t, tr.State, b.t0.Add(time.Hour), integration.AttentionThreshold{})
	require.Equal(t, 2, second.State.ConsecutiveFailures)
	require.Equal(t, b.t0.Add(time.Second), *second.State.FailingSince, "failing since the first failure")

	ok, err := second.State.Apply(integration.Event{Type: integration.EventSyncSucceeded, At: b.t0.Add(2 * time.Hour)})
	require.NoError(t, err)
	require.True(t, ok.Changed)
	require.Equal(t, integration.StatusActive, ok.State.Status)
	require.Equal(t, integration.ReasonNone, ok.State.Reason)
	require.Zero(t, ok.State.ConsecutiveFailures)
	require.Nil(t, ok.State.FailingSince)
	require.Nil(t, ok.State.NextAttemptAt)
	require.Empty(t, ok.State.LastSyncError)
	require.Empty(t, ok.Effects)

	// A success while healthy is no change at all.
	again, err := ok.State.Apply(integration.Event{Type: integration.EventSyncSucceeded, At: b.t0.Add(3 * time.Hour)})
	require.NoError(t, err)
	require.False(t, again.Changed)
	require.Equal(t, ok.State.Version, again.State.Version)
}

func TestSyncNeedsAttention(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		failures  int
		spacing   time.Duration
		threshold integration.AttentionThreshold
		want      bool
	}{
		{"five failures over six hours", 5, 90 * time.Minute, integration.AttentionThreshold{}, true},
		{"five failures within an hour", 5, 10 * time.Minute, integration.AttentionThreshold{}, false},
		{"many failures, short", 40, time.Minute, integration.AttentionThreshold{}, false},
		{"four failures over a day", 4, 8 * time.Hour, integration.AttentionThreshold{}, false},
		{"custom threshold", 3, time.Second, integration.AttentionThreshold{Failures: 3, After: 2 * time.Second}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupSync(t)
			s := b.activeCRM(t)
			alerts := 0
			rounds := tc.failures
			if tc.want {
				rounds += 2 // more failures must not alert again
			}
			for i := range rounds {
				tr := b.fail(t, s, b.t0.Add(time.Duration(i)*tc.spacing), tc.threshold)
				for _, e := range tr.Effects {
					require.Equal(t, integration.EffectNeedsAttention, e.Type)
					alerts++
				}
				s = tr.State
				if i+1 < tc.failures {
					require.False(t, s.NeedsAttention, "not before %d failures", tc.failures)
				}
			}
			if !tc.want {
				require.False(t, s.NeedsAttention)
				require.Zero(t, alerts)
				return
			}
			require.True(t, s.NeedsAttention)
			require.Equal(t, 1, alerts, "one support alert")
			ok, err := s.Apply(integration.Event{Type: integration.EventSyncSucceeded, At: b.t0.Add(48 * time.Hour)})
			require.NoError(t, err)
			require.False(t, ok.State.NeedsAttention)
			require.Equal(t, []integration.Effect{{Type: integration.EffectAttentionResolved}}, ok.Effects)
		})
	}
}

func TestSyncEventsOutsideSyncingStates(t *testing.T) {
	t.Parallel()
	b := setupSync(t)
	active := b.activeCRM(t)
	paused, err := active.Apply(integration.Event{Type: integration.EventPause, At: b.t0})
	require.NoError(t, err)
	setup, err := integration.New(integration.Spec{ID: "crm-2", OrgID: "org", Kind: integration.KindCRM, Provider: "sandbox"}, b.t0)
	require.NoError(t, err)
	for name, s := range map[string]integration.State{"paused": paused.State, "setup": setup} {
		for _, ev := range []integration.EventType{integration.EventSyncFailed, integration.EventSyncSucceeded} {
			tr, err := s.Apply(integration.Event{Type: ev, Error: "x", At: b.t0.Add(time.Hour)})
			require.NoError(t, err, "%s %s", name, ev)
			require.False(t, tr.Changed, "%s %s changes nothing", name, ev)
			require.Empty(t, tr.Effects)
		}
	}
	lead, err := integration.New(integration.Spec{ID: "lead-1", OrgID: "org", Kind: integration.KindLead, Provider: "p", ExpectedSource: "s"}, b.t0)
	require.NoError(t, err)
	_, err = lead.Apply(integration.Event{Type: integration.EventSyncFailed, At: b.t0})
	require.True(t, integration.IsRejection(err))
}
