package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Notification channels: who a notification goes to.
const (
	ChannelEmail   = "email"   // the org, by email
	ChannelInApp   = "in_app"  // the org, in the app
	ChannelPartner = "partner" // the lead partner
	ChannelSupport = "support" // our support team
)

// Notification statuses.
const (
	NotificationOpen     = "open"
	NotificationResolved = "resolved"
)

// Notification is a message for an org, a lead partner or support,
// recorded for the mailers and the app to deliver.
type Notification struct {
	ID            int64
	IntegrationID string
	OrgID         string
	Channel       string // one of the Channel constants
	Kind          string // e.g. paused, setup_reminder, source_revision, setup_abandoned
	Subject       string
	Body          string
	Status        string // NotificationOpen (the default) or NotificationResolved
	// DedupeKey identifies the notification to its sender: adding a second
	// one with the same key does nothing, so retried activities are safe.
	DedupeKey  string
	CreatedAt  time.Time
	ResolvedAt *time.Time
}

// notificationRow is a row of notifications.
type notificationRow struct {
	ID            int64        `db:"id"`
	IntegrationID string       `db:"integration_id"`
	OrgID         string       `db:"org_id"`
	Channel       string       `db:"channel"`
	Kind          string       `db:"kind"`
	Subject       string       `db:"subject"`
	Body          string       `db:"body"`
	Status        string       `db:"status"`
	DedupeKey     string       `db:"dedupe_key"`
	CreatedAt     time.Time    `db:"created_at"`
	ResolvedAt    sql.NullTime `db:"resolved_at"`
}

func toNotificationRow(n Notification) notificationRow {
	row := notificationRow{
		ID: n.ID, IntegrationID: n.IntegrationID, OrgID: n.OrgID, Channel: n.Channel, Kind: n.Kind,
		Subject: n.Subject, Body: n.Body, Status: n.Status, DedupeKey: n.DedupeKey, CreatedAt: dbTime(n.CreatedAt),
	}
	if row.Status == "" {
		row.Status = NotificationOpen
	}
	if n.ResolvedAt != nil {
		row.ResolvedAt = sql.NullTime{Time: dbTime(*n.ResolvedAt), Valid: true}
	}
	return row
}

func (r notificationRow) toNotification() Notification {
	n := Notification{
		ID: r.ID, IntegrationID: r.IntegrationID, OrgID: r.OrgID, Channel: r.Channel, Kind: r.Kind,
		Subject: r.Subject, Body: r.Body, Status: r.Status, DedupeKey: r.DedupeKey, CreatedAt: r.CreatedAt.UTC(),
	}
	if r.ResolvedAt.Valid {
		t := r.ResolvedAt.Time.UTC()
		n.ResolvedAt = &t
	}
	return n
}

const notificationColumns = `id, integration_id, org_id, channel, kind, subject, body, status, dedupe_key, created_at, resolved_at`

// checkNotification says what is missing or wrong in n.
func checkNotification(n Notification) error {
	switch {
	case n.IntegrationID == "" || n.OrgID == "":
		return errors.New("notification needs an integration ID and an org ID")
	case n.Kind == "" || n.Subject == "":
		return errors.New("notification needs a kind and a subject")
	case n.DedupeKey == "":
		return errors.New("notification needs a dedupe key, so a retried send adds it once")
	case n.CreatedAt.IsZero():
		return errors.New("notification needs its creation time")
	}
	switch n.Channel {
	case ChannelEmail, ChannelInApp, ChannelPartner, ChannelSupport:
	default:
		return fmt.Errorf("unknown notification channel %q: use email, in_app, partner or support", n.Channel)
	}
	switch n.Status {
	case "", NotificationOpen:
	case NotificationResolved:
		if n.ResolvedAt == nil {
			return errors.New("a resolved notification needs its resolution time")
		}
	default:
		return fmt.Errorf("unknown notification status %q: use open or resolved", n.Status)
	}
	return nil
}

// AddNotification records n (ID is ignored; Status defaults to open).
// created is false, with no error, when a notification with the same
// dedupe key exists.
func (s *Store) AddNotification(ctx context.Context, n Notification) (created bool, err error) {
	if err := checkNotification(n); err != nil {
		return false, fmt.Errorf("add notification for %s: %w", n.IntegrationID, err)
	}
	const q = `INSERT INTO notifications (integration_id, org_id, channel, kind, subject, body, status, dedupe_key, created_at, resolved_at)
VALUES (:integration_id, :org_id, :channel, :kind, :subject, :body, :status, :dedupe_key, :created_at, :resolved_at)
ON CONFLICT (dedupe_key) DO NOTHING`
	res, err := sqlx.NamedExecContext(ctx, s.db, q, toNotificationRow(n))
	if err != nil {
		return false, fmt.Errorf("add %s notification for %s: %w", n.Kind, n.IntegrationID, err)
	}
	rows, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("add %s notification for %s: %w", n.Kind, n.IntegrationID, err)
	}
	return rows > 0, nil
}

// ResolveNotifications marks the open notifications of the integration of
// the given kind (every kind when kind is "") resolved at at, and returns
// how many it resolved.
func (s *Store) ResolveNotifications(ctx context.Context, integrationID, kind string, at time.Time) (int64, error) {
	if integrationID == "" {
		return 0, errors.New("resolve notifications: no integration ID given")
	}
	q := `UPDATE notifications SET status = ?, resolved_at = ? WHERE integration_id = ? AND status = ?`
	args := []any{NotificationResolved, dbTime(at), integrationID, NotificationOpen}
	if kind != "" {
		q += ` AND kind = ?`
		args = append(args, kind)
	}
	what := "notifications"
	if kind != "" {
		what = kind + " notifications"
	}
	res, err := s.db.ExecContext(ctx, s.db.Rebind(q), args...)
	if err != nil {
		return 0, fmt.Errorf("resolve %s of %s: %w", what, integrationID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("resolve %s of %s: %w", what, integrationID, err)
	}
	return n, nil
}

// Notifications returns every notification of the integration, oldest
// first.
func (s *Store) Notifications(ctx context.Context, integrationID string) ([]Notification, error) {
	var rows []notificationRow
	q := s.db.Rebind(`SELECT ` + notificationColumns + ` FROM notifications WHERE integration_id = ? ORDER BY id`)
	if err := sqlx.SelectContext(ctx, s.db, &rows, q, integrationID); err != nil {
		return nil, fmt.Errorf("notifications of %s: %w", integrationID, err)
	}
	out := make([]Notification, len(rows))
	for i, row := range rows {
		out[i] = row.toNotification()
	}
	return out, nil
}
