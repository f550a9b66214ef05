package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/schema"
	"github.com/acme/integrations/store"
)

// testBundle is what every conformance test works with: a migrated store on
// one backend.
type testBundle struct {
	ctx   context.Context
	db    testenv.Database
	store *store.Store
}

// setup opens and migrates a store on db, closed when t ends.
func setup(t testing.TB, db testenv.Database) *testBundle {
	t.Helper()
	ctx := t.Context()
	s, err := store.Open(ctx, db.URL)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, s.Migrate(ctx))
	return &testBundle{ctx: ctx, db: db, store: s}
}

// migrations is how many numbered migrations schema/ holds, and
// latestMigration the highest number among them (the same once every
// branch's migrations are in).
var migrations, latestMigration = countMigrations()

func countMigrations() (count int, latest int64) {
	fsys, err := schema.FS(schema.Postgres)
	if err != nil {
		panic(err)
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		panic(err)
	}
	for _, name := range names {
		n, err := strconv.ParseInt(name[:5], 10, 64)
		if err != nil {
			panic(fmt.Sprintf("migration %s is not numbered: %v", name, err))
		}
		latest = max(latest, n)
	}
	return len(names), latest
}

// t0 is a UTC time at microsecond resolution: what the store returns.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)

// newLead returns a new lead integration at version 1.
func newLead(t testing.TB, id, org string) integration.State {
	t.Helper()
	st, err := integration.New(integration.Spec{
		ID: id, OrgID: org, Kind: integration.KindLead, Provider: "zillow", Name: "Lead " + id, ExpectedSource: "Zillow-Test",
	}, t0)
	require.NoError(t, err)
	return st
}

// newCRM returns a new CRM integration at version 1.
func newCRM(t testing.TB, id, org string) integration.State {
	t.Helper()
	st, err := integration.New(integration.Spec{
		ID: id, OrgID: org, Kind: integration.KindCRM, Provider: "hubspot", Name: "CRM " + id,
	}, t0)
	require.NoError(t, err)
	return st
}

// at returns st as of version v, changed at t0+v seconds, with the change
// that produced it.
func at(st integration.State, v int64, status integration.Status, reason integration.Reason) (integration.State, integration.Change) {
	from := st
	st.Version = v
	st.Status, st.Reason = status, reason
	st.UpdatedAt = t0.Add(time.Duration(v) * time.Second)
	ch := integration.Change{
		IntegrationID: st.ID, Version: v, Event: integration.EventPause,
		FromStatus: from.Status, FromReason: from.Reason, ToStatus: status, ToReason: reason,
		Actor: "tester", Note: fmt.Sprintf("version %d", v), At: st.UpdatedAt,
	}
	if v == 1 {
		ch = integration.Created(st, "tester")
	}
	return st, ch
}

func project(t testing.TB, b *testBundle, st integration.State, ch integration.Change) bool {
	t.Helper()
	applied, err := b.store.Project(b.ctx, st, ch)
	require.NoError(t, err)
	return applied
}

func TestOpen(t *testing.T) {
	t.Parallel()

	t.Run("RejectsUnknownSchemeWithoutEchoingTheURL", func(t *testing.T) {
		t.Parallel()
		_, err := store.Open(t.Context(), "mysql://admin:s3cret@db.example.com/app")
		require.ErrorContains(t, err, `unsupported database URL scheme "mysql"`)
		require.NotContains(t, err.Error(), "s3cret")
	})

	t.Run("RejectsEmptyURL", func(t *testing.T) {
		t.Parallel()
		_, err := store.Open(t.Context(), "  ")
		require.ErrorContains(t, err, "DATABASE_URL")
	})

	t.Run("RejectsSQLiteURLWithoutPath", func(t *testing.T) {
		t.Parallel()
		_, err := store.Open(t.Context(), "sqlite://")
		require.ErrorContains(t, err, "no file path")
	})

	t.Run("ReportsMissingSQLiteDirectory", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "missing", "x.db")
		_, err := store.Open(t.Context(), "sqlite://"+path)
		require.ErrorContains(t, err, "directory exists")
	})

	t.Run("SQLiteURLFormsOpenTheSameFile", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "forms.db")
		b := setup(t, testenv.Database{Name: "sqlite", URL: "sqlite://" + path})
		st, ch := at(newLead(t, "forms-1", "org-1"), 1, integration.StatusSetupIncomplete, integration.ReasonAwaitingTestLead)
		require.True(t, project(t, b, st, ch))

		for _, u := range []string{"sqlite:" + path, path} {
			other, err := store.Open(b.ctx, u)
			require.NoError(t, err, u)
			require.Equal(t, "sqlite", other.Dialect())
			got, err := other.Get(b.ctx, "forms-1")
			require.NoError(t, err, u)
			require.Equal(t, st, got)
			require.NoError(t, other.Close())
		}
	})

	t.Run("SQLiteInMemory", func(t *testing.T) {
		t.Parallel()
		b := setup(t, testenv.Database{Name: "sqlite", URL: "sqlite::memory:"})
		st, ch := at(newLead(t, "mem-1", "org-1"), 1, integration.StatusSetupIncomplete, integration.ReasonAwaitingTestLead)
		require.True(t, project(t, b, st, ch))
		got, err := b.store.Get(b.ctx, "mem-1")
		require.NoError(t, err)
		require.Equal(t, st, got)
	})

	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		require.Equal(t, db.Name, b.store.Dialect())
		require.NoError(t, b.store.DB().PingContext(b.ctx))
	})
}

