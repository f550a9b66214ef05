package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/integrations/integration"
)

// Quota is the API allowance a CRM last reported for a CRM integration.
type Quota struct {
	Remaining, Limit int64
	// Window is what the numbers are about ("10s", "24h").
	Window     string
	ObservedAt time.Time
}

// SaveQuota replaces the CRM integration's last reported quota, unless the
// stored one was observed later (two rounds racing). An integration that is
// not projected gets none (the error wraps ErrNotFound), and neither does
// a deleted one (ErrDeleted): its delete removed its quota, and a round
// that reports after it must not bring the row back.
func (s *Store) SaveQuota(ctx context.Context, integrationID string, q Quota) error {
	if integrationID == "" || q.Window == "" || q.ObservedAt.IsZero() {
		return errors.New("save quota: it needs an integration, a window and when it was observed")
	}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		// Takes turns with the delete of the integration's secrets (in
		// Project), which removes its quota too: after it, the status
		// read below is deleted.
		if err := s.dialect.lockSecrets(ctx, tx, integrationID); err != nil {
			return err
		}
		var status string
		err := sqlx.GetContext(ctx, tx, &status, tx.Rebind(`SELECT status FROM integrations WHERE id = ?`), integrationID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return fmt.Errorf("read status: %w", err)
		case status == string(integration.StatusDeleted):
			return ErrDeleted
		}
		upsert := tx.Rebind(`INSERT INTO crm_quotas (integration_id, remaining, call_limit, window_name, observed_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (integration_id) DO UPDATE SET remaining = excluded.remaining, call_limit = excluded.call_limit,
	window_name = excluded.window_name, observed_at = excluded.observed_at
WHERE crm_quotas.observed_at <= excluded.observed_at`)
		_, err = tx.ExecContext(ctx, upsert, integrationID, q.Remaining, q.Limit, q.Window, dbTime(q.ObservedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("save quota of %s: %w", integrationID, err)
	}
	return nil
}

// QuotaOf returns the CRM integration's last reported quota; the error
// wraps ErrNotFound when its CRM never reported one.
func (s *Store) QuotaOf(ctx context.Context, integrationID string) (Quota, error) {
	var row struct {
		Remaining  int64     `db:"remaining"`
		Limit      int64     `db:"call_limit"`
		Window     string    `db:"window_name"`
		ObservedAt time.Time `db:"observed_at"`
	}
	q := s.db.Rebind(`SELECT remaining, call_limit, window_name, observed_at FROM crm_quotas WHERE integration_id = ?`)
	if err := sqlx.GetContext(ctx, s.db, &row, q, integrationID); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Quota{}, fmt.Errorf("quota of %s: %w", integrationID, ErrNotFound)
		}
		return Quota{}, fmt.Errorf("quota of %s: %w", integrationID, err)
	}
	return Quota{Remaining: row.Remaining, Limit: row.Limit, Window: row.Window, ObservedAt: row.ObservedAt.UTC()}, nil
}
