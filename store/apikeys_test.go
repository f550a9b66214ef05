package store_test

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/store"
)

// apiKeyBundle is a migrated store for the API key and event page tests.
type apiKeyBundle struct {
	*testBundle
	n int
}

func setupAPIKeys(t *testing.T, db testenv.Database) *apiKeyBundle {
	t.Helper()
	return &apiKeyBundle{testBundle: setup(t, db)}
}

// key returns a fresh key of org ("" for an admin key) named name.
func (b *apiKeyBundle) key(org, name string) store.APIKey {
	b.n++
	hash := sha256.Sum256(fmt.Appendf(nil, "key-%d", b.n))
	return store.APIKey{
		ID: fmt.Sprintf("%016x", b.n), OrgID: org, Admin: org == "", Name: name,
		Hash: hash[:], CreatedAt: t0.Add(time.Duration(b.n) * time.Second),
	}
}

// count is how many rows api_keys has.
func (b *apiKeyBundle) count(t *testing.T) int {
	t.Helper()
	keys, err := b.store.ListAPIKeys(b.ctx, store.APIKeyFilter{})
	require.NoError(t, err)
	return len(keys)
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupAPIKeys(t, db)

		admin, acme, acme2, other := b.key("", "ops"), b.key("acme", "backend"), b.key("acme", "zapier"), b.key("globex", "backend")
		for _, k := range []store.APIKey{admin, acme, acme2, other} {
			require.NoError(t, b.store.AddAPIKey(b.ctx, k))
		}
		got, err := b.store.APIKey(b.ctx, acme.ID)
		require.NoError(t, err)
		require.Equal(t, acme, got)
		require.False(t, got.Revoked())
		got, err = b.store.APIKey(b.ctx, admin.ID)
		require.NoError(t, err)
		require.True(t, got.Admin)
		require.Empty(t, got.OrgID)

		_, err = b.store.APIKey(b.ctx, "0123456789abcdef")
		require.ErrorIs(t, err, store.ErrNotFound)

		all, err := b.store.ListAPIKeys(b.ctx, store.APIKeyFilter{})
		require.NoError(t, err)
		require.Equal(t, []store.APIKey{admin, acme, acme2, other}, all, "admin keys first, then by org and name")
		ofAcme, err := b.store.ListAPIKeys(b.ctx, store.APIKeyFilter{OrgID: "acme"})
		require.NoError(t, err)
		require.Equal(t, []store.APIKey{acme, acme2}, ofAcme)
		admins, err := b.store.ListAPIKeys(b.ctx, store.APIKeyFilter{Admin: true})
		require.NoError(t, err)
		require.Equal(t, []store.APIKey{admin}, admins)
		none, err := b.store.ListAPIKeys(b.ctx, store.APIKeyFilter{OrgID: "nobody"})
		require.NoError(t, err)
		require.Empty(t, none)

		// One working key per org and name; another org may use the name.
		before := b.count(t)
		err = b.store.AddAPIKey(b.ctx, b.key("acme", "backend"))
		require.ErrorIs(t, err, store.ErrNameInUse)
		require.ErrorContains(t, err, `org acme named "backend"`)
		err = b.store.AddAPIKey(b.ctx, b.key("", "ops"))
		require.ErrorIs(t, err, store.ErrNameInUse)
		require.Equal(t, before, b.count(t), "a refused key is not stored")

		// Revocation: at once, once; the name is free again.
		revokedAt := t0.Add(time.Hour)
		revoked, err := b.store.RevokeAPIKey(b.ctx, acme.ID, revokedAt)
		require.NoError(t, err)
		require.True(t, revoked.Revoked())
		require.Equal(t, revokedAt, *revoked.RevokedAt)
		again, err := b.store.RevokeAPIKey(b.ctx, acme.ID, revokedAt.Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, revokedAt, *again.RevokedAt, "a second revoke keeps the first time")
		_, err = b.store.RevokeAPIKey(b.ctx, "0123456789abcdef", revokedAt)
		require.ErrorIs(t, err, store.ErrNotFound)
		reissued := b.key("acme", "backend")
		require.NoError(t, b.store.AddAPIKey(b.ctx, reissued))
		ofAcme, err = b.store.ListAPIKeys(b.ctx, store.APIKeyFilter{OrgID: "acme"})
		require.NoError(t, err)
		require.Equal(t, []string{acme.ID, reissued.ID, acme2.ID}, keyIDs(ofAcme), "revoked keys stay listed")
	})
}