func TestBackendAndPing(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		require.Equal(t, db.Name, b.store.Backend())
		require.NoError(t, b.store.Ping(b.ctx))

		// A store whose pool is gone says so, naming the database but not
		// its URL.
		closed, err := store.Open(b.ctx, db.URL)
		require.NoError(t, err)
		require.NoError(t, closed.Close())
		err = closed.Ping(b.ctx)
		require.ErrorContains(t, err, "ping "+db.Name+" database")
		require.NotContains(t, err.Error(), db.URL)
	})
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db) // migrates once

		st, ch := at(newLead(t, "keep-1", "org-1"), 1, integration.StatusSetupIncomplete, integration.ReasonAwaitingTestLead)
		require.True(t, project(t, b, st, ch))

		// Again, on this handle and on a second one: nothing to do, data kept.
		require.NoError(t, b.store.Migrate(b.ctx))
		second, err := store.Open(b.ctx, db.URL)
		require.NoError(t, err)
		defer second.Close()
		require.NoError(t, second.Migrate(b.ctx))

		got, err := b.store.Get(b.ctx, "keep-1")
		require.NoError(t, err)
		require.Equal(t, st, got)

		var version int64
		require.NoError(t, b.store.DB().GetContext(b.ctx, &version, `SELECT MAX(version_id) FROM goose_db_version`))
		require.Equal(t, latestMigration, version)

		for _, table := range []string{"integrations", "integration_events", "crm_credentials", "notifications", "leads", "lead_deliveries", "intake_tokens"} {
			var n int
			require.NoError(t, b.store.DB().GetContext(b.ctx, &n, `SELECT COUNT(*) FROM `+table), table)
		}
	})
}

