package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests pin what a CRM integration shows after every path out of a
// failing sync (issue 10: "status that is true after every path").

func TestApply_ComingBackFromAPauseWhileFailingShowsFailedSync(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		name    string
		fixture string
		back    Event
	}{
		{"resumed after a manual pause", "crm/paused manual while failing", resumeWith(passing())},
		{"validation passing after a validation pause", "crm/paused expired_credentials while failing", validation(passing())},
		{"re-authorized after a validation pause", "crm/paused expired_credentials while failing", authorizeWith(passing())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			paused := b.given(t, tc.fixture)
			require.Equal(t, StatusPaused, paused.Status)
			require.Equal(t, DefaultAttentionFailures, paused.ConsecutiveFailures, "a pause keeps the failure record")
			require.True(t, paused.NeedsAttention, "a pause keeps the attention flag (the alert stays open)")

			back := b.mustApply(t, paused, tc.back)
			s := back.State
			require.Equal(t, StatusFailedSync, s.Status, "not a healthy active: the last sync failed")
			require.Equal(t, ReasonSyncError, s.Reason)
			require.Equal(t, paused.ConsecutiveFailures, s.ConsecutiveFailures)
			require.Equal(t, paused.FailingSince, s.FailingSince)
			require.Equal(t, paused.LastSyncError, s.LastSyncError)
			require.True(t, s.NeedsAttention)
			require.Equal(t, back.Change.At, *s.NextAttemptAt, "retried at once")
			require.True(t, s.Syncs(), "it delivers again, so the next sync can clear it")

			ok := b.mustApply(t, s, syncSuccess())
			require.Equal(t, StatusActive, ok.State.Status)
			require.Equal(t, ReasonNone, ok.State.Reason)
			require.Zero(t, ok.State.ConsecutiveFailures)
			require.Nil(t, ok.State.FailingSince)
			require.Nil(t, ok.State.NextAttemptAt)
			require.Empty(t, ok.State.LastSyncError)
			require.False(t, ok.State.NeedsAttention)
			require.Equal(t, []Effect{{Type: EffectAttentionResolved}}, ok.Effects, "the support alert is resolved")
		})
	}
}

func TestApply_DeleteResolvesEveryNotificationAndAlert(t *testing.T) {
	t.Parallel()

	for _, fixture := range []string{"crm/failed_sync needs_attention", "crm/paused expired_credentials while failing", "lead/source_mismatch"} {
		t.Run(fixture, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			tr := b.mustApply(t, b.given(t, fixture), command(EventDelete))
			require.Equal(t, []Effect{{Type: EffectResolveAll}}, tr.Effects)
		})
	}
}

// TestApplyRules_OriginalRevision keeps the rules as first released, which
// workflow runs recorded before RevisionTruthfulStatus replay with.
func TestApplyRules_OriginalRevision(t *testing.T) {
	t.Parallel()
	original := Rules{Revision: RevisionOriginal}

	t.Run("resume of a failing integration shows active", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		paused := b.given(t, "crm/paused manual while failing")
		tr, err := paused.ApplyRules(Event{Type: EventResume, Checks: passing(), At: b.tick()}, original)
		require.NoError(t, err)
		require.Equal(t, StatusActive, tr.State.Status)
		require.Equal(t, paused.ConsecutiveFailures, tr.State.ConsecutiveFailures)
	})
	t.Run("delete resolves only pause notices", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		crm, err := b.given(t, "crm/failed_sync needs_attention").ApplyRules(Event{Type: EventDelete, At: b.tick()}, original)
		require.NoError(t, err)
		require.Equal(t, []Effect{{Type: EffectResolvePaused}}, crm.Effects)
		lead, err := b.given(t, "lead/source_mismatch").ApplyRules(Event{Type: EventDelete, At: b.tick()}, original)
		require.NoError(t, err)
		require.Empty(t, lead.Effects)
	})
}