func TestAPIKeyRefusals(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupAPIKeys(t, db)
		good := b.key("acme", "backend")
		for _, tc := range []struct {
			name string
			edit func(k *store.APIKey)
			want string
		}{
			{"short ID", func(k *store.APIKey) { k.ID = "abc" }, "16 hex digits"},
			{"upper-case ID", func(k *store.APIKey) { k.ID = "0123456789ABCDEF" }, "16 hex digits"},
			{"no name", func(k *store.APIKey) { k.Name = "" }, "no name"},
			{"admin with an org", func(k *store.APIKey) { k.Admin = true }, "admin key has no org"},
			{"org key without an org", func(k *store.APIKey) { k.OrgID = "" }, "needs an org"},
			{"the key, not its hash", func(k *store.APIKey) { k.Hash = []byte("iak_secret") }, "never the key"},
			{"no time", func(k *store.APIKey) { k.CreatedAt = time.Time{} }, "no issue time"},
		} {
			k := good
			tc.edit(&k)
			require.ErrorContains(t, b.store.AddAPIKey(b.ctx, k), tc.want, tc.name)
		}
		require.Zero(t, b.count(t), "nothing refused is stored")
		_, err := b.store.ListAPIKeys(b.ctx, store.APIKeyFilter{OrgID: "acme", Admin: true})
		require.ErrorContains(t, err, "one or the other")
	})
}

func keyIDs(keys []store.APIKey) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return ids
}

// TestEventPage: pages of an integration's changes after a version, with
// the claimed actor kept beside the actor.
func TestEventPage(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setupAPIKeys(t, db)
		base, other := newCRM(t, "page-1", "org-1"), newCRM(t, "page-2", "org-1")
		var want []integration.Change
		for v := int64(1); v <= 7; v++ {
			st, ch := at(base, v, integration.StatusActive, "")
			if v > 1 {
				ch.Actor, ch.ClaimedBy = "backend", fmt.Sprintf("user-%d", v)
			}
			project(t, b.testBundle, st, ch)
			want = append(want, ch)
			ost, och := at(other, v, integration.StatusActive, "")
			project(t, b.testBundle, ost, och)
		}

		page, more, err := b.store.EventPage(b.ctx, "page-1", store.EventFilter{Limit: 3})
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, want[:3], page)
		require.Equal(t, "user-2", page[1].ClaimedBy)
		page, more, err = b.store.EventPage(b.ctx, "page-1", store.EventFilter{After: 3, Limit: 3})
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, want[3:6], page)
		page, more, err = b.store.EventPage(b.ctx, "page-1", store.EventFilter{After: 6, Limit: 3})
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, want[6:], page)
		page, more, err = b.store.EventPage(b.ctx, "page-1", store.EventFilter{After: 4, Limit: 3})
		require.NoError(t, err)
		require.False(t, more, "exactly the rest is the last page")
		require.Equal(t, want[4:], page)
		page, more, err = b.store.EventPage(b.ctx, "page-1", store.EventFilter{After: 7})
		require.NoError(t, err)
		require.False(t, more)
		require.Empty(t, page)
		page, _, err = b.store.EventPage(b.ctx, "page-1", store.EventFilter{})
		require.NoError(t, err)
		require.Equal(t, want, page, "the default limit holds them all")
		page, more, err = b.store.EventPage(b.ctx, "unknown", store.EventFilter{})
		require.NoError(t, err)
		require.False(t, more)
		require.Empty(t, page)

		_, _, err = b.store.EventPage(b.ctx, "page-1", store.EventFilter{Limit: store.MaxEventLimit + 1})
		require.ErrorContains(t, err, "out of range")
		_, _, err = b.store.EventPage(b.ctx, "page-1", store.EventFilter{Limit: -1})
		require.ErrorContains(t, err, "out of range")
		_, _, err = b.store.EventPage(b.ctx, "page-1", store.EventFilter{After: -1})
		require.ErrorContains(t, err, "negative")
	})
}