func TestProject(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)

		t.Run("InsertsThenHigherVersionUpdates", func(t *testing.T) {
			t.Parallel()
			v1, ch1 := at(newCRM(t, "up-1", "org-1"), 1, integration.StatusSetupIncomplete, integration.ReasonAwaitingAuthorization)
			require.True(t, project(t, b, v1, ch1))
			got, err := b.store.Get(b.ctx, "up-1")
			require.NoError(t, err)
			require.Equal(t, v1, got)

			v2, ch2 := at(v1, 2, integration.StatusActive, integration.ReasonNone)
			v2.NeedsAttention, v2.ReminderSent, v2.Abandoned = true, true, true
			v2.Name = "renamed"
			require.True(t, project(t, b, v2, ch2))
			got, err = b.store.Get(b.ctx, "up-1")
			require.NoError(t, err)
			require.Equal(t, v2, got)
			require.Equal(t, t0, got.CreatedAt, "created_at stays")
		})

		t.Run("EqualOrLowerVersionChangesNothing", func(t *testing.T) {
			t.Parallel()
			v1, ch1 := at(newCRM(t, "stale-1", "org-1"), 1, integration.StatusSetupIncomplete, integration.ReasonAwaitingAuthorization)
			v3, ch3 := at(v1, 3, integration.StatusActive, integration.ReasonNone)
			require.True(t, project(t, b, v1, ch1))
			require.True(t, project(t, b, v3, ch3))

			// Same version, different content: a replay must not overwrite.
			same, sameCh := at(v1, 3, integration.StatusPaused, integration.ReasonManual)
			same.Name = "should not land"
			require.False(t, project(t, b, same, sameCh))
			// Lower version arriving late.
			v2, ch2 := at(v1, 2, integration.StatusPaused, integration.ReasonManual)
			require.False(t, project(t, b, v2, ch2))

			got, err := b.store.Get(b.ctx, "stale-1")
			require.NoError(t, err)
			require.Equal(t, v3, got)

			// The late version's history is still recorded; the replay's is not.
			events, err := b.store.Events(b.ctx, "stale-1")
			require.NoError(t, err)
			require.Equal(t, []integration.Change{ch1, ch2, ch3}, events)
		})

		t.Run("ReplaysDoNotDuplicateEvents", func(t *testing.T) {
			t.Parallel()
			st := newLead(t, "replay-1", "org-1")
			var want []integration.Change
			for v := int64(1); v <= 3; v++ {
				next, ch := at(st, v, integration.StatusSetupIncomplete, integration.ReasonSourceMismatch)
				require.True(t, project(t, b, next, ch))
				require.False(t, project(t, b, next, ch), "replay of version %d", v)
				want = append(want, ch)
			}
			events, err := b.store.Events(b.ctx, "replay-1")
			require.NoError(t, err)
			require.Equal(t, want, events)
		})

		t.Run("RejectsBadInputAndWritesNothing", func(t *testing.T) {
			t.Parallel()
			good, goodCh := at(newLead(t, "bad-1", "org-1"), 1, integration.StatusSetupIncomplete, integration.ReasonAwaitingTestLead)
			cases := map[string]struct {
				mutate func(st *integration.State, ch *integration.Change)
				want   string
			}{
				"ChangeOfOtherVersion": {func(_ *integration.State, ch *integration.Change) { ch.Version = 2 }, "change record is for"},
				"ChangeOfOtherID":      {func(_ *integration.State, ch *integration.Change) { ch.IntegrationID = "x" }, "change record is for"},
				"ZeroVersion": {func(st *integration.State, ch *integration.Change) {
					st.Version, ch.Version = 0, 0
				}, "not positive"},
				"UnknownStatus": {func(st *integration.State, _ *integration.Change) { st.Status = "sleeping" }, "unknown status"},
				"UnknownKind":   {func(st *integration.State, _ *integration.Change) { st.Kind = "fax" }, "unknown kind"},
				"NoOrg":         {func(st *integration.State, _ *integration.Change) { st.OrgID = "" }, "no org ID"},
				"NoEvent":       {func(_ *integration.State, ch *integration.Change) { ch.Event = "" }, "no event"},
			}
			for name, tc := range cases {
				st, ch := good, goodCh
				tc.mutate(&st, &ch)
				_, err := b.store.Project(b.ctx, st, ch)
				require.ErrorContains(t, err, tc.want, name)
			}
			_, err := b.store.Get(b.ctx, "bad-1")
			require.ErrorIs(t, err, store.ErrNotFound)
			events, err := b.store.Events(b.ctx, "bad-1")
			require.NoError(t, err)
			require.Empty(t, events)
		})

		t.Run("ConcurrentWritersKeepTheHighestVersion", func(t *testing.T) {
			t.Parallel()
			base := newCRM(t, "race-1", "org-1")
			const versions = 30
			var wg sync.WaitGroup
			errs := make(chan error, versions)
			// Two writers deliver the versions in opposite orders.
			for _, descending := range []bool{false, true} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := int64(1); i <= versions; i++ {
						v := i
						if descending {
							v = versions + 1 - i
						}
						st, ch := at(base, v, integration.StatusActive, integration.ReasonNone)
						if _, err := b.store.Project(b.ctx, st, ch); err != nil {
							errs <- err
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			got, err := b.store.Get(b.ctx, "race-1")
			require.NoError(t, err)
			require.Equal(t, int64(versions), got.Version)
			events, err := b.store.Events(b.ctx, "race-1")
			require.NoError(t, err)
			require.Len(t, events, versions)
		})
	})
}

func TestGetUnknown(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		_, err := b.store.Get(b.ctx, "nope")
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorContains(t, err, `"nope"`)
	})
}

