package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jmoiron/sqlx"
)

// ErrNameInUse is wrapped by the error of AddAPIKey when a working key of
// the same org (or another admin key) already has the name.
var ErrNameInUse = errors.New("name in use")

// APIKey is one issued HTTP API key, as stored: its hash, never the key.
type APIKey struct {
	// ID is the key's public part (16 hex digits).
	ID string
	// OrgID is the org the key is scoped to; "" for an admin key.
	OrgID string
	// Admin keys see and command every org's integrations.
	Admin bool
	// Name is who holds the key, the recorded actor of its commands.
	Name string
	// Hash is the SHA-256 of the whole key.
	Hash      []byte
	CreatedAt time.Time
	// RevokedAt is when the key stopped working; nil while it works.
	RevokedAt *time.Time
}

// Revoked reports whether the key no longer works.
func (k APIKey) Revoked() bool { return k.RevokedAt != nil }

// apiKeyRow is a row of api_keys.
type apiKeyRow struct {
	ID        string       `db:"id"`
	OrgID     string       `db:"org_id"`
	Admin     bool         `db:"admin"`
	Name      string       `db:"name"`
	Hash      []byte       `db:"key_hash"`
	CreatedAt time.Time    `db:"created_at"`
	RevokedAt sql.NullTime `db:"revoked_at"`
}

const apiKeyColumns = `id, org_id, admin, name, key_hash, created_at, revoked_at`

func (r apiKeyRow) toAPIKey() APIKey {
	return APIKey{ID: r.ID, OrgID: r.OrgID, Admin: r.Admin, Name: r.Name, Hash: r.Hash, CreatedAt: r.CreatedAt.UTC(), RevokedAt: timePtr(r.RevokedAt)}
}

// apiKeyIDPattern is the form of a key ID (the table checks it too).
var apiKeyIDPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

// AddAPIKey stores an issued key (its hash only). The error wraps
// ErrNameInUse when a working key of the org (for an admin key: another
// working admin key) has the name already.
func (s *Store) AddAPIKey(ctx context.Context, k APIKey) error {
	switch {
	case !apiKeyIDPattern.MatchString(k.ID):
		return fmt.Errorf("add API key: ID %q is not 16 hex digits", k.ID)
	case k.Name == "":
		return fmt.Errorf("add API key %s: no name given", k.ID)
	case k.Admin && k.OrgID != "":
		return fmt.Errorf("add API key %s: an admin key has no org, not %q", k.ID, k.OrgID)
	case !k.Admin && k.OrgID == "":
		return fmt.Errorf("add API key %s: an org key needs an org", k.ID)
	case len(k.Hash) != sha256.Size:
		return fmt.Errorf("add API key %s: the hash is %d bytes, not %d: store sha256.Sum256(key), never the key", k.ID, len(k.Hash), sha256.Size)
	case k.CreatedAt.IsZero():
		return fmt.Errorf("add API key %s: no issue time given", k.ID)
	}
	// DO NOTHING without a target covers the name index and the (random,
	// never colliding in practice) primary key alike, on both databases.
	q := s.db.Rebind(`INSERT INTO api_keys (` + apiKeyColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
	res, err := s.db.ExecContext(ctx, q, k.ID, k.OrgID, k.Admin, k.Name, k.Hash, dbTime(k.CreatedAt), nullTime(k.RevokedAt))
	if err != nil {
		return fmt.Errorf("add API key %s: %w", k.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("add API key %s: %w", k.ID, err)
	}
	if n == 0 {
		if k.Admin {
			return fmt.Errorf("add API key: an admin key named %q exists: %w", k.Name, ErrNameInUse)
		}
		return fmt.Errorf("add API key: a key of org %s named %q exists: %w", k.OrgID, k.Name, ErrNameInUse)
	}
	return nil
}

// APIKey returns the key with the given ID, revoked or not; the error wraps
// ErrNotFound when there is none.
func (s *Store) APIKey(ctx context.Context, id string) (APIKey, error) {
	var row apiKeyRow
	q := s.db.Rebind(`SELECT ` + apiKeyColumns + ` FROM api_keys WHERE id = ?`)
	if err := sqlx.GetContext(ctx, s.db, &row, q, id); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return APIKey{}, fmt.Errorf("API key %q: %w", id, ErrNotFound)
		}
		return APIKey{}, fmt.Errorf("API key %q: %w", id, err)
	}
	return row.toAPIKey(), nil
}

// APIKeyFilter selects keys for ListAPIKeys; zero fields do not filter.
type APIKeyFilter struct {
	// OrgID lists that org's keys only.
	OrgID string
	// Admin lists admin keys only.
	Admin bool
}

// ListAPIKeys returns the keys f selects, revoked ones included, admin
// keys first, then by org, name and issue time.
func (s *Store) ListAPIKeys(ctx context.Context, f APIKeyFilter) ([]APIKey, error) {
	q := `SELECT ` + apiKeyColumns + ` FROM api_keys`
	var args []any
	switch {
	case f.Admin && f.OrgID != "":
		return nil, errors.New("list API keys: admin keys have no org: filter by one or the other")
	case f.Admin:
		q += ` WHERE admin = ?`
		args = append(args, true)
	case f.OrgID != "":
		q += ` WHERE org_id = ?`
		args = append(args, f.OrgID)
	}
	q += ` ORDER BY org_id, name, created_at, id`
	var rows []apiKeyRow
	if err := sqlx.SelectContext(ctx, s.db, &rows, s.db.Rebind(q), args...); err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	keys := make([]APIKey, len(rows))
	for i, row := range rows {
		keys[i] = row.toAPIKey()
	}
	return keys, nil
}

// RevokeAPIKey makes the key stop working at once and returns it. Revoking
// a revoked key changes nothing (it keeps its first revocation time). The
// error wraps ErrNotFound when there is no such key.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) (APIKey, error) {
	if at.IsZero() {
		return APIKey{}, fmt.Errorf("revoke API key %s: no revocation time given", id)
	}
	q := s.db.Rebind(`UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`)
	if _, err := s.db.ExecContext(ctx, q, dbTime(at), id); err != nil {
		return APIKey{}, fmt.Errorf("revoke API key %s: %w", id, err)
	}
	k, err := s.APIKey(ctx, id)
	if err != nil {
		return APIKey{}, fmt.Errorf("revoke: %w", err)
	}
	return k, nil
}