// TestApply_AttentionAtTheDefaultThreshold pins design §2's "5+
// consecutive failures over 6h+" with the default rules: the alert comes
// at exactly the 5th failure and exactly at 6 hours, never one before.
func TestApply_AttentionAtTheDefaultThreshold(t *testing.T) {
	t.Parallel()

	const us = time.Microsecond
	for _, tc := range []struct {
		name string
		// offsets of the failures from the first one.
		offsets []time.Duration
		// alertAt is the failure (1-based) that raises the alert; 0: none.
		alertAt int
	}{
		{"5th failure exactly at 6h", []time.Duration{0, time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour}, 5},
		{"5th failure just before 6h, 6th at 6h", []time.Duration{0, time.Hour, 2 * time.Hour, 3 * time.Hour, 6*time.Hour - us, 6 * time.Hour}, 6},
		{"4 failures over a day", []time.Duration{0, 8 * time.Hour, 16 * time.Hour, 24 * time.Hour}, 0},
		{"5th failure at 7h", []time.Duration{0, time.Hour, 2 * time.Hour, 3 * time.Hour, 7 * time.Hour}, 5},
		{"40 failures in under 6h", spaced(40, 6*time.Hour/40), 0},
		{"6 quick failures, 7th at 6h", append(spaced(6, time.Minute), 6*time.Hour), 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			s := b.given(t, "crm/active")
			first := b.tick()
			alerts := 0
			for i, off := range tc.offsets {
				ev := syncFailure()
				ev.At = first.Add(off)
				tr := b.mustApply(t, s, ev)
				s = tr.State
				raised := len(tr.Effects) == 1 && tr.Effects[0].Type == EffectNeedsAttention
				if raised {
					alerts++
				}
				require.Equal(t, i+1 == tc.alertAt, raised, "failure %d at +%s", i+1, off)
				require.Equal(t, tc.alertAt > 0 && i+1 >= tc.alertAt, s.NeedsAttention, "failure %d at +%s", i+1, off)
			}
			require.LessOrEqual(t, alerts, 1, "one support alert per episode")
		})
	}
}

func spaced(n int, every time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i) * every
	}
	return out
}

// TestApply_FailedReauthorizationChangesNothing: new credentials for a
// set-up integration that fail validation are refused, naming the failed
// checks and what to do; the integration keeps its status (and the shell
// its current credentials). In setup, failing checks still mean
// needs_information (design §2).
func TestApply_FailedReauthorizationChangesNothing(t *testing.T) {
	t.Parallel()

	var cases []rejected
	for _, fixture := range []string{"crm/active", "crm/failed_sync", "crm/paused manual", "crm/paused expired_credentials", "crm/paused manual while failing"} {
		for _, code := range []Reason{ReasonExpiredCredentials, ReasonInsufficientPermissions, ReasonAPIDisabled} {
			cases = append(cases, rejected{
				name: fmt.Sprintf("%s with %s", fixture, code), given: fixture,
				event:    authorizeWith(failing(code)),
				mentions: []string{"failed validation", "keeps its current credentials", "authorize again", checkFor(code).Message, checkFor(code).Remediation},
			})
		}
	}
	runRejected(t, cases)

	b := setup(t)
	tr := b.mustApply(t, b.given(t, "crm/awaiting_finish"), authorizeWith(failing(ReasonExpiredCredentials)))
	require.Equal(t, ReasonNeedsInformation, tr.State.Reason, "in setup, failing checks need information")
}

// TestApplyRules_TruthfulStatusRevisionPausesOnAFailedReauthorization keeps
// the behaviour runs from before RevisionSafeReauthorization replay with.
func TestApplyRules_TruthfulStatusRevisionPausesOnAFailedReauthorization(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tr, err := b.given(t, "crm/active").ApplyRules(Event{Type: EventAuthorize, Checks: failing(ReasonExpiredCredentials), At: b.tick()},
		Rules{Revision: RevisionTruthfulStatus})
	require.NoError(t, err)
	require.Equal(t, StatusPaused, tr.State.Status)
	require.Equal(t, ReasonExpiredCredentials, tr.State.Reason)
	require.Equal(t, []Effect{{Type: EffectNotifyPaused, Reason: ReasonExpiredCredentials, Checks: failing(ReasonExpiredCredentials)}}, tr.Effects)
}

// checkFor is the catalog check that fails with code.
func checkFor(code Reason) Check {
	for _, c := range checkCatalog {
		if c.Code == code {
			return c
		}
	}
	panic("no catalog check for " + string(code))
}