func TestList(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)

		// Inserted out of order to prove List sorts by org, then id.
		type row struct {
			id, org string
			kind    integration.Kind
			status  integration.Status
		}
		rows := []row{
			{"c-2", "org-b", integration.KindCRM, integration.StatusActive},
			{"l-1", "org-a", integration.KindLead, integration.StatusSetupIncomplete},
			{"c-1", "org-a", integration.KindCRM, integration.StatusPaused},
			{"l-2", "org-b", integration.KindLead, integration.StatusActive},
			{"c-3", "org-a", integration.KindCRM, integration.StatusActive},
		}
		for _, r := range rows {
			var st integration.State
			if r.kind == integration.KindLead {
				st = newLead(t, r.id, r.org)
			} else {
				st = newCRM(t, r.id, r.org)
			}
			st, ch := at(st, 1, r.status, "")
			require.True(t, project(t, b, st, ch))
		}
		ids := func(f store.ListFilter) []string {
			t.Helper()
			states, err := b.store.List(b.ctx, f)
			require.NoError(t, err)
			out := []string{}
			for _, st := range states {
				out = append(out, st.OrgID+"/"+st.ID)
			}
			return out
		}

		require.Equal(t, []string{"org-a/c-1", "org-a/c-3", "org-a/l-1", "org-b/c-2", "org-b/l-2"}, ids(store.ListFilter{}))
		require.Equal(t, []string{"org-b/c-2", "org-b/l-2"}, ids(store.ListFilter{OrgID: "org-b"}))
		require.Equal(t, []string{"org-a/c-1", "org-a/c-3", "org-b/c-2"}, ids(store.ListFilter{Kind: integration.KindCRM}))
		require.Equal(t, []string{"org-a/c-3", "org-b/c-2", "org-b/l-2"}, ids(store.ListFilter{Status: integration.StatusActive}))
		require.Equal(t, []string{"org-a/c-3"}, ids(store.ListFilter{OrgID: "org-a", Kind: integration.KindCRM, Status: integration.StatusActive}))
		require.Equal(t, []string{"org-a/c-1", "org-a/c-3"}, ids(store.ListFilter{Limit: 2}))
		require.Equal(t, []string{}, ids(store.ListFilter{OrgID: "org-z"}))

		// Whole states come back, not just keys.
		states, err := b.store.List(b.ctx, store.ListFilter{OrgID: "org-a", Kind: integration.KindLead})
		require.NoError(t, err)
		want, _ := at(newLead(t, "l-1", "org-a"), 1, integration.StatusSetupIncomplete, "")
		require.Equal(t, []integration.State{want}, states)

		for _, f := range []store.ListFilter{{Limit: -1}, {Limit: store.MaxListLimit + 1}} {
			_, err := b.store.List(b.ctx, f)
			require.ErrorContains(t, err, "out of range")
		}
		_, err = b.store.List(b.ctx, store.ListFilter{Kind: "fax"})
		require.ErrorContains(t, err, "unknown kind")
		_, err = b.store.List(b.ctx, store.ListFilter{Status: "sleeping"})
		require.ErrorContains(t, err, "unknown status")
	})
}

func TestListDefaultLimit(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		for i := range store.DefaultListLimit + 5 {
			st, ch := at(newLead(t, fmt.Sprintf("many-%03d", i), "org-1"), 1, integration.StatusSetupIncomplete, "")
			require.True(t, project(t, b, st, ch))
		}
		states, err := b.store.List(b.ctx, store.ListFilter{})
		require.NoError(t, err)
		require.Len(t, states, store.DefaultListLimit)
		require.Equal(t, "many-000", states[0].ID)

		states, err = b.store.List(b.ctx, store.ListFilter{Limit: store.MaxListLimit})
		require.NoError(t, err)
		require.Len(t, states, store.DefaultListLimit+5)
	})
}

func TestEventsOrderedByVersion(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		base := newCRM(t, "order-1", "org-1")
		other := newCRM(t, "order-2", "org-1")
		changes := map[int64]integration.Change{}
		for _, v := range []int64{1, 4, 2, 5, 3} {
			st, ch := at(base, v, integration.StatusActive, "")
			project(t, b, st, ch)
			changes[v] = ch
			// Another integration's events must not show up.
			ost, och := at(other, v, integration.StatusActive, "")
			project(t, b, ost, och)
		}
		events, err := b.store.Events(b.ctx, "order-1")
		require.NoError(t, err)
		require.Equal(t, []integration.Change{changes[1], changes[2], changes[3], changes[4], changes[5]}, events)

		none, err := b.store.Events(b.ctx, "unknown")
		require.NoError(t, err)
		require.Empty(t, none)
	})
}

