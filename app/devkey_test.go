package app_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/integrations/apikey"
	"github.com/acme/integrations/app"
	"github.com/acme/integrations/store"
)

// devKeyBundle is a data dir and a migrated SQLite database in it.
type devKeyBundle struct {
	cfg   app.Config
	store *store.Store
}

func setupDevKey(t *testing.T) *devKeyBundle {
	t.Helper()
	dir := t.TempDir()
	return &devKeyBundle{cfg: app.Config{DataDir: dir}, store: migratedStore(t, "sqlite://"+filepath.Join(dir, "integrations.db"))}
}

func migratedStore(t *testing.T, url string) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, s.Migrate(t.Context()))
	return s
}

// TestDevAdminKey: dev makes an admin key on its first start, keeps it in
// the data dir (0600) and never makes another; a database that does not
// know it learns it; a revoked one is reported, not replaced.
func TestDevAdminKey(t *testing.T) {
	t.Parallel()
	b := setupDevKey(t)
	ctx := t.Context()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

	first, err := app.EnsureDevAdminKey(ctx, b.cfg, b.store, now)
	require.NoError(t, err)
	require.Empty(t, first.Note)
	require.True(t, first.Stored.Admin)
	raw, err := os.ReadFile(b.cfg.AdminKeyFile())
	require.NoError(t, err)
	require.Equal(t, first.Key+"\n", string(raw))
	fi, err := os.Stat(b.cfg.AdminKeyFile())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	k, err := apikey.Authenticate(ctx, b.store, strings.TrimSpace(string(raw)))
	require.NoError(t, err, "the file's key works as $(cat .data/admin-api-key)")
	require.True(t, k.Admin)

	again, err := app.EnsureDevAdminKey(ctx, b.cfg, b.store, now.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, first.Key, again.Key, "never re-created")
	keys, err := b.store.ListAPIKeys(ctx, store.APIKeyFilter{})
	require.NoError(t, err)
	require.Len(t, keys, 1)

	// dev on another database of the same data dir: the same key works.
	other := migratedStore(t, "sqlite://"+filepath.Join(t.TempDir(), "other.db"))
	moved, err := app.EnsureDevAdminKey(ctx, b.cfg, other, now)
	require.NoError(t, err)
	require.Equal(t, first.Key, moved.Key)
	_, err = apikey.Authenticate(ctx, other, first.Key)
	require.NoError(t, err)

	_, err = b.store.RevokeAPIKey(ctx, first.Stored.ID, now)
	require.NoError(t, err)
	revoked, err := app.EnsureDevAdminKey(ctx, b.cfg, b.store, now)
	require.NoError(t, err)
	require.Equal(t, first.Key, revoked.Key)
	require.Contains(t, revoked.Note, "revoked")
	require.Contains(t, revoked.Note, "remove "+b.cfg.AdminKeyFile())

	require.NoError(t, os.WriteFile(b.cfg.AdminKeyFile(), []byte("garbage\n"), 0o600))
	_, err = app.EnsureDevAdminKey(ctx, b.cfg, b.store, now)
	require.ErrorContains(t, err, "does not hold an API key")
}
