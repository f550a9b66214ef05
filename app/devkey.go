package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acme/integrations/apikey"
	"github.com/acme/integrations/integration"
	"github.com/acme/integrations/store"
)

// AdminKeyFile is where the dev stack keeps the admin API key it made for
// the local user (mode 0600): `-H "Authorization: Bearer $(cat
// .data/admin-api-key)"`.
func (c Config) AdminKeyFile() string { return filepath.Join(c.DataDir, "admin-api-key") }

// DevAdminKey is the dev stack's admin API key.
type DevAdminKey struct {
	// Key is the key itself, as in the file.
	Key string
	// Stored is its row; Note says what to do when it does not work
	// (revoked, say), "" when it does.
	Stored store.APIKey
	Note   string
}

// devKeyName is the name of the dev stack's admin key: the local user's
// name when it is a valid key name, else "dev".
func devKeyName() string {
	if u := os.Getenv("USER"); integration.ValidateID("key name", u) == nil {
		return u
	}
	return "dev"
}

// EnsureDevAdminKey returns the dev stack's admin key of the data dir,
// making it on the first start: issued into st and written to
// AdminKeyFile, never re-created once the file exists. A database that
// does not know the file's key (a fresh one, or --database-url another)
// gets it registered, so the printed key works wherever dev runs; a
// revoked key stays revoked (Note says so).
func EnsureDevAdminKey(ctx context.Context, cfg Config, st *store.Store, now time.Time) (DevAdminKey, error) {
	if cfg.DataDir == "" {
		return DevAdminKey{}, errors.New("dev admin key: no data dir")
	}
	path := cfg.AdminKeyFile()
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return issueDevAdminKey(ctx, path, st, now)
	case err != nil:
		return DevAdminKey{}, fmt.Errorf("read the dev admin key %s: %w", path, err)
	}
	key := strings.TrimSpace(string(raw))
	id, err := apikey.Parse(key)
	if err != nil {
		return DevAdminKey{}, fmt.Errorf("%s does not hold an API key: remove it, and dev makes a new admin key", path)
	}
	k, err := st.APIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		k, err = registerDevKey(ctx, st, key, now)
	}
	if err != nil {
		return DevAdminKey{}, fmt.Errorf("dev admin key: %w", err)
	}
	out := DevAdminKey{Key: key, Stored: k}
	if _, err := apikey.Authenticate(ctx, st, key); err != nil {
		if !errors.Is(err, apikey.ErrUnauthorized) {
			return DevAdminKey{}, fmt.Errorf("dev admin key: %w", err)
		}
		out.Note = fmt.Sprintf("does not work (%v): remove %s and restart dev for a new one", err, path)
	}
	return out, nil
}

// issueDevAdminKey issues the admin key of the first start and writes it
// to path, which must not exist (a second dev racing for it loses).
func issueDevAdminKey(ctx context.Context, path string, st *store.Store, now time.Time) (DevAdminKey, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return DevAdminKey{}, fmt.Errorf("create the dev admin key file %s: %w", path, err)
	}
	k, key, err := issueDevKey(ctx, st, now)
	if err == nil {
		_, err = fmt.Fprintln(f, key)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return DevAdminKey{}, fmt.Errorf("dev admin key: %w", err)
	}
	return DevAdminKey{Key: key, Stored: k}, nil
}

// issueDevKey issues an admin key named for the local user, or, when an
// admin key of that name exists already, for the user and its ID.
func issueDevKey(ctx context.Context, st *store.Store, now time.Time) (store.APIKey, string, error) {
	name := devKeyName()
	k, key, err := apikey.Issue(ctx, st, apikey.Spec{Admin: true, Name: name}, now)
	if errors.Is(err, store.ErrNameInUse) {
		k, key, err = apikey.Issue(ctx, st, apikey.Spec{Admin: true, Name: name[:min(len(name), 40)] + "-dev-" + now.UTC().Format("20060102150405")}, now)
	}
	return k, key, err
}

// registerDevKey stores the file's key in a database that does not know
// it, under the local user's name (or, taken, the name and the key's ID).
func registerDevKey(ctx context.Context, st *store.Store, key string, now time.Time) (store.APIKey, error) {
	name := devKeyName()
	k, err := apikey.Register(ctx, st, key, apikey.Spec{Admin: true, Name: name}, now)
	if errors.Is(err, store.ErrNameInUse) {
		id, _ := apikey.Parse(key)
		k, err = apikey.Register(ctx, st, key, apikey.Spec{Admin: true, Name: name[:min(len(name), 40)] + "-" + id}, now)
	}
	return k, err
}