func TestNotifications(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)

		note := func(integrationID, channel, kind, key string) store.Notification {
			return store.Notification{
				IntegrationID: integrationID, OrgID: "org-1", Channel: channel, Kind: kind,
				Subject: "Subject " + key, Body: "Body " + key, DedupeKey: key, CreatedAt: t0,
			}
		}

		t.Run("DedupeAndResolve", func(t *testing.T) {
			t.Parallel()
			email := note("n-1", store.ChannelEmail, "paused", "n-1:paused:2:email")
			inApp := note("n-1", store.ChannelInApp, "paused", "n-1:paused:2:in_app")
			reminder := note("n-1", store.ChannelEmail, "setup_reminder", "n-1:setup_reminder")
			otherIntegration := note("n-2", store.ChannelEmail, "paused", "n-2:paused:2:email")
			for _, n := range []store.Notification{email, inApp, reminder, otherIntegration} {
				created, err := b.store.AddNotification(b.ctx, n)
				require.NoError(t, err)
				require.True(t, created, n.DedupeKey)
			}
			dup := email
			dup.Subject = "a retry must not add or change anything"
			created, err := b.store.AddNotification(b.ctx, dup)
			require.NoError(t, err)
			require.False(t, created)

			resolvedAt := t0.Add(time.Hour)
			n, err := b.store.ResolveNotifications(b.ctx, "n-1", "paused", resolvedAt)
			require.NoError(t, err)
			require.Equal(t, int64(2), n)
			// Already resolved: nothing more to do.
			n, err = b.store.ResolveNotifications(b.ctx, "n-1", "paused", resolvedAt.Add(time.Hour))
			require.NoError(t, err)
			require.Zero(t, n)

			got, err := b.store.Notifications(b.ctx, "n-1")
			require.NoError(t, err)
			require.Len(t, got, 3)
			for i, want := range []store.Notification{email, inApp, reminder} {
				require.Positive(t, got[i].ID)
				want.ID = got[i].ID
				want.Status = store.NotificationOpen
				if want.Kind == "paused" {
					want.Status = store.NotificationResolved
					want.ResolvedAt = &resolvedAt
				}
				require.Equal(t, want, got[i])
			}
			require.Less(t, got[0].ID, got[1].ID)

			others, err := b.store.Notifications(b.ctx, "n-2")
			require.NoError(t, err)
			require.Len(t, others, 1)
			require.Equal(t, store.NotificationOpen, others[0].Status, "other integrations are untouched")
			require.Nil(t, others[0].ResolvedAt)
		})

		t.Run("ResolveEveryKind", func(t *testing.T) {
			t.Parallel()
			for _, kind := range []string{"paused", "setup_reminder"} {
				_, err := b.store.AddNotification(b.ctx, note("n-3", store.ChannelEmail, kind, "n-3:"+kind))
				require.NoError(t, err)
			}
			n, err := b.store.ResolveNotifications(b.ctx, "n-3", "", t0)
			require.NoError(t, err)
			require.Equal(t, int64(2), n)
		})

		t.Run("RejectsBadInput", func(t *testing.T) {
			t.Parallel()
			good := note("n-4", store.ChannelEmail, "paused", "n-4:x")
			cases := map[string]func(n *store.Notification){
				"NoDedupeKey":       func(n *store.Notification) { n.DedupeKey = "" },
				"UnknownChannel":    func(n *store.Notification) { n.Channel = "fax" },
				"NoOrg":             func(n *store.Notification) { n.OrgID = "" },
				"NoCreationTime":    func(n *store.Notification) { n.CreatedAt = time.Time{} },
				"UnknownStatus":     func(n *store.Notification) { n.Status = "snoozed" },
				"ResolvedWithoutAt": func(n *store.Notification) { n.Status = store.NotificationResolved },
			}
			for name, mutate := range cases {
				n := good
				mutate(&n)
				_, err := b.store.AddNotification(b.ctx, n)
				require.Error(t, err, name)
			}
			got, err := b.store.Notifications(b.ctx, "n-4")
			require.NoError(t, err)
			require.Empty(t, got)
			_, err = b.store.ResolveNotifications(b.ctx, "", "paused", t0)
			require.Error(t, err)
		})
	})
}

func TestTimesRoundTripInUTCToTheMicrosecond(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		// Nanoseconds and a non-UTC zone: the store keeps the instant, in
		// UTC, at PostgreSQL's microsecond resolution on both backends.
		local := time.Date(2025, 6, 7, 23, 59, 58, 987654321, time.FixedZone("UTC-7", -7*3600))
		want := time.Date(2025, 6, 8, 6, 59, 58, 987654000, time.UTC)

		st, ch := at(newCRM(t, "time-1", "org-1"), 1, integration.StatusSetupIncomplete, integration.ReasonAwaitingAuthorization)
		st.CreatedAt, st.UpdatedAt, ch.At = local, local.Add(time.Microsecond), local
		st.Setup[0].Done, st.Setup[0].At = true, &local
		st.Validation = &integration.Validation{At: &local, Checks: []integration.Check{{Name: "token", OK: true}}}
		require.True(t, project(t, b, st, ch))

		got, err := b.store.Get(b.ctx, "time-1")
		require.NoError(t, err)
		require.Equal(t, want, got.CreatedAt)
		require.Same(t, time.UTC, got.CreatedAt.Location())
		require.Equal(t, want.Add(time.Microsecond), got.UpdatedAt)
		require.Equal(t, want, *got.Setup[0].At)
		require.Same(t, time.UTC, got.Setup[0].At.Location())
		require.Equal(t, want, *got.Validation.At)

		events, err := b.store.Events(b.ctx, "time-1")
		require.NoError(t, err)
		require.Len(t, events, 1)
		require.Equal(t, want, events[0].At)

		added, err := b.store.AddCandidateCredential(b.ctx, "time-1", sealAs([]byte("sealed"), "k"), local)
		require.NoError(t, err)
		_, err = b.store.PromoteCredential(b.ctx, "time-1", added.Version, local.Add(time.Second))
		require.NoError(t, err)
		cred, err := b.store.CredentialVersion(b.ctx, "time-1", added.Version)
		require.NoError(t, err)
		require.Equal(t, want, cred.CreatedAt)
		require.Equal(t, want.Add(time.Second), *cred.PromotedAt)
		require.Same(t, time.UTC, cred.PromotedAt.Location())

		_, err = b.store.AddNotification(b.ctx, store.Notification{
			IntegrationID: "time-1", OrgID: "org-1", Channel: store.ChannelEmail, Kind: "paused",
			Subject: "s", DedupeKey: "time-1:paused", CreatedAt: local,
		})
		require.NoError(t, err)
		_, err = b.store.ResolveNotifications(b.ctx, "time-1", "paused", local.Add(time.Second))
		require.NoError(t, err)
		notes, err := b.store.Notifications(b.ctx, "time-1")
		require.NoError(t, err)
		require.Len(t, notes, 1)
		require.Equal(t, want, notes[0].CreatedAt)
		require.Equal(t, want.Add(time.Second), *notes[0].ResolvedAt)

		// Stored times compare as times in SQL too (SQLite holds them as text).
		var later int
		require.NoError(t, b.store.DB().GetContext(b.ctx, &later, b.store.DB().Rebind(
			`SELECT COUNT(*) FROM integrations WHERE updated_at > ? AND updated_at < ?`),
			want, want.Add(2*time.Microsecond)))
		require.Equal(t, 1, later)
	})
}

