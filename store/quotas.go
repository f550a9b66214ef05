package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Quota is the API allowance a CRM last reported for a CRM integration.
type Quota struct {
	Remaining, Limit int64
	// Window is what the numbers are about ("10s", "24h").
	Window     string
	ObservedAt time.Time
}

// SaveQuota replaces the CRM integration's last reported quota, unless the
// stored one was observed later (two rounds racing).
func (s *Store) SaveQuota(ctx context.Context, integrationID string, q Quota) error {
	if integrationID == "" || q.Window == "" || q.ObservedAt.IsZero() {
		return errors.New("save quota: it needs an integration, a window and when it was observed")
	}
	q1 := s.db.Rebind(`INSERT INTO crm_quotas (integration_id, remaining, call_limit, window_name, observed_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (integration_id) DO UPDATE SET remaining = excluded.remaining, call_limit = excluded.call_limit,
	window_name = excluded.window_name, observed_at = excluded.observed_at
WHERE crm_quotas.observed_at <= excluded.observed_at`)
	if _, err := s.db.ExecContext(ctx, q1, integrationID, q.Remaining, q.Limit, q.Window, dbTime(q.ObservedAt)); err != nil {
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
