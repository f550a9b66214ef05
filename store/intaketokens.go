package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// SetIntakeToken stores tokenHash, the SHA-256 of a lead integration's
// intake token, replacing the integration's previous one (rotation). The
// token itself is never stored. It is refused, with an error wrapping
// ErrDeleted and nothing stored, once the integration is projected deleted.
func (s *Store) SetIntakeToken(ctx context.Context, integrationID string, tokenHash []byte, at time.Time) error {
	switch {
	case integrationID == "":
		return errors.New("set intake token: no integration ID given")
	case len(tokenHash) != sha256.Size:
		return fmt.Errorf("set intake token of %s: the hash is %d bytes, not %d: store sha256.Sum256(token), never the token", integrationID, len(tokenHash), sha256.Size)
	case at.IsZero():
		return fmt.Errorf("set intake token of %s: no issue time given", integrationID)
	}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		// Takes turns with the delete of the integration's secrets
		// (Project), so no token is stored after it.
		if err := s.dialect.lockSecrets(ctx, tx, integrationID); err != nil {
			return err
		}
		if err := checkNotDeleted(ctx, tx, integrationID); err != nil {
			return err
		}
		q := tx.Rebind(`INSERT INTO intake_tokens (integration_id, token_hash, created_at) VALUES (?, ?, ?)
ON CONFLICT (integration_id) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at`)
		_, err := tx.ExecContext(ctx, q, integrationID, tokenHash, dbTime(at))
		return err
	})
	if err != nil {
		return fmt.Errorf("set intake token of %s: %w", integrationID, err)
	}
	return nil
}

// IntakeTokenHash returns the SHA-256 of the lead integration's current
// intake token; the error wraps ErrNotFound when it has none.
func (s *Store) IntakeTokenHash(ctx context.Context, integrationID string) ([]byte, error) {
	var hash []byte
	q := s.db.Rebind(`SELECT token_hash FROM intake_tokens WHERE integration_id = ?`)
	if err := sqlx.GetContext(ctx, s.db, &hash, q, integrationID); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("intake token of %s: %w", integrationID, ErrNotFound)
		}
		return nil, fmt.Errorf("intake token of %s: %w", integrationID, err)
	}
	return hash, nil
}