func TestJSONColumnsRoundTrip(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)

		t.Run("CRMValidationAndSetupSteps", func(t *testing.T) {
			t.Parallel()
			done := t0.Add(time.Minute)
			st, ch := at(newCRM(t, "json-crm", "org-1"), 2, integration.StatusPaused, integration.ReasonInsufficientPermissions)
			st.Setup[0].Done, st.Setup[0].At = true, &done
			st.Validation = &integration.Validation{
				At: &done,
				Checks: []integration.Check{
					{Name: "token", OK: true},
					{Name: "scopes", OK: false, Code: integration.ReasonInsufficientPermissions,
						Message: `missing "crm.objects.contacts.write"`, Remediation: "Re-authorize with the contacts write scope — ünïcödé too."},
				},
			}
			require.True(t, project(t, b, st, ch))
			got, err := b.store.Get(b.ctx, "json-crm")
			require.NoError(t, err)
			require.Equal(t, st, got)
			require.Len(t, got.Validation.Failed(), 1)
		})

		t.Run("LeadRevisionRequests", func(t *testing.T) {
			t.Parallel()
			st, ch := at(newLead(t, "json-lead", "org-1"), 2, integration.StatusSetupIncomplete, integration.ReasonSourceMismatch)
			st.LastReceivedSource = "zillow-test "
			st.RevisionRequested = []string{"zillow-test", "zillow-test ", `quote"and\backslash`}
			require.True(t, project(t, b, st, ch))
			got, err := b.store.Get(b.ctx, "json-lead")
			require.NoError(t, err)
			require.Equal(t, st, got)
			require.Nil(t, got.Validation)
		})

		t.Run("EmptyListsComeBackNil", func(t *testing.T) {
			t.Parallel()
			st, ch := at(newLead(t, "json-empty", "org-1"), 1, integration.StatusSetupIncomplete, "")
			st.Setup, st.RevisionRequested = []integration.SetupStep{}, []string{}
			require.True(t, project(t, b, st, ch))
			got, err := b.store.Get(b.ctx, "json-empty")
			require.NoError(t, err)
			require.Nil(t, got.Setup)
			require.Nil(t, got.RevisionRequested)
		})
	})
}

