package apikey_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/apikey"
	"github.com/acme/integrations/internal/testenv"
	"github.com/acme/integrations/schema"
	"github.com/acme/integrations/store"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// testBundle is a migrated store to issue keys into.
type testBundle struct {
	t     *testing.T
	store *store.Store
}

func setup(t *testing.T, db testenv.Database) *testBundle {
	t.Helper()
	s, err := store.Open(t.Context(), db.URL)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, s.Migrate(t.Context()))
	return &testBundle{t: t, store: s}
}

func (b *testBundle) keys() []store.APIKey {
	b.t.Helper()
	keys, err := b.store.ListAPIKeys(b.t.Context(), store.APIKeyFilter{})
	require.NoError(b.t, err)
	return keys
}

func TestIssueAndAuthenticate(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		ctx := t.Context()

		k, key, err := apikey.Issue(ctx, b.store, apikey.Spec{OrgID: "acme", Name: "backend"}, t0)
		require.NoError(t, err)
		require.Regexp(t, `^iak_[0-9a-f]{16}_[0-9a-f]{64}$`, key, "256 random bits after a public ID")
		require.Equal(t, "acme", k.OrgID)
		require.False(t, k.Admin)
		require.Equal(t, "backend", k.Name)
		require.Equal(t, t0, k.CreatedAt)
		require.True(t, strings.HasPrefix(key, "iak_"+k.ID+"_"))
		require.Equal(t, apikey.Hash(key), k.Hash)
		require.NotContains(t, string(k.Hash), key, "only the hash is stored")

		got, err := apikey.Authenticate(ctx, b.store, key)
		require.NoError(t, err)
		require.Equal(t, k, got)
		require.True(t, apikey.Allows(got, "acme"))
		require.False(t, apikey.Allows(got, "globex"))
		require.False(t, apikey.Allows(got, ""))

		admin, adminKey, err := apikey.Issue(ctx, b.store, apikey.Spec{Admin: true, Name: "ops"}, t0)
		require.NoError(t, err)
		require.True(t, admin.Admin)
		got, err = apikey.Authenticate(ctx, b.store, adminKey)
		require.NoError(t, err)
		require.True(t, apikey.Allows(got, "acme"))
		require.True(t, apikey.Allows(got, "globex"))
		require.NotEqual(t, key, adminKey)

		// The right ID with another secret, an unknown ID, and junk.
		tampered := key[:len(key)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", key[len(key)-1])+1)%16])
		_, err = apikey.Authenticate(ctx, b.store, tampered)
		require.ErrorIs(t, err, apikey.ErrUnknown)
		unknown := "iak_0123456789abcdef_" + strings.Repeat("a", 64)
		_, err = apikey.Authenticate(ctx, b.store, unknown)
		require.ErrorIs(t, err, apikey.ErrUnknown)
		for _, junk := range []string{"", "iak_", key + "0", strings.ToUpper(key), "itk_" + key[4:], " " + key, strings.Replace(key, "_", "-", 2)} {
			_, err = apikey.Authenticate(ctx, b.store, junk)
			require.ErrorIs(t, err, apikey.ErrMalformed, "%q", junk)
			require.ErrorIs(t, err, apikey.ErrUnauthorized)
		}

		// Revoked: refused at once.
		_, err = b.store.RevokeAPIKey(ctx, k.ID, t0.Add(time.Minute))
		require.NoError(t, err)
		_, err = apikey.Authenticate(ctx, b.store, key)
		require.ErrorIs(t, err, apikey.ErrRevoked)
		require.ErrorIs(t, err, apikey.ErrUnauthorized)
		for _, e := range []error{apikey.ErrMalformed, apikey.ErrUnknown, apikey.ErrRevoked} {
			require.NotContains(t, e.Error(), key)
		}
	})
}

func TestIssueRefusals(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		b := setup(t, db)
		ctx := t.Context()
		_, _, err := apikey.Issue(ctx, b.store, apikey.Spec{OrgID: "acme", Name: "backend"}, t0)
		require.NoError(t, err)
		before := b.keys()
		for _, tc := range []struct {
			spec apikey.Spec
			want string
		}{
			{apikey.Spec{Name: "x"}, "--org ORG"},
			{apikey.Spec{Admin: true, OrgID: "acme", Name: "x"}, "not both"},
			{apikey.Spec{OrgID: "bad org!", Name: "x"}, "invalid org id"},
			{apikey.Spec{OrgID: "acme"}, "invalid key name"},
			{apikey.Spec{OrgID: "acme", Name: "no spaces"}, "invalid key name"},
			{apikey.Spec{OrgID: "acme", Name: strings.Repeat("n", 65)}, "invalid key name"},
		} {
			_, key, err := apikey.Issue(ctx, b.store, tc.spec, t0)
			require.ErrorIs(t, err, apikey.ErrInvalidSpec, "%+v", tc.spec)
			require.ErrorContains(t, err, tc.want)
			require.Empty(t, key)
		}
		_, key, err := apikey.Issue(ctx, b.store, apikey.Spec{OrgID: "acme", Name: "backend"}, t0)
		require.ErrorIs(t, err, store.ErrNameInUse)
		require.Empty(t, key)
		require.Equal(t, before, b.keys(), "nothing refused is stored")
	})
}

// TestRegister: a key made elsewhere (the dev stack's, in its data dir)
// joins a database that does not know it, and works there.
func TestRegister(t *testing.T) {
	t.Parallel()
	testenv.EachDatabase(t, func(t *testing.T, db testenv.Database) {
		first, second := setup(t, db), setup(t, testenv.Database{Name: schema.SQLite, URL: testenv.SQLiteURL(t)})
		ctx := t.Context()
		_, key, err := apikey.Issue(ctx, first.store, apikey.Spec{Admin: true, Name: "dev"}, t0)
		require.NoError(t, err)
		_, err = apikey.Authenticate(ctx, second.store, key)
		require.ErrorIs(t, err, apikey.ErrUnknown)
		k, err := apikey.Register(ctx, second.store, key, apikey.Spec{Admin: true, Name: "dev"}, t0)
		require.NoError(t, err)
		got, err := apikey.Authenticate(ctx, second.store, key)
		require.NoError(t, err)
		require.Equal(t, k, got)
		_, err = apikey.Register(ctx, second.store, "not-a-key", apikey.Spec{Admin: true, Name: "dev2"}, t0)
		require.ErrorIs(t, err, apikey.ErrMalformed)
	})
}
