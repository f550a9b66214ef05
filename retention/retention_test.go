package retention_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/retention"
	"github.com/acme/integrations/store"
)

// testBundle is a migrated store with an active lead integration and an
// active CRM integration of one org, and a fixed clock.
type testBundle struct {
	ctx   context.Context
	store *store.Store
	now   time.Time
	lead  string
	crm   string
}

func setup(t *testing.T, db testenv.Database) *testBundle {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, db.URL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	require.NoError(t, st.Migrate(ctx))
	b := &testBundle{ctx: ctx, store: st, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), lead: "lead-r", crm: "crm-r"}
	for _, spec := range []integration.Spec{
		{ID: b.lead, OrgID: "org", Kind: integration.KindLead, Provider: "p", ExpectedSource: "s"},
		{ID: b.crm, OrgID: "org", Kind: integration.KindCRM, Provider: "sandbox"},
	} {
		s, err := integration.New(spec, b.now)
		require.NoError(t, err)
		s.Status, s.Reason, s.Version = integration.StatusActive, integration.ReasonNone, 2
		_, err = st.Project(ctx, s, integration.Change{IntegrationID: s.ID, Version: 2, Event: integration.EventCompleteSetup, ToStatus: s.Status, At: b.now})
		require.NoError(t, err)
	}
	return b
}

// addDelivered stores a lead received age ago and marks it delivered.
func (b *testBundle) addDelivered(t *testing.T, i int, age time.Duration) store.IntakeResult {
	t.Helper()
	res, err := b.store.AddLead(b.ctx, store.Lead{
		IntegrationID: b.lead, ExternalID: fmt.Sprintf("x-%d", i), Source: "s",
		Name: fmt.Sprintf("Secret Person %d", i), Email: fmt.Sprintf("secret%d@example.org", i),
		ReceivedAt: b.now.Add(-age),
	})
	require.NoError(t, err)
	require.NoError(t, b.store.CompleteDeliveries(b.ctx, b.crm, []store.DeliveryResult{{LeadID: res.LeadID, Status: store.DeliveryDelivered}}, b.now))
	return res
}

func (b *testBundle) purged(t *testing.T, res store.IntakeResult) bool {
	t.Helper()
	l, err := b.store.LeadByPublicID(b.ctx, res.PublicID)
	require.NoError(t, err)
	return l.PurgedAt != nil
}

func TestRunOncePurgesWhatIsDueInBatches(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		var old, young []store.IntakeResult
		for i := range 5 {
			old = append(old, b.addDelivered(t, i, retention.DefaultRetention+time.Duration(i+1)*time.Minute))
		}
		young = append(young, b.addDelivered(t, 10, retention.DefaultRetention-time.Minute))

		p := &retention.Purger{Store: b.store, Batch: 2, Now: func() time.Time { return b.now }}
		got, err := p.RunOnce(b.ctx)
		require.NoError(t, err)
		require.Equal(t, store.Purged{Leads: 5}, got, "three batches of 2, 2 and 1")
		for _, res := range old {
			require.True(t, b.purged(t, res))
		}
		require.False(t, b.purged(t, young[0]), "younger than the default retention of 30 days")

		// A shorter retention reaches it; a second run finds nothing new.
		p.Retention = time.Hour
		got, err = p.RunOnce(b.ctx)
		require.NoError(t, err)
		require.Equal(t, store.Purged{Leads: 1}, got)
		got, err = p.RunOnce(b.ctx)
		require.NoError(t, err)
		require.Zero(t, got)
	})
}

func TestRunPurgesAtStartAndLogsCountsOnly(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		res := b.addDelivered(t, 1, 2*time.Hour)
		var logs syncBuffer
		p := &retention.Purger{
			Store: b.store, Retention: time.Hour, Interval: time.Hour,
			Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return b.now },
		}
		ctx, cancel := context.WithCancel(b.ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.Run(ctx)
		}()
		deadline := time.Now().Add(30 * time.Second)
		for !bytes.Contains(logs.Bytes(), []byte("lead payloads purged")) {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("the first run did not log within 30s; logs: %s", logs.Bytes())
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-done
		require.True(t, b.purged(t, res))
		line := string(logs.Bytes())
		require.Contains(t, line, "leads=1")
		require.NotContains(t, line, "Secret")
		require.NotContains(t, line, "secret1@example.org")
	})
}

// TestRunPurgesSpentOAuthStates: a run deletes the OAuth consents used or
// expired more than a day ago, and keeps the others.
func TestRunPurgesSpentOAuthStates(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		add := func(name string, created time.Time, used bool) {
			hash := sha256.Sum256([]byte(name))
			require.NoError(t, b.store.AddOAuthState(b.ctx, store.OAuthState{
				StateHash: hash[:], IntegrationID: b.crm, Provider: "sandbox", RedirectURL: "http://127.0.0.1:8080/oauth/callback",
				CreatedAt: created, ExpiresAt: created.Add(10 * time.Minute),
			}))
			if used {
				_, err := b.store.ConsumeOAuthState(b.ctx, hash[:], created.Add(time.Minute))
				require.NoError(t, err)
			}
		}
		add("expired two days ago", b.now.Add(-48*time.Hour), false)
		add("used two days ago", b.now.Add(-48*time.Hour), true)
		add("used an hour ago", b.now.Add(-time.Hour), true)
		add("pending", b.now.Add(-time.Minute), false)

		var logs syncBuffer
		p := &retention.Purger{Store: b.store, Interval: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return b.now }}
		ctx, cancel := context.WithCancel(b.ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.Run(ctx)
		}()
		deadline := time.Now().Add(30 * time.Second)
		for !bytes.Contains(logs.Bytes(), []byte("spent OAuth states purged")) {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("the first run did not purge OAuth states within 30s; logs: %s", logs.Bytes())
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-done
		require.Contains(t, string(logs.Bytes()), "oauth_states=2")
		n, err := b.store.CountOAuthStates(b.ctx, b.crm)
		require.NoError(t, err)
		require.Equal(t, 2, n, "the one used an hour ago and the pending one stay")

		again, err := p.PurgeOAuthStates(b.ctx)
		require.NoError(t, err)
		require.Zero(t, again)
	})
}

// syncBuffer is a bytes.Buffer safe for the job's goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.buf.Bytes())
}