// TestSQLiteSharedFileConcurrentWriters checks what the dev stack and a CLI
// in a second terminal do: two handles on one SQLite file writing at once
// must queue, not fail with "database is locked".
func TestSQLiteSharedFileConcurrentWriters(t *testing.T) {
	t.Parallel()
	url := testenv.SQLiteURL(t)
	first := setup(t, testenv.Database{Name: "sqlite", URL: url})
	second := setup(t, testenv.Database{Name: "sqlite", URL: url})

	const writes = 50
	var wg sync.WaitGroup
	errs := make(chan error, 4*writes)
	for i, b := range []*testBundle{first, second} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := newCRM(t, fmt.Sprintf("shared-%d", i), "org-1")
			for v := int64(1); v <= writes; v++ {
				st, ch := at(base, v, integration.StatusActive, "")
				if _, err := b.store.Project(b.ctx, st, ch); err != nil {
					errs <- err
				}
				// Both handles also race on one integration.
				shared, sharedCh := at(newCRM(t, "shared-both", "org-1"), v, integration.StatusActive, "")
				if _, err := b.store.Project(b.ctx, shared, sharedCh); err != nil {
					errs <- err
				}
				if _, err := b.store.AddCandidateCredential(b.ctx, "shared-both", sealAs([]byte{byte(v)}, "k"), t0); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	var failures []string
	for err := range errs {
		failures = append(failures, err.Error())
	}
	require.Empty(t, failures, strings.Join(failures, "\n"))

	for _, id := range []string{"shared-0", "shared-1", "shared-both"} {
		got, err := second.store.Get(second.ctx, id)
		require.NoError(t, err)
		require.Equal(t, int64(writes), got.Version, id)
		events, err := first.store.Events(first.ctx, id)
		require.NoError(t, err)
		require.Len(t, events, writes, id)
	}
	creds, err := first.store.ListCredentials(first.ctx, store.CredentialKey{}, store.MaxCredentialPage)
	require.NoError(t, err)
	require.Len(t, creds, 2*writes)
	require.Equal(t, 2*writes, creds[len(creds)-1].Version)
}

// TestConcurrentMigrate starts several processes' worth of handles on a
// fresh database at once, as a dev stack and a worker starting together do.
func TestConcurrentMigrate(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		const handles = 4
		stores := make([]*store.Store, handles)
		for i := range stores {
			s, err := store.Open(t.Context(), db.URL)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			stores[i] = s
		}
		errs := make(chan error, handles)
		var wg sync.WaitGroup
		for _, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.Migrate(t.Context())
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		var applied int
		require.NoError(t, stores[0].DB().GetContext(t.Context(), &applied,
			`SELECT COUNT(*) FROM goose_db_version WHERE version_id > 0`))
		require.Equal(t, migrations, applied, "each migration is recorded once")
	})
}

func TestSyncHealthRoundTrip(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		st, ch := at(newCRM(t, "crm-sync", "org"), 2, integration.StatusFailedSync, integration.ReasonSyncError)
		since, next := t0.Add(time.Minute), t0.Add(2*time.Minute+time.Microsecond)
		st.ConsecutiveFailures, st.FailingSince, st.LastSyncError, st.NextAttemptAt = 4, &since, "HTTP 503 (transient)", &next
		st.NeedsAttention = true
		require.True(t, project(t, b, st, ch))
		got, err := b.store.Get(b.ctx, st.ID)
		require.NoError(t, err)
		require.Equal(t, st, got)

		// Recovery clears them again.
		ok, ch := at(st, 3, integration.StatusActive, integration.ReasonNone)
		ok.ConsecutiveFailures, ok.FailingSince, ok.LastSyncError, ok.NextAttemptAt, ok.NeedsAttention = 0, nil, "", nil, false
		require.True(t, project(t, b, ok, ch))
		got, err = b.store.Get(b.ctx, st.ID)
		require.NoError(t, err)
		require.Equal(t, ok, got)
	})
}

func TestOAuthStates(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		hash := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
		st := store.OAuthState{
			StateHash: hash("state-1"), IntegrationID: "crm-1", Provider: "hubspot", Sandbox: true,
			RedirectURL: "http://127.0.0.1:8080/oauth/callback", RequestedBy: "ops-key", ClaimedBy: "alice",
			CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute),
		}
		require.NoError(t, b.store.AddOAuthState(b.ctx, st))
		require.NoError(t, b.store.AddOAuthState(b.ctx, store.OAuthState{
			StateHash: hash("state-2"), IntegrationID: "crm-1", Provider: "hubspot",
			RedirectURL: st.RedirectURL, CreatedAt: t0, ExpiresAt: t0.Add(time.Minute),
		}))

		_, err := b.store.ConsumeOAuthState(b.ctx, hash("forged"), t0)
		require.ErrorIs(t, err, store.ErrNotFound, "an unknown state")
		_, err = b.store.ConsumeOAuthState(b.ctx, hash("state-2"), t0.Add(time.Minute))
		require.ErrorIs(t, err, store.ErrNotFound, "expired at its expiry")

		got, err := b.store.ConsumeOAuthState(b.ctx, hash("state-1"), t0.Add(time.Minute))
		require.NoError(t, err)
		require.Equal(t, st, got)
		_, err = b.store.ConsumeOAuthState(b.ctx, hash("state-1"), t0.Add(2*time.Minute))
		require.ErrorIs(t, err, store.ErrNotFound, "single-use")

		n, err := b.store.CountOAuthStates(b.ctx, "crm-1")
		require.NoError(t, err)
		require.Equal(t, 2, n)

		for _, bad := range []store.OAuthState{
			{StateHash: []byte("short"), IntegrationID: "crm-1", Provider: "hubspot", RedirectURL: "x", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)},
			{StateHash: hash("s3"), Provider: "hubspot", RedirectURL: "x", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)},
			{StateHash: hash("s4"), IntegrationID: "crm-1", Provider: "hubspot", RedirectURL: "x", CreatedAt: t0, ExpiresAt: t0},
		} {
			require.Error(t, b.store.AddOAuthState(b.ctx, bad))
		}
		n, err = b.store.CountOAuthStates(b.ctx, "crm-1")
		require.NoError(t, err)
		require.Equal(t, 2, n, "refused states store nothing")
	})
}

