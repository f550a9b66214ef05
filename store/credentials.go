package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Credential is one stored version of a CRM integration's credentials,
// sealed (AES-256-GCM) before it reaches the store.
type Credential struct {
	IntegrationID string
	Version       int
	Ciphertext    []byte
	CreatedAt     time.Time
}

// credentialRow is a row of crm_credentials.
type credentialRow struct {
	IntegrationID string    `db:"integration_id"`
	Version       int       `db:"version"`
	Ciphertext    []byte    `db:"ciphertext"`
	CreatedAt     time.Time `db:"created_at"`
}

func (r credentialRow) toCredential() Credential {
	return Credential{IntegrationID: r.IntegrationID, Version: r.Version, Ciphertext: r.Ciphertext, CreatedAt: r.CreatedAt.UTC()}
}

// SaveCredential stores ciphertext as the next version (1, 2, ...) of the
// integration's credentials and returns that version. Concurrent saves get
// distinct versions.
func (s *Store) SaveCredential(ctx context.Context, integrationID string, ciphertext []byte, at time.Time) (version int, err error) {
	if integrationID == "" {
		return 0, errors.New("save credentials: no integration ID given")
	}
	if len(ciphertext) == 0 {
		return 0, fmt.Errorf("save credentials of %s: ciphertext is empty; seal the credentials first", integrationID)
	}
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		// Concurrent saves for one integration would read the same MAX.
		if err := s.dialect.lockCredentials(ctx, tx, integrationID); err != nil {
			return err
		}
		q := tx.Rebind(`INSERT INTO crm_credentials (integration_id, version, ciphertext, created_at)
VALUES (?, (SELECT COALESCE(MAX(version), 0) + 1 FROM crm_credentials WHERE integration_id = ?), ?, ?)
RETURNING version`)
		return sqlx.GetContext(ctx, tx, &version, q, integrationID, integrationID, ciphertext, dbTime(at))
	})
	if err != nil {
		return 0, fmt.Errorf("save credentials of %s: %w", integrationID, err)
	}
	return version, nil
}

// LatestCredential returns the newest credentials of the integration; the
// error wraps ErrNotFound when none are stored.
func (s *Store) LatestCredential(ctx context.Context, integrationID string) (Credential, error) {
	var row credentialRow
	q := s.db.Rebind(`SELECT integration_id, version, ciphertext, created_at FROM crm_credentials
WHERE integration_id = ? ORDER BY version DESC LIMIT 1`)
	if err := sqlx.GetContext(ctx, s.db, &row, q, integrationID); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Credential{}, fmt.Errorf("credentials of %s: %w", integrationID, ErrNotFound)
		}
		return Credential{}, fmt.Errorf("latest credentials of %s: %w", integrationID, err)
	}
	return row.toCredential(), nil
}