// TestPurgeOAuthStates: consents used or expired before the cutoff go;
// one still usable, or used or expired since, stays.
func TestPurgeOAuthStates(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		hash := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
		add := func(name, id string, created time.Time) {
			require.NoError(t, b.store.AddOAuthState(b.ctx, store.OAuthState{
				StateHash: hash(name), IntegrationID: id, Provider: "hubspot", RedirectURL: "http://127.0.0.1:8080/oauth/callback",
				CreatedAt: created, ExpiresAt: created.Add(10 * time.Minute),
			}))
		}
		cutoff := t0.Add(24 * time.Hour)
		add("expired-long-ago", "crm-old", t0)
		add("used-long-ago", "crm-old", t0)
		_, err := b.store.ConsumeOAuthState(b.ctx, hash("used-long-ago"), t0.Add(time.Minute))
		require.NoError(t, err)
		add("expired-since", "crm-new", cutoff.Add(-5*time.Minute))
		add("used-since", "crm-new", cutoff.Add(time.Minute))
		_, err = b.store.ConsumeOAuthState(b.ctx, hash("used-since"), cutoff.Add(2*time.Minute))
		require.NoError(t, err)
		add("usable", "crm-new", cutoff.Add(time.Hour))

		n, err := b.store.PurgeOAuthStates(b.ctx, cutoff)
		require.NoError(t, err)
		require.Equal(t, int64(2), n)
		old, err := b.store.CountOAuthStates(b.ctx, "crm-old")
		require.NoError(t, err)
		require.Zero(t, old)
		kept, err := b.store.CountOAuthStates(b.ctx, "crm-new")
		require.NoError(t, err)
		require.Equal(t, 3, kept)
		_, err = b.store.ConsumeOAuthState(b.ctx, hash("usable"), cutoff.Add(time.Hour+time.Minute))
		require.NoError(t, err, "a usable state is kept usable")

		n, err = b.store.PurgeOAuthStates(b.ctx, cutoff)
		require.NoError(t, err)
		require.Zero(t, n, "nothing more is due")
	})
}

func TestQuotas(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		crm := newCRM(t, "crm-1", "org")
		require.True(t, project(t, b, crm, integration.Created(crm, "tester")))
		_, err := b.store.QuotaOf(b.ctx, "crm-1")
		require.ErrorIs(t, err, store.ErrNotFound)

		q := store.Quota{Remaining: 97, Limit: 100, Window: "10s", ObservedAt: t0}
		require.NoError(t, b.store.SaveQuota(b.ctx, "crm-1", q))
		got, err := b.store.QuotaOf(b.ctx, "crm-1")
		require.NoError(t, err)
		require.Equal(t, q, got)

		newer := store.Quota{Remaining: 10018, Limit: 100000, Window: "24h", ObservedAt: t0.Add(time.Second)}
		require.NoError(t, b.store.SaveQuota(b.ctx, "crm-1", newer))
		require.NoError(t, b.store.SaveQuota(b.ctx, "crm-1", q), "an older report")
		got, err = b.store.QuotaOf(b.ctx, "crm-1")
		require.NoError(t, err)
		require.Equal(t, newer, got, "the latest report wins")

		require.Error(t, b.store.SaveQuota(b.ctx, "crm-2", store.Quota{Remaining: 1, Limit: 2}))
		_, err = b.store.QuotaOf(b.ctx, "crm-2")
		require.ErrorIs(t, err, store.ErrNotFound, "a refused quota stores nothing")

		// No quota for an integration that is not projected.
		require.ErrorIs(t, b.store.SaveQuota(b.ctx, "crm-absent", q), store.ErrNotFound)
		_, err = b.store.QuotaOf(b.ctx, "crm-absent")
		require.ErrorIs(t, err, store.ErrNotFound, "nothing stored for an absent integration")

		// Deleting the integration removes its quota, and a report that
		// lands after the delete does not bring it back.
		deleted, ch := at(crm, 2, integration.StatusDeleted, integration.ReasonNone)
		require.True(t, project(t, b, deleted, ch))
		_, err = b.store.QuotaOf(b.ctx, "crm-1")
		require.ErrorIs(t, err, store.ErrNotFound, "the delete removed it")
		late := store.Quota{Remaining: 5, Limit: 100000, Window: "24h", ObservedAt: t0.Add(time.Hour)}
		require.ErrorIs(t, b.store.SaveQuota(b.ctx, "crm-1", late), store.ErrDeleted)
		_, err = b.store.QuotaOf(b.ctx, "crm-1")
		require.ErrorIs(t, err, store.ErrNotFound, "nothing stored for a deleted integration")
	})
}
